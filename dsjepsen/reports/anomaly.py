"""The anomaly section: collecting anomalies from results.json and drawing a linearizability
failure in the spirit of Porcupine's visualization.

The diagram places ops on one lane per process, ordered by history position (call/ret indices)
rather than by clock, so real-time order is exact and short ops are not squeezed to nothing.
Each step of the longest linearization found is numbered where it takes effect, the path through
those points is drawn, and the op that cannot be placed is marked with why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsjepsen.reports.rundata import RunData
from dsjepsen.reports.svg import esc
from dsjepsen.reports.timeline import short

MAX_DIAGRAM_OPS = 40
DIAGRAM_STEPS = 8


@dataclass
class Anomaly:
    """One anomaly as the page shows it; `raw` is the checker's dict, untouched."""

    n: int
    checker: str
    type: str
    message: str
    key: Any
    raw: dict[str, Any]
    op: dict[str, Any] | None = None
    prefix: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    states: list[Any] = field(default_factory=list)
    window: list[int] = field(default_factory=list)
    diagram: str = ""
    prefix_omitted: int = 0
    op_ids: set[int] = field(default_factory=set)  # timeline op ids involved

    @property
    def is_linearizability(self) -> bool:
        return self.op is not None


def collect(results: dict[str, Any] | None) -> list[Anomaly]:
    """Anomalies of every check, deduplicated (composed checks repeat their children's)."""
    if not results:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    checks = results.get("checks")
    if isinstance(checks, dict):
        for name, res in checks.items():
            if isinstance(res, dict):
                for a in res.get("anomalies") or []:
                    found.append((str(name), a))
    for a in results.get("anomalies") or []:
        found.append(("results", a))
    seen: set[tuple[str, str, str]] = set()
    out: list[Anomaly] = []
    for checker, a in found:
        if not isinstance(a, dict):
            a = {"type": "anomaly", "message": str(a)}
        sig = (str(a.get("type")), short(a.get("key")), str(a.get("message")))
        if sig in seen:
            continue
        seen.add(sig)
        op = _norm(a["op"]) if isinstance(a.get("op"), dict) else None
        out.append(
            Anomaly(
                n=len(out) + 1,
                checker=checker,
                type=str(a.get("type", "anomaly")),
                message=str(a.get("message", "")),
                key=a.get("key"),
                raw=a,
                op=op,
                prefix=[
                    {
                        "op": _norm(p["op"]),
                        "state": p.get("state"),
                        "description": p.get("description"),
                    }
                    for p in a.get("prefix") or []
                    if isinstance(p, dict) and isinstance(p.get("op"), dict)
                ],
                pending=[_norm(p) for p in a.get("pending") or [] if isinstance(p, dict)],
                states=list(a.get("states") or []),
                window=[w for w in a.get("window") or [] if isinstance(w, int)],
                prefix_omitted=int(a.get("prefix_omitted") or 0),
            )
        )
    return out


OPDICT_KEYS = ("id", "process", "f", "key", "value", "output", "type", "call", "ret")


def _norm(d: dict[str, Any]) -> dict[str, Any]:
    """An opdict with every documented field present (None when the checker left it out)."""
    out = {k: d.get(k) for k in OPDICT_KEYS}
    out["call_time"] = d.get("call_time")
    out["ret_time"] = d.get("ret_time")
    return out


def link_ops(run: RunData, anomalies: list[Anomaly]) -> None:
    """Map each anomaly's ops (by history index) to timeline op ids."""
    by_call = {o.call: o.id for o in run.operations}
    by_ret = {o.ret: o.id for o in run.operations if o.ret is not None}
    for a in anomalies:
        ids: set[int] = set()
        for d in _all_opdicts(a):
            call = d.get("call")
            if isinstance(call, int) and call in by_call:
                ids.add(by_call[call])
        for w in a.window:
            if w in by_call:
                ids.add(by_call[w])
            elif w in by_ret:
                ids.add(by_ret[w])
        a.op_ids = ids


def _all_opdicts(a: Anomaly) -> list[dict[str, Any]]:
    out = [p["op"] for p in a.prefix if isinstance(p.get("op"), dict)]
    out += a.pending
    if a.op:
        out.append(a.op)
    return out


def op_text(d: dict[str, Any]) -> str:
    """'write 3', 'read → 3', 'cas 1→4' — how an op reads in a diagram."""
    f = str(d.get("f"))
    v, out = d.get("value"), d.get("output")
    if f == "read":
        return f"read → {short(out, 16)}" if d.get("type") == "ok" else "read → ?"
    if f == "cas" and isinstance(v, list) and len(v) == 2:
        return f"cas {short(v[0], 8)}→{short(v[1], 8)}"
    return f"{f} {short(v, 16)}"


def operation_dict(run: RunData, op_id: int) -> dict[str, Any]:
    return run.operations[op_id].to_dict()


