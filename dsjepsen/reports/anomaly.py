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

from dsjepsen.reports import crdt_ops
from dsjepsen.reports.crdt_ops import Cited
from dsjepsen.reports.rundata import RunData
from dsjepsen.reports.svg import esc
from dsjepsen.reports.timeline import node_label, short

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
    #: the one op the anomaly is about (the op that cannot be placed, or the op a CRDT
    #: anomaly cites), as a timeline op id; None when the anomaly names no op of the history
    anchor: int | None = None
    #: when it happened: the anchor's invocation (ns or position), else a time the checker
    #: recorded; None when nothing says. "First anomaly" everywhere means the smallest `t`.
    t: int | None = None
    node: str | None = None  # the node that served the anchor op (or the checker's `node`)
    fault: str | None = None  # the fault active while the anchor ran; None: none was
    phase: str = ""  # "during <family>", "after heal", "before any fault", "final reads"
    #: False for a failing key the checker only located (its op and a sentence, no
    #: linearization): counted and placed like the others, drawn without a diagram
    explained: bool = True
    #: a CRDT anomaly's ops, found in the history (crdt_ops.cite): the add, the reads that
    #: returned or missed the element, the final reads; each with its role, in reading order
    cited: list[Cited] = field(default_factory=list)
    #: the element a set anomaly is about (None otherwise)
    element: Any = None

    @property
    def is_linearizability(self) -> bool:
        return self.op is not None


def collect(results: dict[str, Any] | None) -> list[Anomaly]:
    """Anomalies of every failed check, deduplicated (composed checks repeat their children's)."""
    if not results:
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    checks = results.get("checks")
    if isinstance(checks, dict):
        for name, res in checks.items():
            # only a check that failed has anomalies: what an undecided check lists (the
            # vacuous check's "fault never took effect") is why the verdict is unknown, which
            # the page says, not a correctness anomaly to write an RCA about
            if isinstance(res, dict) and res.get("valid") is False:
                for a in res.get("anomalies") or []:
                    found.append((str(name), a))
                # failing keys past the checker's explanation budget: located (their failing
                # op and one sentence), so that counts, "first" and hypotheses cover them all
                details = res.get("details") if isinstance(res.get("details"), dict) else {}
                for u in details.get("unexplained") or []:
                    if isinstance(u, dict):
                        found.append((str(name), {**u, "located_only": True}))
    for a in results.get("anomalies") or []:
        found.append(("results", a))
    # an anomaly another source already listed is dropped (the composed result repeats its
    # checks'); within one checker's list every entry stays, so the page counts what
    # results.json lists even when a checker lists one case twice
    seen: set[tuple[str, str, str]] = set()
    source_seen: dict[str, set[tuple[str, str, str]]] = {}
    out: list[Anomaly] = []
    for checker, a in found:
        if not isinstance(a, dict):
            a = {"type": "anomaly", "message": str(a)}
        sig = (str(a.get("type")), short(a.get("key")), str(a.get("message")))
        mine = source_seen.setdefault(checker, set())
        if sig in seen and sig not in mine:
            continue
        seen.add(sig)
        mine.add(sig)
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
                explained=not a.get("located_only"),
            )
        )
    return out


def reason_head(reason: str) -> str:
    """A checker's reason without the "; first: <anomaly>" it may end with: the page names
    the first anomaly one way (the earliest invoked), and a checker's own first (its list
    order, e.g. key by key) may be another one."""
    return reason.split("; first: ")[0]


OPDICT_KEYS = ("id", "process", "f", "key", "value", "output", "type", "call", "ret", "node")


def _norm(d: dict[str, Any]) -> dict[str, Any]:
    """An opdict with every documented field present (None when the checker left it out;
    `node` is filled from the history by link_ops)."""
    out = {k: d.get(k) for k in OPDICT_KEYS}
    out["call_time"] = d.get("call_time")
    out["ret_time"] = d.get("ret_time")
    return out


