"""A transactional anomaly's cycle as a small SVG: its transactions around a circle, each edge
an arrow labelled with why one transaction precedes the next (ww, wr, rw, process, realtime).

The transactional checkers (list-append, rw-register) explain each cycle as steps between
transactions named T1, T2, ...; this draws the same steps, so the sentence under the picture
and the picture say one thing. Everything that came from the history passes through `esc`.
"""

from __future__ import annotations

import math
from typing import Any

from dsjepsen.reports.svg import esc

#: arrow classes per relationship (colours in report.css)
REL_CLASS = {"ww": "cy-ww", "wr": "cy-wr", "rw": "cy-rw", "process": "cy-po", "realtime": "cy-rt"}
#: what each relationship means, for the legend and the arrows' tooltips
REL_WORDS = {
    "ww": "ww: installed the next version",
    "wr": "wr: read what the other wrote",
    "rw": "rw: did not see the other's write",
    "process": "process: ran earlier on the same process",
    "realtime": "realtime: completed before the other began",
}
BOX_H = 40
#: width of a character of the diagram's 11.5 px monospace font
CHAR_W = 7.0
MAX_LABEL = 30


def _txn_text(t: dict[str, Any]) -> str:
    mops = t.get("mops") or []
    parts = []
    for m in mops[:3]:
        if isinstance(m, list | tuple) and m:
            parts.append(" ".join(_short(x) for x in m))
    text = "; ".join(parts) + ("; ..." if len(mops) > 3 else "")
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _short(x: Any) -> str:
    if x is None:
        return "nil"
    if isinstance(x, list | tuple):
        return "[" + " ".join(_short(y) for y in x) + "]"
    return str(x)


def cycle_diagram(raw: dict[str, Any], uid: int = 0) -> str:
    """The SVG of one cycle case (`cycle` and `steps` as the checkers write them); empty
    when the case is not a cycle. `uid` keeps the arrow marker's id unique on the page."""
    cycle = raw.get("cycle")
    steps = raw.get("steps")
    if not isinstance(cycle, list) or not isinstance(steps, list) or not cycle:
        return ""
    n = len(cycle)
    names = [_name_line(t) for t in cycle]
    box_w = max(120.0, 16 + CHAR_W * max(len(x) for x in names + [_txn_text(t) for t in cycle]))
    # neighbours on the circle stand a box width and an arrow's length apart
    radius = 0.0 if n == 1 else max(80.0, (box_w + 110) / (2 * math.sin(math.pi / n)))
    if n == 2:
        radius = 70.0
    cx = radius + box_w / 2 + 24
    cy = radius + BOX_H / 2 + 24
    width = 2 * cx
    legend_y = 2 * cy + 8
    height = legend_y + 18 * len({str(s.get("type")) for s in steps}) + 8
    pos = []
    for i in range(n):
        angle = -math.pi / 2 + 2 * math.pi * i / n
        pos.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    parts = [
        f'<svg class="cycle" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{esc(raw.get("type", "cycle"))} cycle of {n} transactions">',
        f'<defs><marker id="cy-arrow-{uid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="cy-head"/></marker></defs>',
    ]
    for i, step in enumerate(steps[:n]):
        (x1, y1), (x2, y2) = pos[i], pos[(i + 1) % n]
        rel = str(step.get("type"))
        cls = REL_CLASS.get(rel, "cy-po")
        # from box edge to box edge, bent a little so that two arrows between the same pair
        # (a two-transaction cycle) do not overlap
        sx, sy = _edge_point(x1, y1, x2, y2, box_w)
        ex, ey = _edge_point(x2, y2, x1, y1, box_w)
        mx, my = (sx + ex) / 2, (sy + ey) / 2
        dx, dy = ex - sx, ey - sy
        length = math.hypot(dx, dy) or 1.0
        bend = 28 if n <= 2 else 14
        qx, qy = mx - dy / length * bend, my + dx / length * bend
        tip = f"{step.get('from')} < {step.get('to')}: {step.get('text', rel)}"
        parts.append(
            f'<g class="cy-edge {cls}"><title>{esc(tip)}</title>'
            f'<path d="M{sx:.1f},{sy:.1f} Q{qx:.1f},{qy:.1f} {ex:.1f},{ey:.1f}" '
            f'marker-end="url(#cy-arrow-{uid})"/>'
            f'<text x="{(mx + qx) / 2:.1f}" y="{(my + qy) / 2 + 4:.1f}" '
            f'text-anchor="middle">{esc(rel)}</text></g>'
        )
    for t, name, (x, y) in zip(cycle, names, pos, strict=False):
        where = f"process {_short(t.get('process'))}"
        if t.get("node"):
            where += f", {t['node']}"
        tip = (
            f"{t.get('name')}: op {t.get('op_id')}, index {t.get('index')}, {where}, "
            f"{t.get('type')}: {_short(t.get('mops'))}"
        )
        parts.append(
            f'<g class="cy-txn cy-{esc(t.get("type", "ok"))}"><title>{esc(tip)}</title>'
            f'<rect x="{x - box_w / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{box_w:.0f}" '
            f'height="{BOX_H}" rx="5"/>'
            f'<text class="cy-name" x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
            f"{esc(name)}</text>"
            f'<text class="cy-mops" x="{x:.1f}" y="{y + 12:.1f}" text-anchor="middle">'
            f"{esc(_txn_text(t))}</text></g>"
        )
    seen = []
    for s in steps:
        rel = str(s.get("type"))
        if rel not in seen:
            seen.append(rel)
    for i, rel in enumerate(seen):
        y = legend_y + 18 * i + 6
        parts.append(
            f'<g class="cy-edge {REL_CLASS.get(rel, "cy-po")}">'
            f'<path d="M12,{y:.1f} L40,{y:.1f}"/>'
            f'<text class="cy-legend" x="48" y="{y + 4:.1f}">{esc(REL_WORDS.get(rel, rel))}'
            "</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _name_line(t: dict[str, Any]) -> str:
    """`T1 · op 3 · p2 n1`: the name, the op, its process and node when it has them."""
    where = [] if t.get("process") is None else [f"p{_short(t['process'])}"]
    if t.get("node"):
        where.append(str(t["node"]))
    return " · ".join(
        [str(t.get("name")), f"op {t.get('op_id')}", *([" ".join(where)] if where else [])]
    )


def _edge_point(x1: float, y1: float, x2: float, y2: float, box_w: float) -> tuple[float, float]:
    """Where the segment from box centre (x1, y1) towards (x2, y2) leaves the box."""
    dx, dy = x2 - x1, y2 - y1
    if dx == 0 and dy == 0:
        return x1, y1
    sx = (box_w / 2 + 4) / abs(dx) if dx else math.inf
    sy = (BOX_H / 2 + 4) / abs(dy) if dy else math.inf
    s = min(sx, sy, 1.0)
    return x1 + dx * s, y1 + dy * s


CAPTION = (
    "Each box is a transaction of the cycle (hover for its micro-ops); each arrow says why the "
    "transaction at its tail must come before the one at its head. Together they form a cycle, "
    "so no order of the transactions explains what they saw."
)
