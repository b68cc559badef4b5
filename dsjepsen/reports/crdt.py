"""The CRDT view: what each node's reads returned over time, and how the nodes came together.

For set and counter workloads the question an engineer asks is not "which op cannot be
placed" but "did the replicas diverge, did they meet again after the heal, and what was lost
where". So the page draws one line per node (for a set, the number of elements each of its
reads returned; for a counter, the value) with the fault windows behind, states the time to
converge (results.json `convergence` and the convergence checker's details), and lists the
lost / phantom / stale elements with the node that served each read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsjepsen.reports.anomaly import Anomaly, final_reads_time
from dsjepsen.reports.plots import WIDTH, fault_shading
from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.svg import Frame, esc
from dsjepsen.reports.timeline import short

#: anomaly types that are about elements or replica values, shown in the CRDT table
ELEMENT_TYPES = (
    "lost",
    "phantom",
    "stale",
    "duplicate",
    "replica-lost-element",
    "replica-counter-decreased",
    "not-converged",
    "out-of-bounds",
    "final-read",
)
#: one colour per node line (Okabe-Ito, distinguishable for colour-blind readers)
NODE_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#000000")


@dataclass
class CrdtView:
    kind: str  # "set" | "counter"
    key: str
    keys: int
    svg: str
    convergence: list[tuple[str, str]] = field(default_factory=list)
    elements: list[dict[str, Any]] = field(default_factory=list)


def _reads(run: RunData) -> tuple[str, dict[str, list[tuple[int, int, str]]]] | None:
    """ok reads through a node that return a whole set (a list) or a counter, per key:
    (completion time, value drawn, node). None when the history has none."""
    per_key: dict[str, list[tuple[int, int, str]]] = {}
    kind = ""
    for o in run.operations:
        if o.type != "ok" or o.complete is None:
            continue
        node = o.node
        if node is None:
            continue
        out = o.output
        if isinstance(out, list) and "read" in o.f:
            kind, v = kind or "set", len(out)
        elif o.f.endswith("counter") and "read" in o.f and isinstance(out, int):
            kind, v = kind or "counter", out
        else:
            continue
        per_key.setdefault(short(o.key, 24), []).append((o.complete.time, v, str(node)))
    return (kind, per_key) if per_key else None


def view(run: RunData, anomalies: list[Anomaly]) -> CrdtView | None:
    """The CRDT section's data, or None for a history without CRDT reads."""
    found = _reads(run)
    if found is None or run.logical_time:
        return None
    kind, per_key = found
    crdt_anoms = [a for a in anomalies if a.type in ELEMENT_TYPES]
    key = next((short(a.key, 24) for a in crdt_anoms if short(a.key, 24) in per_key), None)
    if key is None:
        key = max(per_key, key=lambda k: (len(per_key[k]), k))
    reads = per_key[key]
    nodes = sorted({n for _, _, n in reads})
    end = max(run.end_time, 1) / NS
    vmax = max(v for _, v, _ in reads) or 1
    fr = Frame(WIDTH, 300, 0.0, end, 0.0, vmax * 1.1, top=50, left=70)
    what = "elements returned" if kind == "set" else "counter value"
    parts = fr.axes("seconds since start", what)
    parts += fault_shading(run, fr, NS, final_reads_time(run))
    legend = []
    for i, node in enumerate(nodes):
        colour = NODE_COLOURS[i % len(NODE_COLOURS)]
        pts = [(t, v) for t, v, n in reads if n == node]
        d = []
        prev_y = None
        for t, v in pts:
            x, y = fr.x(t / NS), fr.y(v)
            d.append(f"M{x:.1f} {y:.1f}" if prev_y is None else f"H{x:.1f}V{y:.1f}")
            prev_y = y
        parts.append(
            f'<path class="node-line" data-node="{esc(node)}" stroke="{colour}" '
            f'd="{"".join(d)}"><title>{esc(node)}: {len(pts)} reads</title></path>'
        )
        legend.append(
            f'<g transform="translate({fr.left + 8 + i * 90} 18)">'
            f'<line x1="0" x2="16" y1="0" y2="0" stroke="{colour}" stroke-width="3"/>'
            f'<text class="legend" x="22" y="5">{esc(node)}</text></g>'
        )
    parts += legend
    svg = (
        f'<svg id="crdt-plot" class="plot" viewBox="0 0 {fr.width} {fr.height}" role="img" '
        f'aria-label="{esc(what)} per node over time, key {esc(key)}" '
        'xmlns="http://www.w3.org/2000/svg">' + "".join(parts) + "</svg>"
    )
    view_ = CrdtView(kind, key, len(per_key), svg)
    conv = (run.results or {}).get("convergence")
    if isinstance(conv, dict):
        state = "all nodes agreed" if conv.get("converged") else "nodes still disagreed"
        view_.convergence.append(
            ("final reads", f"{state} after {conv.get('rounds')} rounds, {conv.get('seconds')} s")
        )
    checks = (run.results or {}).get("checks") or {}
    det = (checks.get("convergence") or {}).get("details") if isinstance(checks, dict) else None
    if isinstance(det, dict):
        if det.get("summary"):
            view_.convergence.append(("time to converge", str(det["summary"])))
        elif det.get("time_to_converge_s") is not None:
            view_.convergence.append(("time to converge", f"{det['time_to_converge_s']} s"))
        if det.get("diverged_keys"):
            view_.convergence.append(
                ("did not converge", ", ".join(str(k) for k in det["diverged_keys"][:20]))
            )
        for label, per_node in list((det.get("diverged_values") or {}).items())[:10]:
            if isinstance(per_node, dict):
                view_.convergence.append(
                    (label, "; ".join(f"{n}: {short(x, 60)}" for n, x in per_node.items()))
                )
    for a in crdt_anoms[:300]:
        view_.elements.append(
            {
                "n": a.n,
                "type": a.type,
                "key": short(a.key, 24),
                "element": short(a.raw.get("element", a.raw.get("value")), 40),
                "node": a.node or "",
                "message": a.message,
            }
        )
    return view_