def diagram(run: RunData, a: Anomaly) -> str:
    """A Porcupine-style SVG of the anomaly's window (empty for non-linearizability ones)."""
    if a.op is None:
        return ""
    step_of: dict[int, int] = {}
    state_of: dict[int, str] = {}
    ops: dict[int, dict[str, Any]] = {}
    first_step = a.prefix_omitted + 1
    # The diagram shows the end of the linearization (the table lists all of it): the last
    # DIAGRAM_STEPS steps, everything pending, the checker's window and the failing op.
    tail_from = max(0, len(a.prefix) - DIAGRAM_STEPS)
    for n, p in enumerate(a.prefix, start=first_step):
        d = p.get("op")
        if isinstance(d, dict) and isinstance(d.get("call"), int):
            if n - first_step >= tail_from:
                ops[d["call"]] = d
            step_of[d["call"]] = n
            state_of[d["call"]] = short(p.get("state"), 24)
    for d in a.pending:
        if isinstance(d.get("call"), int):
            ops.setdefault(d["call"], d)
    bad_call = a.op.get("call")
    if isinstance(bad_call, int):
        ops[bad_call] = a.op
    by_call = {o.call: o for o in run.operations}
    for w in a.window:
        if w in by_call and w not in ops and by_call[w].key == a.key:
            ops[w] = next(
                (p["op"] for p in a.prefix if p["op"].get("call") == w),
                operation_dict(run, by_call[w].id),
            )
    if not ops:
        return ""
    # Keep the ops nearest the failing one when the window is large.
    chosen = sorted(ops, key=lambda c: (c != bad_call, abs(c - (bad_call or 0))))
    chosen = sorted(chosen[:MAX_DIAGRAM_OPS])
    drawn = [ops[c] for c in chosen]
    points = sorted(
        {d["call"] for d in drawn} | {d["ret"] for d in drawn if isinstance(d.get("ret"), int)}
    )
    col = {p: i for i, p in enumerate(points)}
    procs = sorted({str(d.get("process")) for d in drawn}, key=_proc_key)
    lane = {p: i for i, p in enumerate(procs)}
    step_px = max(30, min(80, 1050 // (len(points) + 1)))
    left, top, lh = 70, 24, 58
    width = left + step_px * (len(points) + 1) + 40
    height = top + lh * len(procs) + 34
    right_edge = left + step_px * (len(points) + 0.6)

    def x(pos: int) -> float:
        return left + step_px * (col[pos] + 0.5)

    parts = [
        f'<svg class="porcupine" viewBox="0 0 {width:.0f} {height}" width="{width:.0f}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="linearization diagram for key {esc(short(a.key))}">'
    ]
    for p, i in lane.items():
        y = top + i * lh
        parts.append(
            f'<line class="pc-lane" x1="{left}" x2="{right_edge:.0f}" y1="{y + 29}" '
            f'y2="{y + 29}"/><text class="pc-proc" x="{left - 8}" y="{y + 33}" '
            f'text-anchor="end">p{esc(p)}</text>'
        )
    lin_points: list[tuple[float, float, int]] = []
    last_x = 0.0
    for c in sorted(chosen, key=lambda c: step_of.get(c, 10**9)):
        if c in step_of and c in ops:
            d = ops[c]
            x0 = x(c)
            x1 = x(d["ret"]) if isinstance(d.get("ret"), int) and d["ret"] in col else right_edge
            px = min(max(last_x + 6, x0 + 5), x1 - 5) if x1 - x0 > 10 else (x0 + x1) / 2
            last_x = px
            lin_points.append((px, top + lane[str(d.get("process"))] * lh + 12, step_of[c]))
    for c in chosen:
        d = ops[c]
        y = top + lane[str(d.get("process"))] * lh + 12
        x0 = x(c)
        has_ret = isinstance(d.get("ret"), int) and d["ret"] in col
        x1 = x(d["ret"]) if has_ret else right_edge
        cls = "pc-op"
        if c == bad_call:
            cls += " pc-bad"
        elif c in step_of:
            cls += " pc-lin"
        else:
            cls += " pc-pending"
        if not has_ret:
            cls += " pc-open"
        tip = f"op {d.get('id')}: {op_text(d)} ({d.get('type')})"
        if c in state_of:
            tip += f"; linearized as step {step_of[c]}, state after: {state_of[c]}"
        parts.append(
            f'<g class="{cls}"><title>{esc(tip)}</title>'
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 6):.1f}" height="34" rx="3"/>'
            f'<text x="{x0 + 4:.1f}" y="{y + 18}">{esc(_fit(op_text(d), x1 - x0))}</text>'
        )
        if c in state_of:
            parts.append(
                f'<text class="pc-state" x="{x0 + 4:.1f}" y="{y + 30}">'
                f"{esc(_fit('→ ' + state_of[c], x1 - x0))}</text>"
            )
        parts.append("</g>")
    if len(lin_points) > 1:
        pts = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in lin_points)
        parts.append(f'<polyline class="pc-path" points="{pts}"/>')
    for px, py, n in lin_points:
        parts.append(
            f'<circle class="pc-step" cx="{px:.1f}" cy="{py:.1f}" r="7"/>'
            f'<text class="pc-step-n" x="{px:.1f}" y="{py + 3.5:.1f}" '
            f'text-anchor="middle">{n}</text>'
        )
    if isinstance(bad_call, int) and bad_call in col:
        by = top + lane[str(a.op.get("process"))] * lh
        parts.append(
            f'<text class="pc-x" x="{x(bad_call) - 14:.1f}" y="{by + 35}" '
            f'text-anchor="middle">✗</text>'
        )
    parts.append(
        f'<text class="pc-axis" x="{left}" y="{height - 10}">history order →'
        f" (positions {points[0]}–{points[-1]}; numbered circles: the longest linearization"
        " found; red: the op that cannot be placed)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _fit(s: str, px: float) -> str:
    n = max(int((px - 6) / 6.3), 1)
    return s if len(s) <= n else s[: max(n - 1, 1)] + "…"


def _proc_key(p: str) -> tuple[int, int | str]:
    try:
        return (0, int(p))
    except ValueError:
        return (1, p)
