"""The clock plot: each node's clock offset over the run, from the clock nemesis's records.

A clock fault's completion records `clock_offsets` (the offset it set, per node, in seconds)
and `measured_offsets` (what the node's clock then read). The plot draws the set offsets as a
step line per node and the measured ones as dots on it, with the fault windows behind: a
reader sees which node was ahead or behind, by how much, and whether the fault took hold.
"""

from __future__ import annotations

from typing import Any

from dsjepsen.history import NEMESIS
from dsjepsen.reports.crdt import NODE_COLOURS
from dsjepsen.reports.plots import WIDTH, fault_shading
from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.svg import Frame, esc


def _offsets(value: Any, field: str) -> dict[str, float]:
    if not isinstance(value, dict) or not isinstance(value.get(field), dict):
        return {}
    out = {}
    for n, s in value[field].items():
        if isinstance(s, int | float) and not isinstance(s, bool):
            out[str(n)] = float(s)
    return out


def clock_svg(run: RunData) -> str:
    """The plot as SVG, or "" when no nemesis completion carries clock offsets."""
    if run.logical_time:
        return ""
    set_pts: dict[str, list[tuple[int, float]]] = {}
    measured: dict[str, list[tuple[int, float]]] = {}
    for op in run.history.ops:
        if op.process != NEMESIS or op.type == "invoke":
            continue
        for n, s in _offsets(op.value, "clock_offsets").items():
            set_pts.setdefault(n, []).append((op.time, s))
        for n, s in _offsets(op.value, "measured_offsets").items():
            measured.setdefault(n, []).append((op.time, s))
    if not set_pts and not measured:
        return ""
    nodes = sorted(set(set_pts) | set(measured))
    vals = [s for pts in (*set_pts.values(), *measured.values()) for _, s in pts] + [0.0]
    lo, hi = min(vals), max(vals)
    pad = max((hi - lo) * 0.1, 0.5)
    end = max(run.end_time, 1) / NS
    fr = Frame(WIDTH, 280, 0.0, end, lo - pad, hi + pad, top=50, left=70)
    parts = fr.axes("seconds since start", "clock offset (s)")
    parts += fault_shading(run, fr, NS)
    zero = fr.y(0.0)
    parts.append(
        f'<line class="zero" x1="{fr.left}" x2="{fr.left + fr.pw:.1f}" y1="{zero:.1f}" '
        f'y2="{zero:.1f}"/>'
    )
    for i, node in enumerate(nodes):
        colour = NODE_COLOURS[i % len(NODE_COLOURS)]
        pts = set_pts.get(node, [])
        if pts:
            d = [f"M{fr.left} {zero:.1f}"]
            for t, s in pts:
                d.append(f"H{fr.x(t / NS):.1f}V{fr.y(s):.1f}")
            d.append(f"H{fr.left + fr.pw:.1f}")
            parts.append(
                f'<path class="node-line" data-node="{esc(node)}" stroke="{colour}" '
                f'd="{"".join(d)}"><title>{esc(node)}: offset set by the nemesis</title></path>'
            )
        for t, s in measured.get(node, []):
            parts.append(
                f'<circle class="measured" cx="{fr.x(t / NS):.1f}" cy="{fr.y(s):.1f}" r="4" '
                f'fill="{colour}"><title>{esc(node)} measured {s:+.3f} s at '
                f"t+{t / NS:.2f}s</title></circle>"
            )
        parts.append(
            f'<g transform="translate({fr.left + 8 + i * 90} 18)">'
            f'<line x1="0" x2="16" y1="0" y2="0" stroke="{colour}" stroke-width="3"/>'
            f'<text class="legend" x="22" y="5">{esc(node)}</text></g>'
        )
    parts.append(
        f'<text class="legend" x="{fr.left + fr.pw:.1f}" y="23" text-anchor="end">'
        "line: offset set · dot: offset measured</text>"
    )
    return (
        f'<svg id="clock-plot" class="plot" viewBox="0 0 {fr.width} {fr.height}" role="img" '
        'aria-label="clock offset per node over time" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )
