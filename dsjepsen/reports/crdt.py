"""The CRDT view: what each node's reads returned over time, how the nodes came together, and
each CRDT anomaly drawn with its ops.

For set and counter workloads the question an engineer asks is not "which op cannot be
placed" but "did the replicas diverge, did they meet again after the heal, and what was lost
where". So the page draws one line per node (for a set, the number of elements each of its
reads returned; for a counter, the value) with the fault windows behind, states convergence
once (the checker's verdict, when the nodes agreed, how long the final reads took, in one set
of sentences that cannot contradict each other), counts what the checkers found against what
they list, and draws each anomaly as a small time diagram of its key's reads per replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsjepsen.reports.anomaly import Anomaly, final_reads_time
from dsjepsen.reports.crdt_ops import OpIndex, describe, when
from dsjepsen.reports.plots import WIDTH, fault_shading
from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.svg import Frame, esc, fmt_num, nice_ticks, paint
from dsjepsen.reports.timeline import short

#: anomaly types that are about elements or replica values
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


@dataclass(frozen=True)
class Tally:
    """What one checker found of one kind, against how many of them it lists."""

    checker: str
    what: str
    found: int
    listed: int
    how: str  # which ones are listed, when not all
    by_node: str  # the listed ones per node ("n1 45, n2 42")


#: (checker, details field with the full count (None: the length of `diverged_keys`),
#: anomaly types it lists, what they are, which it lists when it does not list all)
TALLIES: tuple[tuple[str, str | None, tuple[str, ...], str, str], ...] = (
    (
        "set-full",
        "lost_count",
        ("lost",),
        "lost elements",
        "the first {listed} (at most 100 of a kind)",
    ),
    (
        "set-full",
        "phantom_count",
        ("phantom",),
        "phantom elements",
        "the first {listed} (at most 100 of a kind)",
    ),
    ("set-full", "duplicate_count", ("duplicate",), "duplicated elements", "the first {listed}"),
    (
        "convergence",
        "monotonic_violations",
        ("replica-lost-element", "replica-counter-decreased"),
        "reads through a node that lacked what that node had returned before",
        "the first of each node and key ({listed})",
    ),
    (
        "convergence",
        None,
        ("not-converged",),
        "keys whose nodes still disagreed at their last final reads",
        "the first {listed}",
    ),
    (
        "counter",
        "out_of_bounds",
        ("out-of-bounds",),
        "counter reads out of bounds",
        "the first {listed}",
    ),
    (
        "counter",
        "bad_final_reads",
        ("final-read",),
        "final counter reads that no set of increments explains",
        "the first {listed}",
    ),
)


@dataclass
class CrdtView:
    kind: str  # "set" | "counter"
    key: str
    keys: int
    svg: str
    #: convergence, stated once: the check's verdict, when the nodes agreed, the final reads
    convergence: list[str] = field(default_factory=list)
    tallies: list[Tally] = field(default_factory=list)
    stale: str = ""  # how stale set reads were (set-full's stale windows), one sentence


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
    view_.convergence = convergence(run)
    view_.tallies = tallies(run, anomalies)
    view_.stale = stale_sentence(run)
    return view_


def _checks(run: RunData) -> dict[str, dict[str, Any]]:
    checks = (run.results or {}).get("checks")
    if not isinstance(checks, dict):
        return {}
    return {str(k): v for k, v in checks.items() if isinstance(v, dict)}


def _details(check: dict[str, Any] | None) -> dict[str, Any]:
    det = (check or {}).get("details")
    return det if isinstance(det, dict) else {}


def convergence(run: RunData) -> list[str]:
    """Convergence in a few sentences that agree with each other and with results.json:
    the convergence check's verdict and why, when every node first returned the same value
    (the checker's `time_to_converge_s`, from the heal), and how long the run's final reads
    took (results.json `convergence`: they go on until the nodes agree several rounds in a
    row, so they take longer than the nodes needed to agree)."""
    results = run.results or {}
    check = _checks(run).get("convergence")
    det = _details(check)
    out: list[str] = []
    keys = det.get("keys") if isinstance(det.get("keys"), int) else None
    diverged = det.get("diverged_keys") if isinstance(det.get("diverged_keys"), list) else []
    undecided = det.get("undecided_keys") if isinstance(det.get("undecided_keys"), dict) else {}
    monotonic = det.get("monotonic_violations") or 0
    if check is not None:
        valid = check.get("valid")
        why = []
        if diverged:
            why.append(
                f"{len(diverged)} of {keys} keys did not converge (their nodes still disagreed "
                f"at their last final reads: {', '.join(str(k) for k in diverged[:10])}"
                f"{' …' if len(diverged) > 10 else ''})"
            )
        if monotonic:
            why.append(
                f"{monotonic} read{'' if monotonic == 1 else 's'} through a node lacked what "
                "that node had already returned (monotonic reads per replica)"
            )
        if valid is False:
            out.append("The convergence check failed: " + "; ".join(why or ["see below"]) + ".")
        elif valid is True:
            out.append("The convergence check passed.")
        else:
            out.append(f"The convergence check could not decide: {check.get('reason') or '?'}.")
    t_conv = det.get("time_to_converge_s")
    if isinstance(t_conv, int | float):
        healed = results.get("healed_at")
        measured = det.get("measured_from") or ("healed_at" if healed is not None else "")
        from_heal = measured == "healed_at"
        origin = "every fault was healed" if from_heal else "the final reads began"
        at = ""
        if from_heal and isinstance(healed, int):
            at = f" (at {when(run, healed)}; agreed by {when(run, healed + int(t_conv * NS))})"
        slowest = det.get("slowest_keys") or []
        agreed = keys - len(diverged) - len(undecided) if keys else None
        slow = (
            f"; slowest: {slowest[0].get('key')}"
            if slowest and isinstance(slowest[0], dict) and (agreed or 0) > 1
            else ""
        )
        if agreed is None:
            scope = "every key"
        else:
            scope = f"all {keys} keys" if agreed == keys else f"{agreed} of the {keys} keys"
        text = (
            f"Every node returned the same value of {scope} {t_conv:.3f} s after {origin}{at}{slow}"
        )
        if det.get("first_round_agreed"):
            text += (
                " (at most: the first round of final reads already agreed, so the nodes may "
                "have agreed earlier)"
            )
        out.append(text + ".")
    conv = results.get("convergence")
    if isinstance(conv, dict) and conv.get("rounds") is not None:
        secs = conv.get("seconds")
        dur = f" over {secs:.3f} s" if isinstance(secs, int | float) else ""
        if conv.get("converged"):
            end = "until every node had answered the same for several rounds in a row"
        else:
            end = "and stopped at the convergence timeout with the nodes still disagreeing"
        out.append(
            f"The final reads (every key through every node, after the heal) ran "
            f"{conv.get('rounds')} rounds{dur}, {end}."
        )
    return out


def tallies(run: RunData, anomalies: list[Anomaly]) -> list[Tally]:
    """Per checker and kind: how many it found (its details' full count) and how many it
    lists (its anomalies, each a row of the page), and the listed ones per node."""
    checks = _checks(run)
    out = []
    for checker, field_, types, what, how in TALLIES:
        check = checks.get(checker)
        if check is None:
            continue
        det = _details(check)
        listed = sum(
            1
            for a in check.get("anomalies") or []
            if isinstance(a, dict) and a.get("type") in types
        )
        # the full count; a results.json without it (an older checker) is taken at its list
        n = len(det.get("diverged_keys") or []) if field_ is None else det.get(field_)
        found = max(n, listed) if isinstance(n, int) else listed
        if not found:
            continue
        per_node: dict[str, int] = {}
        for a in anomalies:
            if a.type in types and a.checker == checker:
                per_node[a.node or "?"] = per_node.get(a.node or "?", 0) + 1
        by_node = ", ".join(f"{n} {c}" for n, c in sorted(per_node.items()))
        out.append(
            Tally(
                checker,
                what,
                found,
                listed,
                how.format(listed=listed) if listed < found else "all",
                by_node,
            )
        )
    return out


def cap_note(items: list[Tally]) -> str:
    """One sentence saying which checkers list fewer anomalies than they found ("" if none)."""
    parts = [
        f"{t.checker} found {t.found:,} {t.what} and lists {t.how}"
        for t in items
        if t.listed < t.found
    ]
    return ("The checkers list fewer than they found: " + "; ".join(parts) + ".") if parts else ""


def stale_sentence(run: RunData) -> str:
    """How stale the set reads were: set-full's stale elements and their windows."""
    det = _details(_checks(run).get("set-full"))
    n = det.get("stale_count")
    win = det.get("stale_window_ms")
    if not isinstance(n, int) or not n or not isinstance(win, dict):
        return ""

    def q(k: str) -> str:
        v = win.get(k)
        return f"{v:,.0f} ms" if isinstance(v, int | float) else "?"

    return (
        f"{n:,} elements were missed by some read that began after they were known to exist "
        f"(stale reads, which eventual consistency allows); their stale windows: median "
        f"{q('0.5')}, 95th percentile {q('0.95')}, longest {q('1.0')}."
    )


# -- one anomaly, drawn -------------------------------------------------------------------

LANE_H = 52
BAR_Y = 30  # where a bar starts inside its lane (two label rows above it)
BAR_H = 16
LEFT = 58
TOP = 30
AXIS_H = 34
GAP = 34  # between the two panels
MAX_READS = 300  # bars per diagram: the nearest to the ops it cites
TICK_CHAR_W = 8.5  # a tick label's character at .tick's 14 px, a little wide to be safe

#: how to read a set anomaly's diagram (CAPTIONS["counter"]: a counter's)
CAPTIONS = {
    "set": (
        "One lane per node. Every ok read of the key through that node is a bar from its "
        "invocation to its completion: green when it returned the element; white with a red "
        "edge when it did not although the element was already known to exist (its add had "
        "completed ok, or a read had returned it); light grey before that. The add is blue. "
        "Numbered and thick-edged: the ops listed above; the op the anomaly is about has a black "
        "edge. Left: around the anomaly, with each node's next read once the element was known; "
        "right, after the break: the final reads after the heal. Shaded: fault windows. Click a "
        "bar to find its op in the timeline."
    ),
    "counter": (
        "One lane per node. Every ok read of the counter through that node is a grey bar from "
        "its invocation to its completion (hover for its value). Numbered and thick-edged, with "
        "the value read: the ops listed above; the op the anomaly is about has a black edge. "
        "Right, after a break: the final reads after the heal. Shaded: fault windows. Click a "
        "bar to find its op in the timeline."
    ),
}


def caption(a: Anomaly) -> str:
    """How to read anomaly `a`'s diagram."""
    return CAPTIONS["set" if a.element is not None else "counter"]


@dataclass
class _Panel:
    t0: int
    t1: int
    x0: float
    x1: float
    label: str

    def x(self, t: int) -> float:
        span = max(self.t1 - self.t0, 1)
        return self.x0 + (t - self.t0) / span * (self.x1 - self.x0)


def _range(index: OpIndex, ids: list[int], pad_min: int) -> tuple[int, int]:
    ops = [index.op(i) for i in ids]
    t0 = min(o.invoke.time for o in ops)
    t1 = max(o.complete.time if o.complete is not None else o.invoke.time for o in ops)
    pad = max(int((t1 - t0) * 0.15), pad_min)
    return max(0, t0 - pad), t1 + pad


def _known(index: OpIndex, a: Anomaly, key_reads: list[int]) -> int | None:
    """When the anomaly's element was first known to exist: its add completed ok, or a read
    returned it (None for counters, or an element never known)."""
    if a.element is None:
        return None
    times = [
        index.op(c.op).complete.time  # type: ignore[union-attr]
        for c in a.cited
        if c.op is not None
        and index.op(c.op).f == "add"
        and index.op(c.op).type == "ok"
        and index.op(c.op).complete is not None
    ]
    bound = min(times) if times else None
    first = bound
    for i in key_reads:  # by invocation: only the reads that began before the bound
        o = index.op(i)
        if first is not None and o.invoke.time >= first:
            break
        done = o.complete.time if o.complete is not None else None
        late = done is None or (first is not None and done >= first)
        if not late and isinstance(o.output, list) and a.element in o.output:
            first = done
    return first


def diagram(index: OpIndex, a: Anomaly) -> str:
    """A small time diagram of a CRDT anomaly: its key's reads per node around the ops it
    cites (and the final reads, when it cites some), the element's add, the fault windows.
    Empty when the anomaly cites no op of the history."""
    run = index.run
    cited = [c.op for c in a.cited if c.op is not None]
    if not cited or run.logical_time:
        return ""
    number = {c.op: c.n for c in a.cited if c.op is not None}
    key_reads = index.reads.get(short(a.key, 24), [])
    known = _known(index, a, key_reads)
    early = [i for i in cited if not index.is_final(i)]
    if early and known is not None:
        # each replica's next read once the element was known: whether it shows the element
        nxt: dict[str, int] = {}
        for i in key_reads:
            if index.op(i).invoke.time > known and not index.is_final(i):
                nxt.setdefault(index.node(i), i)
        early += nxt.values()
    final = (
        [i for i in key_reads if index.is_final(i)] if any(index.is_final(i) for i in cited) else []
    )
    spans: list[tuple[int, int, str]] = []
    if early:
        spans.append((*_range(index, early, NS // 10), "around the anomaly"))
    if final:
        spans.append((*_range(index, final, NS // 40), "final reads, after the heal"))
    right = WIDTH - 12
    if len(spans) == 2:
        split = LEFT + (right - LEFT - GAP) * 0.68
        panels = [
            _Panel(*spans[0][:2], LEFT, split, spans[0][2]),
            _Panel(*spans[1][:2], split + GAP, right, spans[1][2]),
        ]
    else:
        panels = [_Panel(*spans[0][:2], LEFT, right, spans[0][2])]
    shown = [
        i
        for i in key_reads
        if any(p.t0 <= index.op(i).invoke.time <= p.t1 for p in panels) or i in number
    ]
    if len(shown) > MAX_READS:
        anchor_t = index.op(a.anchor).invoke.time if a.anchor is not None else 0
        near = sorted(shown, key=lambda i: abs(index.op(i).invoke.time - anchor_t))
        keep = set(near[:MAX_READS]) | set(number)
        shown = [i for i in shown if i in keep]
    bars = list(dict.fromkeys([*(i for i in cited if i not in key_reads), *shown]))
    nodes = [str(n) for n in run.nodes] or sorted({index.node(i) for i in bars})
    for i in bars:
        if index.node(i) not in nodes:
            nodes.append(index.node(i))
    lane = {n: k for k, n in enumerate(nodes)}
    height = TOP + LANE_H * len(nodes) + AXIS_H
    bottom = TOP + LANE_H * len(nodes)
    parts = [
        f'<svg class="plot cr-diagram" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="the reads of key '
        f'{esc(short(a.key))} per node around anomaly {a.n}">'
    ]
    for n, k in lane.items():
        y = TOP + k * LANE_H
        parts.append(
            f'<line class="cr-lane" x1="{LEFT}" x2="{right}" y1="{y + BAR_Y + BAR_H / 2}" '
            f'y2="{y + BAR_Y + BAR_H / 2}"/><text class="tick" x="{LEFT - 8}" '
            f'y="{y + BAR_Y + BAR_H / 2 + 5}" text-anchor="end">{esc(n)}</text>'
        )
    for p in panels:
        parts += _panel_frame(run, p, bottom)
    if len(panels) == 2:  # the time axis is broken between the panels
        mid = (panels[0].x1 + panels[1].x0) / 2
        parts.append(
            f'<line class="cr-break" x1="{mid:.1f}" x2="{mid:.1f}" y1="{TOP}" y2="{bottom}"/>'
        )
    label_end: dict[tuple[int, int], float] = {}
    for i in sorted(bars, key=lambda i: (i not in number, index.op(i).invoke.time)):
        o = index.op(i)
        p = next((p for p in panels if p.t0 <= o.invoke.time <= p.t1), None)
        if p is None:
            continue
        node = index.node(i)
        y = TOP + lane.get(node, 0) * LANE_H
        x0 = p.x(o.invoke.time)
        x1 = min(p.x(o.complete.time if o.complete is not None else p.t1), p.x1)
        w = max(x1 - x0, 4.0)
        cls = ["cr-op"]
        if o.f == "add":
            cls.append("cr-add")
        elif a.element is not None and isinstance(o.output, list):
            if a.element in o.output:
                cls.append("cr-has")
            else:  # missing it is wrong only once the element was known to exist
                late = known is not None and o.invoke.time > known
                cls.append("cr-lacks" if late else "cr-before")
        else:
            cls.append("cr-read")
        if i in number:
            cls.append("cr-cited")
        if i == a.anchor:
            cls.append("cr-anchor")
        tip = f"op {i}: {describe(index, i, a.element)}"
        parts.append(
            f'<a href="#op-{i}"><rect class="{" ".join(cls)}" data-op="{i}" x="{x0:.1f}" '
            f'y="{y + BAR_Y}" width="{w:.1f}" height="{BAR_H}" rx="2">'
            f"<title>{esc(tip)}</title></rect></a>"
        )
        if i in number:
            text = f"{number[i]}: op {i}"
            if a.element is None and o.type == "ok" and not isinstance(o.output, list):
                text += f" = {short(o.output, 12)}"  # a counter read: the value it returned
            tw = 7.6 * len(text)
            tx = min(x0, p.x1 - tw)
            for row in (0, 1):
                if label_end.get((lane.get(node, 0), row), -1e9) < tx:
                    label_end[(lane.get(node, 0), row)] = tx + tw + 4
                    parts.append(
                        f'<text class="cr-label" x="{tx:.1f}" y="{y + 12 + 13 * row}">'
                        f"{esc(text)}</text>"
                    )
                    break
    parts.append("</svg>")
    return "".join(parts)


def _panel_frame(run: RunData, p: _Panel, bottom: int) -> list[str]:
    """A panel's fault windows, time ticks and title."""
    out = []
    for w in run.faults:
        if w.failed or w.end < p.t0 or w.start > p.t1:
            continue
        x0, x1 = p.x(max(w.start, p.t0)), p.x(min(w.end, p.t1))
        out.append(
            f'<rect class="fault"{paint(run.looks(w.family).colour)} x="{x0:.1f}" y="{TOP}" '
            f'width="{max(x1 - x0, 1.5):.1f}" height="{bottom - TOP}">'
            f"<title>{esc(f'#{w.id + 1} {w.family}: {w.description}')}</title></rect>"
        )
    ticks = nice_ticks(p.t0 / NS, p.t1 / NS, max(2, int((p.x1 - p.x0) / 150)))
    for t in ticks:
        x = p.x(int(t * NS))
        if p.x0 - 1 <= x <= p.x1 + 1:
            label = f"{fmt_num(t)}s"
            # a tick by the right edge is written leftwards from it, never past the picture
            anchor = "end" if x + TICK_CHAR_W * len(label) / 2 > WIDTH - 2 else "middle"
            out.append(
                f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}"/>'
                f'<text class="tick" x="{x:.1f}" y="{bottom + 18}" text-anchor="{anchor}">'
                f"{esc(label)}</text>"
            )
    out.append(f'<text class="cr-panel" x="{p.x0:.1f}" y="{TOP - 12}">{esc(p.label)}</text>')
    return out


def facts(run: RunData, raw: dict[str, Any]) -> list[tuple[str, str]]:
    """An anomaly's fields in words, for one whose ops were not found in the history: times
    as times (never raw nanoseconds), an add and the nodes that returned an element as
    sentences, anything else as short text."""
    out = []
    for k, v in raw.items():
        if k in ("message", "type", "located_only"):
            continue
        if k == "add" and isinstance(v, dict):
            parts = [str(v.get("type") or "?")]
            if v.get("node"):
                parts.append(f"through {v['node']}")
            if isinstance(v.get("call_time"), int):
                parts.append(f"invoked {when(run, v['call_time'])}")
            if isinstance(v.get("ret_time"), int):
                parts.append(f"completed {when(run, v['ret_time'])}")
            out.append(("its add", ", ".join(parts)))
        elif k == "seen_on" and isinstance(v, dict):
            seen = [
                f"{n} first at {when(run, s['first'])}, last at {when(run, s['last'])}"
                for n, s in sorted(v.items())
                if isinstance(s, dict)
                and isinstance(s.get("first"), int)
                and isinstance(s.get("last"), int)
            ]
            out.append(("returned through", "; ".join(seen) or "no read returned it"))
        elif (k.endswith("_at") or k.endswith("_time")) and isinstance(v, int):
            out.append((k.replace("_", " "), when(run, v)))
        else:
            out.append((k.replace("_", " "), short(v, 300)))
    return out
