"""The message diagram: a Lamport diagram of the node-to-node messages of a Maelstrom run.

The Maelstrom target's relays log every message they carry in `nodes/<node>/messages.jsonl`
(one JSON object a line: `t` wall time in seconds, `node`, `dir` in / out / drop / malformed /
exit, `src`, `dest`, `type`, `msg_id`, `in_reply_to`). A student debugging a broadcast or a
counter needs to see which message was lost and when, as Maelstrom's messages.svg shows it:
one vertical line per node, time flowing down, an arrow per message from its send to its
receipt, and a message that was sent but never received drawn as an arrow ending in a cross.

Only a window is drawn (about +-1 s around the first anomaly, else the first fault, else the
first lost message, capped at MAX_MESSAGES): a whole run is thousands of arrows nobody can read.
Fault windows are drawn as shaded time bands, so a drop inside a partition explains itself.

The logs are parsed here rather than through the target's code because reports may not import
targets (tests/test_layers.py). Times: the relays stamp wall-clock seconds; the history counts
nanoseconds from the start of the client phase, which test.json's `start_time` (taken before
setup) does not mark exactly. So the offset is estimated from the client requests the relays
delivered, matched in order with the history's invocations (NTP-style: the smallest difference
is the offset plus the least delivery delay), with test.json's start time as the fallback.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsjepsen.history import NEMESIS
from dsjepsen.reports.plots import WIDTH
from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.svg import esc, nice_ticks, paint

#: seconds either side of the moment the diagram is centred on
AROUND_S = 1.0
#: at most this many arrows (the nearest to the centre are kept)
MAX_MESSAGES = 300
#: arrows labelled with their type when there are at most this many
LABEL_LIMIT = 60
#: every arrow falls at least this many pixels, so its direction shows even when the
#: delivery took a millisecond of a two-second window (the tooltip has the exact times)
MIN_FALL = 9
#: how many early client requests are matched with invocations to align the clocks
ALIGN_PAIRS = 30
CLIENT = re.compile(r"^c\d+$")
SERVICES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")
#: seconds of log kept beyond the drawn window, so that a message sent inside it and
#: received a little after (latency, a pause) is not drawn as lost
SLACK_S = 5.0
#: one colour per message type (Okabe-Ito); the dropped ones are always red
TYPE_COLOURS = ("#0072b2", "#009e73", "#e69f00", "#cc79a7", "#56b4e9", "#000000", "#999999")
DROP_COLOUR = "#c9372c"
DASHED = ' stroke-dasharray="4 3"'
DOTTED = ' stroke-dasharray="2 2"'


@dataclass
class Message:
    """One node-to-node message: its send, and its receipt if it ever arrived."""

    src: str
    dest: str
    type: str
    msg_id: Any
    in_reply_to: Any
    sent: float | None  # history seconds
    received: float | None
    drop_why: str | None = None

    @property
    def dropped(self) -> bool:
        return self.received is None and self.sent is not None


@dataclass
class Diagram:
    """What the report's section shows: the SVG and a sentence on what it covers."""

    svg: str
    caption: str
    shown: int
    dropped: int


def has_message_logs(run_dir: Path | None) -> bool:
    return run_dir is not None and any((run_dir / "nodes").glob("*/messages.jsonl"))


def iter_entries(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every well-formed entry of every relay's log, one at a time (a busy run logs millions:
    never all in memory); a damaged line is skipped, never fatal."""
    for path in sorted((run_dir / "nodes").glob("*/messages.jsonl")):
        try:
            fh = path.open(encoding="utf-8", errors="replace")
        except OSError:
            continue
        with fh:
            for line in fh:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if isinstance(e, dict) and isinstance(e.get("t"), int | float):
                    yield e


def read_entries(
    run_dir: Path, lo: float | None = None, hi: float | None = None
) -> list[dict[str, Any]]:
    """The entries (wall time `t` within [lo, hi] when given), in time order."""
    out = [
        e for e in iter_entries(run_dir)
        if (lo is None or e["t"] >= lo) and (hi is None or e["t"] <= hi)
    ]  # fmt: skip
    out.sort(key=lambda e: e["t"])
    return out


@dataclass
class _Survey:
    """What one pass over the logs tells before anything is kept: the first client
    requests (to align the clocks) and the first message that never arrived."""

    requests: list[float]
    first_loss: float | None


def survey(run_dir: Path) -> _Survey:
    requests: list[float] = []
    first_loss: float | None = None
    for e in iter_entries(run_dir):
        d = e.get("dir")
        if d == "in":
            src = e.get("src")
            # the harness's own init and topology (c0) come before the history
            if isinstance(src, str) and CLIENT.match(src) and src != "c0":
                requests.append(float(e["t"]))
        elif d in ("lost", "drop"):
            t = e.get("sent_after", e["t"]) if d == "lost" else e["t"]
            if isinstance(t, int | float) and (first_loss is None or t < first_loss):
                first_loss = float(t)
    requests.sort()
    return _Survey(requests[:ALIGN_PAIRS], first_loss)


def wall_offset(run: RunData, requests: list[float]) -> float | None:
    """The wall-clock second at which the history's clock read 0, or None if unknown.
    `requests`: wall times of the first client requests the relays delivered."""
    start = run.start_wall.timestamp() if run.start_wall is not None else None
    invokes = sorted(
        op.time / NS for op in run.history.ops if op.type == "invoke" and op.process != NEMESIS
    )
    pairs = list(zip(requests[:ALIGN_PAIRS], invokes[:ALIGN_PAIRS], strict=False))
    if pairs:
        est = min(w - h for w, h in pairs)
        # the history's clock starts after test.json's start time, never before it
        if start is None or est >= start - 0.5:
            return est
    return start


def pair_messages(entries: list[dict[str, Any]], offset: float) -> list[Message]:
    """Match each delivery with its send: same src, dest, type, msg_id and in_reply_to, in
    order (a restarted node reuses msg_ids, so a queue per key rather than a map)."""
    sends: dict[tuple[Any, ...], deque[Message]] = {}
    out: list[Message] = []
    for e in entries:
        src, dest, d = e.get("src"), e.get("dest"), e.get("dir")
        if not (isinstance(src, str) and isinstance(dest, str)):
            continue
        if not (is_server(src) and is_server(dest)) or src == dest:
            continue
        key = (src, dest, e.get("type"), e.get("msg_id"), e.get("in_reply_to"))
        t = float(e["t"]) - offset
        if d == "out":
            m = Message(src, dest, str(e.get("type")), e.get("msg_id"), e.get("in_reply_to"),
                        t, None)  # fmt: skip
            sends.setdefault(key, deque()).append(m)
            out.append(m)
        elif d == "in":
            q = sends.get(key)
            if q:
                q.popleft().received = t
            else:  # sent before the logs began (or by a node whose log was lost)
                out.append(Message(src, dest, str(e.get("type")), e.get("msg_id"),
                                   e.get("in_reply_to"), None, t))  # fmt: skip
        elif d == "drop":
            for m in reversed(sends.get(key, ())):
                if m.received is None:
                    m.drop_why = str(e.get("why") or "dropped by the relay")
                    break
    return out


def is_server(name: str) -> bool:
    """A node id (Maelstrom's can be any name but a client's or a service's)."""
    return not CLIENT.match(name) and name not in SERVICES


def _centre(
    run: RunData, anomaly_t: int | None, first_loss: float | None, first_request: float | None
) -> tuple[float, str]:
    if anomaly_t is not None:
        return anomaly_t / NS, "the first anomaly"
    applied = [w for w in run.faults if not w.failed]
    parts = [w for w in applied if w.family.startswith("partition")] or applied
    if parts:
        w = parts[0]
        return w.start / NS, f"the start of fault #{w.id + 1} ({w.family})"
    if first_loss is not None:
        return first_loss, "the first lost message"
    return (first_request if first_request is not None else 0.0), "the first client request"


def _when(m: Message) -> float:
    return m.sent if m.sent is not None else m.received if m.received is not None else 0.0


def _clip(s: str, n: int) -> str:
    """A legend entry short enough for its 150 px slot (the full type is in every tooltip)."""
    return s if len(s) <= n else s[: n - 1] + "…"


def _node_key(n: str) -> tuple[int, str]:
    return (int(n[1:]) if n[1:].isdigit() else 1 << 30, n)


def diagram(run: RunData, anomaly_t: int | None = None) -> Diagram | None:
    """The diagram of the run's message logs, or None when there are none to draw."""
    if run.run_dir is None or run.logical_time or not has_message_logs(run.run_dir):
        return None
    seen = survey(run.run_dir)
    offset = wall_offset(run, seen.requests)
    if offset is None:
        return None
    first_loss = seen.first_loss - offset if seen.first_loss is not None else None
    first_request = seen.requests[0] - offset if seen.requests else None
    centre, what = _centre(run, anomaly_t, first_loss, first_request)
    lo, hi = centre - AROUND_S, centre + AROUND_S
    # only the window (and a margin) is read into memory
    entries = read_entries(run.run_dir, offset + lo - SLACK_S, offset + hi + SLACK_S)
    messages = pair_messages(entries, offset)
    if not messages:
        return None
    shown = [
        m for m in messages
        if any(t is not None and lo <= t <= hi for t in (m.sent, m.received))
    ]  # fmt: skip
    if len(shown) > MAX_MESSAGES:
        shown = sorted(shown, key=lambda m: abs(_when(m) - centre))[:MAX_MESSAGES]
        lo, hi = min(_when(m) for m in shown), max(_when(m) for m in shown)
    if not shown:
        return None
    nodes = sorted({m.src for m in shown} | {m.dest for m in shown}, key=_node_key)
    exits = [
        (str(e.get("node")), float(e["t"]) - offset, e.get("code"))
        for e in entries
        if e.get("dir") == "exit" and lo <= float(e["t"]) - offset <= hi
    ]
    svg = _svg(run, shown, nodes, lo, hi, centre if anomaly_t is not None else None, exits)
    dropped = sum(1 for m in shown if m.dropped)
    caption = (
        f"{len(shown)} node-to-node messages from t+{lo:.3f}s to t+{hi:.3f}s, around {what}"
        f"; {dropped} never received (drawn ending in a cross)."
    )
    return Diagram(svg, caption, len(shown), dropped)


def _svg(
    run: RunData,
    shown: list[Message],
    nodes: list[str],
    lo: float,
    hi: float,
    anomaly_s: float | None,
    exits: list[tuple[str, float, Any]],
) -> str:
    left, right, top, bottom = 80, 30, 70, 20
    height = int(min(2200, max(420, 120 + 9 * len(shown))))
    ph = height - top - bottom
    pw = WIDTH - left - right
    span = (hi - lo) or 1.0

    def y(t: float) -> float:
        return top + (min(max(t, lo), hi) - lo) / span * ph

    col = {n: left + pw * (i + 0.5) / len(nodes) for i, n in enumerate(nodes)}
    types = sorted({m.type for m in shown})
    colour = {t: TYPE_COLOURS[i % len(TYPE_COLOURS)] for i, t in enumerate(types)}
    parts = [
        "<defs>"
        + "".join(
            f'<marker id="msg-head-{i}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" '
            f'fill="{colour[t]}"/></marker>'
            for i, t in enumerate(types)
        )
        + "</defs>",
        f'<rect class="plot-bg" x="{left}" y="{top}" width="{pw}" height="{ph}"/>',
    ]
    for w in run.faults:  # shaded bands of the faults that overlap the window
        s, e = w.start / NS, w.end / NS
        if w.failed or e < lo or s > hi:
            continue
        y0, y1 = y(s), y(e)
        parts.append(
            f'<rect class="fault fault-{esc(re.sub(r"[^a-z0-9-]", "", w.family))}"'
            f"{paint(run.looks(w.family).colour)} "
            f'data-fault="{w.id + 1}" x="{left}" y="{y0:.1f}" width="{pw}" '
            f'height="{max(y1 - y0, 1.5):.1f}"><title>{esc(w.family)}: {esc(w.description)}'
            f"</title></rect>"
            f'<text class="fault-label" x="{left + pw - 4}" y="{y0 + 14:.1f}" text-anchor="end">'
            f"#{w.id + 1} {esc(w.family)}{' from ' if s >= lo else ' until '}"
            f"t+{(s if s >= lo else e):.3f}s</text>"
        )
    for t in nice_ticks(lo, hi, 8):
        py = y(t)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{left + pw}" y1="{py:.1f}" y2="{py:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">'
            f"{t:.2f}s</text>"
        )
    mael = (run.results or {}).get("maelstrom")
    ids = mael.get("node_ids") if isinstance(mael, dict) else None
    names = {str(v): str(k) for k, v in ids.items()} if isinstance(ids, dict) else {}
    for n in nodes:
        x = col[n]
        name = f" ({names[n]})" if names.get(n, n) != n else ""
        parts.append(
            f'<line class="msg-node" data-node="{esc(n)}" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
            f'y2="{top + ph}" stroke="#333" stroke-width="1.5"/>'
            f'<text class="legend" x="{x:.1f}" y="{top - 8}" text-anchor="middle" '
            f'font-weight="600">{esc(n)}{esc(name)}</text>'
        )
    if anomaly_s is not None and lo <= anomaly_s <= hi:
        ay = y(anomaly_s)
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{ay:.1f}" y2="{ay:.1f}" stroke="{DROP_COLOUR}"'
            f' stroke-dasharray="6 3" stroke-width="1.5"/><text class="fault-label" x="{left + 4}"'
            f' y="{ay - 4:.1f}">first anomaly t+{anomaly_s:.3f}s</text>'
        )
    label = len(shown) <= LABEL_LIMIT
    for m in sorted(shown, key=_when):
        parts.append(_arrow(m, col, y, colour, types, label, lo, hi))
    for node, t, code in exits:
        if node in col:
            x, py = col[node], y(t)
            parts.append(
                f'<rect x="{x - 6:.1f}" y="{py - 6:.1f}" width="12" height="12" fill="#333">'
                f"<title>{esc(node)} exited (code {esc(code)}) at t+{t:.3f}s</title></rect>"
            )
    legend = [*types, "never received"]
    for i, kind in enumerate(legend):
        c = DROP_COLOUR if i == len(types) else colour[kind]
        lx = left + (i % 5) * 150
        ly = 16 + (i // 5) * 16
        parts.append(
            f'<line x1="{lx}" x2="{lx + 18}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"'
            f"{DASHED if i == len(types) else ''}/>"
            f'<text class="legend" x="{lx + 24}" y="{ly + 5}" font-size="12">{esc(_clip(kind, 17))}</text>'
        )
    return (
        f'<svg id="message-diagram" class="plot" viewBox="0 0 {WIDTH} {height}" role="img" '
        'aria-label="node-to-node messages over time, one line per node" '
        'xmlns="http://www.w3.org/2000/svg">' + "".join(parts) + "</svg>"
    )


def _arrow(
    m: Message,
    col: dict[str, float],
    y: Callable[[float], float],
    colour: dict[str, str],
    types: list[str],
    label: bool,
    lo: float,
    hi: float,
) -> str:
    x0, x1 = col[m.src], col[m.dest]
    ids = f" msg_id {m.msg_id}" if m.msg_id is not None else ""
    ids += f" in_reply_to {m.in_reply_to}" if m.in_reply_to is not None else ""
    sent = f"sent t+{m.sent:.3f}s" if m.sent is not None else "sent before the logs began"
    head = f"{m.src} → {m.dest} {m.type}{ids}: {sent}"
    if m.dropped:
        why = f" ({m.drop_why})" if m.drop_why else ""
        assert m.sent is not None
        y0 = y(m.sent)
        xe = x1 - (6 if x1 > x0 else -6)  # the cross sits on the line it never reached
        ye = y0 + max(MIN_FALL, 14)
        return (
            f'<g class="msg dropped" data-src="{esc(m.src)}" data-dest="{esc(m.dest)}" '
            f'data-type="{esc(m.type)}"><title>{esc(head)}, never received{esc(why)}</title>'
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{xe:.1f}" y2="{ye:.1f}" '
            f'stroke="{DROP_COLOUR}" stroke-width="1.6" stroke-dasharray="4 3"/>'
            f'<path d="M{xe - 5:.1f} {ye - 5:.1f}L{xe + 5:.1f} {ye + 5:.1f}M{xe - 5:.1f} '
            f'{ye + 5:.1f}L{xe + 5:.1f} {ye - 5:.1f}" stroke="{DROP_COLOUR}" stroke-width="2.2"/>'
            + (
                f'<text x="{xe + 8:.1f}" y="{ye + 4:.1f}" font-size="11" fill="{DROP_COLOUR}">'
                f"{esc(m.type)} lost</text>"
                if label
                else ""
            )
            + "</g>"
        )
    ts = m.sent if m.sent is not None else lo
    tr = m.received if m.received is not None else hi
    y0, y1 = y(ts), max(y(tr), y(ts) + MIN_FALL)
    recv = f", received t+{m.received:.3f}s" if m.received is not None else ""
    if m.sent is not None and m.received is not None:
        recv += f" ({(m.received - m.sent) * 1000:.1f} ms)"
    c = colour[m.type]
    clipped = (m.sent is None or m.sent < lo) or (m.received is None or m.received > hi)
    out = (
        f'<g class="msg" data-src="{esc(m.src)}" data-dest="{esc(m.dest)}" '
        f'data-type="{esc(m.type)}"><title>{esc(head)}{esc(recv)}</title>'
        f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{c}" '
        f'stroke-width="1.3" marker-end="url(#msg-head-{types.index(m.type)})"'
        f"{DOTTED if clipped else ''}/>"
    )
    if label:
        out += (
            f'<text x="{(x0 + x1) / 2:.1f}" y="{(y0 + y1) / 2 - 3:.1f}" font-size="11" '
            f'text-anchor="middle" fill="{c}">{esc(m.type)}</text>'
        )
    return out + "</g>"
