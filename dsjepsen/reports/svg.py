"""Tiny SVG building blocks: scales, nice ticks and escaping.

Plots are generated as strings rather than through a plotting library so that the report is
one self-contained file with no runtime dependency, and so that every piece of text that may
come from the system under test passes through `esc` on its way into markup.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass


def esc(s: object) -> str:
    """Escape any value for SVG/HTML text and attribute positions."""
    return html.escape(str(s), quote=True)


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def paint(colour: str | None) -> str:
    """SVG attributes that fill a fault's band with its family's colour (FaultLook.colour):
    presentation attributes, which the report's content policy allows (style attributes it
    does not). Nothing for a colour that is not `#rrggbb`: the stylesheet's default then."""
    if not colour or not _COLOUR.match(colour):
        return ""
    return f' fill="{colour}" fill-opacity="0.12" stroke="{colour}" stroke-opacity="0.5"'


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    exp = math.floor(math.log10(raw))
    step = 10**exp
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exp >= raw:
            step = m * 10**exp
            break
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def fmt_num(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a >= 1:
        return f"{v:g}"
    return f"{v:.3g}"


@dataclass
class Frame:
    """A plot area: data ranges mapped onto pixel ranges, linear x, linear or log y."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    log_y: bool = False
    left: int = 64
    right: int = 16
    top: int = 26
    bottom: int = 42

    @property
    def pw(self) -> float:
        return self.width - self.left - self.right

    @property
    def ph(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, v: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (v - self.x0) / span * self.pw

    def y(self, v: float) -> float:
        if self.log_y:
            lo, hi = math.log10(self.y0), math.log10(self.y1)
            lv = math.log10(max(v, self.y0))
            frac = (lv - lo) / ((hi - lo) or 1.0)
        else:
            frac = (v - self.y0) / ((self.y1 - self.y0) or 1.0)
        return self.top + (1 - frac) * self.ph

    def y_ticks(self) -> list[float]:
        if not self.log_y:
            return nice_ticks(self.y0, self.y1, 5)
        ticks = []
        e = math.floor(math.log10(self.y0))
        while 10**e <= self.y1 * 1.0001:
            for m in (1, 2, 5):
                t = m * 10**e
                if self.y0 <= t <= self.y1:
                    ticks.append(t)
            e += 1
        if len(ticks) > 9:
            ticks = [t for t in ticks if math.log10(t) == int(math.log10(t))]
        return ticks

    def axes(self, x_label: str, y_label: str) -> list[str]:
        out = [
            f'<rect class="plot-bg" x="{self.left}" y="{self.top}" '
            f'width="{self.pw:.1f}" height="{self.ph:.1f}"/>'
        ]
        for t in self.y_ticks():
            py = self.y(t)
            out.append(
                f'<line class="grid" x1="{self.left}" x2="{self.left + self.pw:.1f}" '
                f'y1="{py:.1f}" y2="{py:.1f}"/>'
                f'<text class="tick" x="{self.left - 6}" y="{py + 4:.1f}" '
                f'text-anchor="end">{esc(fmt_num(t))}</text>'
            )
        for t in nice_ticks(self.x0, self.x1, 8):
            px = self.x(t)
            out.append(
                f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{self.top}" '
                f'y2="{self.top + self.ph:.1f}"/>'
                f'<text class="tick" x="{px:.1f}" y="{self.top + self.ph + 19:.1f}" '
                f'text-anchor="middle">{esc(fmt_num(t))}</text>'
            )
        out.append(
            f'<text class="axis-label" x="{self.left + self.pw / 2:.1f}" '
            f'y="{self.height - 4}" text-anchor="middle">{esc(x_label)}</text>'
            f'<text class="axis-label" transform="translate(16 {self.top + self.ph / 2:.1f}) '
            f'rotate(-90)" text-anchor="middle">{esc(y_label)}</text>'
        )
        return out