def link_ops(run: RunData, anomalies: list[Anomaly]) -> list[Anomaly]:
    """Map each anomaly's ops (by history index) to timeline op ids, find the op it is about,
    when and where it ran and which fault was active, and return the anomalies in time order
    (renumbered), so that "the first anomaly" is `result[0]` on every part of the page."""
    by_call = {o.call: o.id for o in run.operations}
    by_ret = {o.ret: o.id for o in run.operations if o.ret is not None}
    final_from = final_reads_time(run)
    index: crdt_ops.OpIndex | None = None
    for a in anomalies:
        ids: set[int] = set()
        for d in _all_opdicts(a):
            call = d.get("call")
            if isinstance(call, int) and call in by_call:
                ids.add(by_call[call])
                d["node"] = node_label(run.operations[by_call[call]])
        for w in a.window:
            if w in by_call:
                ids.add(by_call[w])
            elif w in by_ret:
                ids.add(by_ret[w])
        # the op a checker names by its id (a lock's second holder, a bank read, a txn), and
        # the transactions of a cycle, by theirs
        for t in [a.raw, *(a.raw.get("cycle") or [])]:
            op_id = t.get("op_id") if isinstance(t, dict) else None
            if isinstance(op_id, int) and 0 <= op_id < len(run.operations):
                ids.add(op_id)
        if a.op is None and a.type in crdt_ops.TYPES:
            index = index or crdt_ops.OpIndex(run)
            found = crdt_ops.cite(index, a.type, a.raw)
            a.anchor, a.cited, a.element = found.anchor, found.cited, found.element
            ids |= found.op_ids
        a.op_ids = ids
        _place(run, a, by_call, final_from)
    never = 1 << 62
    ordered = sorted(anomalies, key=lambda a: (a.t if a.t is not None else never, a.n))
    for n, a in enumerate(ordered, start=1):
        a.n = n
    return ordered


def final_reads_time(run: RunData) -> int | None:
    """When the final reads began (results.json `final_reads_from_index`), or None."""
    idx = (run.results or {}).get("final_reads_from_index")
    if not isinstance(idx, int) or not run.history.ops:
        return None
    ops = run.history.ops
    if idx >= len(ops):
        return None
    return (
        ops[idx].time
        if ops[idx].index == idx
        else next((o.time for o in ops if o.index >= idx), None)
    )


def _place(run: RunData, a: Anomaly, by_call: dict[int, int], final_from: int | None) -> None:
    """Fill anchor, t, node, fault and phase of one anomaly from the history."""
    raw = a.raw
    end: int | None
    if a.anchor is not None:
        pass  # a CRDT anomaly's op, found by crdt_ops.cite
    elif a.op is not None and isinstance(a.op.get("call"), int) and a.op["call"] in by_call:
        a.anchor = by_call[a.op["call"]]
    elif isinstance(raw.get("op_id"), int) and 0 <= raw["op_id"] < len(run.operations):
        a.anchor = raw["op_id"]
    if a.anchor is not None:
        o = run.operations[a.anchor]
        a.t = o.invoke.time
        a.node = o.node
        end = o.complete.time if o.complete is not None else run.end_time
    else:
        # no op found: the times the checker recorded, the anchor's invocation first (a lost
        # element's add, the read that missed an element, a read out of bounds)
        add_v = raw.get("add")
        add: dict[str, Any] = add_v if isinstance(add_v, dict) else {}
        for src, k in (
            (raw, "call_time"),
            (raw, "missing_at"),
            (add, "call_time"),
            (raw, "ret_time"),
            (add, "ret_time"),
            (raw, "previous_at"),
        ):
            t = src.get(k)
            if isinstance(t, int):
                a.t = t
                break
        ret = raw.get("ret_time")
        end = ret if isinstance(ret, int) else a.t
    if raw.get("node") is not None and (a.node is None or a.type in crdt_ops.TYPES):
        # a CRDT checker names the replica at fault ("lost by n1"), which need not be the
        # node its anchor went through (the add of a lost element)
        a.node = str(raw["node"])
    if a.t is None:
        a.phase = "unknown"
        return
    end = a.t if end is None else end
    active = [w for w in run.faults if not w.failed and w.start <= end and w.end >= a.t]
    if active:
        a.fault = "; ".join(w.description for w in active)
        a.phase = "during " + ", ".join(sorted({w.family for w in active}))
    elif final_from is not None and a.t >= final_from:
        a.phase = "final reads"
    elif any(not w.failed and w.end < a.t for w in run.faults):
        a.phase = "after a heal"
    else:
        a.phase = "before any fault" if run.faults else "no faults"


def _all_opdicts(a: Anomaly) -> list[dict[str, Any]]:
    out = [p["op"] for p in a.prefix if isinstance(p.get("op"), dict)]
    out += a.pending
    if a.op:
        out.append(a.op)
    return out


#: fs whose interesting part is what they returned, not what they were called with
READ_FS = frozenset({"read", "get"})


def op_text(d: dict[str, Any], n: int = 40) -> str:
    """'write 3', 'read → 3', 'cas 1→4' — how an op reads in a diagram (values as `short`
    shows them everywhere: nil for no value, "" for the empty string)."""
    f = str(d.get("f"))
    v, out = d.get("value"), d.get("output")
    if f == "txn" and isinstance(v, list):  # a transaction: its micro-ops, as Elle writes them
        return "txn " + mops_text(out if d.get("type") == "ok" and out else v, n * 3)
    if f in READ_FS or f.startswith("read"):
        return f"{f} → {value_text(out, n)}" if d.get("type") == "ok" else f"{f} → ?"
    if f == "cas" and isinstance(v, list) and len(v) == 2:
        return f"cas {value_text(v[0], n // 2)}→{value_text(v[1], n // 2)}"
    return f"{f} {value_text(v, n)}"


def elle_text(x: Any) -> str:
    """A key, value or micro-op as the checkers' sentences write them: nil, [1 2 3]."""
    if x is None:
        return "nil"
    if isinstance(x, list | tuple):
        return "[" + " ".join(elle_text(y) for y in x) + "]"
    return short(x, 40)


def mops_text(mops: Any, limit: int = 300) -> str:
    """A transaction's micro-ops: `[append 100 2] [r 101 [1]]`, cut (with …) past limit."""
    if not isinstance(mops, list | tuple):
        return short(mops, limit)
    text = " ".join(elle_text(m) for m in mops)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def value_text(v: Any, n: int = 40) -> str:
    """A value as the checker's states show it: nil for none, strings quoted ('' for the
    empty string, 'x 3 0 y' for a kv value), everything else as `short` writes it. One
    convention for the op labels and the state labels of a diagram."""
    if isinstance(v, str):
        body = v if len(v) <= n - 2 else v[: n - 3] + "…"
        return f"'{body}'"
    return short(v, n)


def operation_dict(run: RunData, op_id: int) -> dict[str, Any]:
    o = run.operations[op_id]
    return {**o.to_dict(), "node": node_label(o)}


#: diagram geometry (px): monospace glyph width at the diagram's 12 px font, paddings
CHAR_W = 7.4
MARK_W = 24  # room for a step marker before the label
MIN_GAP = 26
LANE_H = 58
BAR_H = 38


def diagram_ops(
    a: Anomaly, run: RunData
) -> tuple[list[dict[str, Any]], dict[int, int], dict[int, str]]:
    """Which ops the diagram draws: the op that cannot be placed, the last DIAGRAM_STEPS
    steps of the linearization, every step that set the state the register is left in (the
    write the checker's sentence cites may be far back), the pending ops and the window.
    Returns (ops in history order, step number by call position, state after by call)."""
    assert a.op is not None
    step_of: dict[int, int] = {}
    state_of: dict[int, str] = {}
    ops: dict[int, dict[str, Any]] = {}
    first_step = a.prefix_omitted + 1
    tail_from = max(0, len(a.prefix) - DIAGRAM_STEPS)
    prev_state: Any = object()
    changes: list[int] = []
    for i, p in enumerate(a.prefix):
        d = p.get("op")
        if not (isinstance(d, dict) and isinstance(d.get("call"), int)):
            continue
        step_of[d["call"]] = first_step + i
        state_of[d["call"]] = short(p.get("state"), 40)
        if p.get("state") != prev_state or str(d.get("f")) != "read":
            changes.append(i)
        prev_state = p.get("state")
        if i >= tail_from:
            ops[d["call"]] = d
    for i in changes[-3:]:  # the writes that made the state the failing op contradicts
        d = a.prefix[i]["op"]
        ops[d["call"]] = d
    for d in a.pending:
        if isinstance(d.get("call"), int):
            ops.setdefault(d["call"], d)
    bad_call = a.op.get("call")
    by_call = {o.call: o for o in run.operations}
    for w in a.window:
        if w in by_call and w not in ops and by_call[w].key == a.key:
            ops[w] = next(
                (p["op"] for p in a.prefix if p["op"].get("call") == w),
                operation_dict(run, by_call[w].id),
            )
    must = {bad_call} | {a.prefix[i]["op"]["call"] for i in changes[-3:]}
    chosen = sorted(ops, key=lambda c: (c not in must, abs(c - (bad_call or 0))))
    keep = sorted(chosen[:MAX_DIAGRAM_OPS])
    if isinstance(bad_call, int):
        ops[bad_call] = a.op
        if bad_call not in keep:
            keep = sorted([*keep, bad_call])
    return [ops[c] for c in keep], step_of, state_of


def diagram(run: RunData, a: Anomaly) -> str:
    """A Porcupine-style SVG of the anomaly's window (empty for non-linearizability ones).

    Nothing in it is ever cut: the horizontal layout is computed from the labels, so each
    op's bar is as wide as its full text (history order is kept: a position never moves left
    of an earlier one), and the step marker sits beside the label rather than over it. The
    caption is the page's HTML (it wraps), not SVG text (which does not).
    """
    if a.op is None:
        return ""
    drawn, step_of, state_of = diagram_ops(a, run)
    if not drawn:
        return ""
    bad_call = a.op.get("call")
    procs = sorted({str(d.get("process")) for d in drawn}, key=_proc_key)
    # where each lane's ops ran: in the lane label when the process used one node throughout
    # (the usual case), else after each op's own label
    lane_nodes = {
        p: {d.get("node") or "" for d in drawn if str(d.get("process")) == p} for p in procs
    }
    lane_label = {
        p: f"p{p} · {next(iter(ns))}" if len(ns) == 1 and next(iter(ns)) else f"p{p}"
        for p, ns in lane_nodes.items()
    }
    points = sorted(
        {d["call"] for d in drawn if isinstance(d.get("call"), int)}
        | {d["ret"] for d in drawn if isinstance(d.get("ret"), int)}
    )
    labels: dict[int, tuple[str, str]] = {}
    need: dict[int, float] = {}
    for d in drawn:
        c = d["call"]
        top = op_text(d)
        if len(lane_nodes[str(d.get("process"))]) > 1 and d.get("node"):
            top += f" · {d['node']}"
        sub = f"→ {state_of[c]}" if c in state_of else ("cannot be placed" if c == bad_call else "")
        labels[c] = (top, sub)
        mark = MARK_W if (c in step_of or c == bad_call) else 0
        need[c] = mark + 10 + CHAR_W * max(len(top), len(sub))
    lane = {p: i for i, p in enumerate(procs)}
    label_w = 16 + CHAR_W * max(len(lane_label[p]) for p in procs)
    left, top_y = 12, 12
    ends_at: dict[int, list[int]] = {}
    for d in drawn:
        if isinstance(d.get("ret"), int):
            ends_at.setdefault(d["ret"], []).append(d["call"])
    xs: dict[int, float] = {}
    last = left - MIN_GAP / 2
    for pnt in points:
        x = last + MIN_GAP
        for c in ends_at.get(pnt, []):
            x = max(x, xs[c] + need[c])
        xs[pnt] = x
        last = x
    right_edge = last + MIN_GAP
    for d in drawn:
        if not isinstance(d.get("ret"), int):
            right_edge = max(right_edge, xs[d["call"]] + need[d["call"]])
    width = right_edge + 16
    height = top_y + LANE_H * len(procs) + 8
    # the lane labels are an SVG of their own that stays at the left edge of the diagram's
    # box (CSS sticky) while the ops scroll under it: the process and node of the op that
    # cannot be placed stay in view when the box is scrolled to that op
    lanes = [
        f'<svg class="pc-lanes" viewBox="0 0 {label_w:.0f} {height}" width="{label_w:.0f}" '
        f'height="{height}" data-w="{label_w:.0f}" data-h="{height}" '
        'xmlns="http://www.w3.org/2000/svg" aria-hidden="true">'
        f'<rect class="pc-lanes-bg" x="0" y="0" width="{label_w:.0f}" height="{height}"/>'
    ]
    parts = [
        f'<svg class="porcupine" viewBox="0 0 {width:.0f} {height}" width="{width:.0f}" '
        f'height="{height}" data-w="{width:.0f}" data-h="{height}" '
        'xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="linearization diagram for key {esc(short(a.key))}">'
    ]
    for p, i in lane.items():
        y = top_y + i * LANE_H
        lanes.append(
            f'<text class="pc-proc" x="{label_w - 8:.0f}" y="{y + BAR_H / 2 + 4}" '
            f'text-anchor="end">{esc(lane_label[p])}</text>'
        )
        parts.append(
            f'<line class="pc-lane" x1="0" x2="{right_edge:.0f}" y1="{y + BAR_H / 2}" '
            f'y2="{y + BAR_H / 2}"/>'
        )
    marks: list[tuple[float, float, int]] = []
    path_at = len(parts)
    for d in drawn:
        c = d["call"]
        y = top_y + lane[str(d.get("process"))] * LANE_H
        x0 = xs[c]
        has_ret = isinstance(d.get("ret"), int)
        x1 = xs[d["ret"]] if has_ret else right_edge
        cls = "pc-op"
        if c == bad_call:
            cls += " pc-bad"
        elif c in step_of:
            cls += " pc-lin"
        else:
            cls += " pc-pending"
        if not has_ret:
            cls += " pc-open"
        tip = f"op {d.get('id')}: {op_text(d, 200)} ({d.get('type')}), process {d.get('process')}"
        tip += f", node {d['node']}" if d.get("node") else ""
        if c in state_of:
            tip += f"; linearized as step {step_of[c]}, state after: {state_of[c]}"
        mark = MARK_W if (c in step_of or c == bad_call) else 0
        top_t, sub_t = labels[c]
        parts.append(
            f'<g class="{cls}" data-call="{c}"><title>{esc(tip)}</title>'
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 6):.1f}" height="{BAR_H}" rx="3"/>'
            f'<text class="pc-label" x="{x0 + mark + 5:.1f}" y="{y + 16}">{esc(top_t)}</text>'
        )
        if sub_t:
            parts.append(
                f'<text class="pc-state" x="{x0 + mark + 5:.1f}" y="{y + 31}">{esc(sub_t)}</text>'
            )
        parts.append("</g>")
        if c in step_of:
            marks.append((x0 + 13, y + BAR_H / 2, step_of[c]))
        elif c == bad_call:
            parts.append(
                f'<text class="pc-x" x="{x0 + 13:.1f}" y="{y + BAR_H / 2 + 6}" '
                f'text-anchor="middle">✗</text>'
            )
    marks.sort(key=lambda m: m[2])
    if len(marks) > 1:
        # under the bars (inserted right after the lanes), so it never runs across a label
        pts = " ".join(f"{px:.1f},{py:.1f}" for px, py, _ in marks)
        parts.insert(path_at, f'<polyline class="pc-path" points="{pts}"/>')
    for px, py, n in marks:
        r = 8 if n < 100 else 10
        parts.append(
            f'<circle class="pc-step" cx="{px:.1f}" cy="{py:.1f}" r="{r}"/>'
            f'<text class="pc-step-n" x="{px:.1f}" y="{py + 3.5:.1f}" '
            f'text-anchor="middle">{n}</text>'
        )
    parts.append("</svg>")
    return "".join(lanes) + "</svg>" + "".join(parts)


def caption(a: Anomaly) -> str:
    """The diagram's caption, as page text (it wraps with the page)."""
    if a.op is None:
        return ""
    return (
        "One lane per client process, labelled with the node its ops went through (each op "
        "names its own when they differ). History order left to right (each position is an "
        "invocation or a completion; bars are as wide as their labels, not their "
        "durations). Numbered circles: the longest "
        "linearization found, with the state after each step; red ✗: the op that cannot be "
        "placed; dashed grey: pending ops that could still take effect."
    )


def _proc_key(p: str) -> tuple[int, int | str]:
    try:
        return (0, int(p))
    except ValueError:
        return (1, p)
