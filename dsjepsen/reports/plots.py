"""Latency and throughput plots as inline SVG, with fault windows shaded.

The latency plot shows every op, but ops that would land on the same pixel with the same f and
outcome are drawn once: at 100,000 ops that keeps the file small without changing a single
visible pixel. Past MAX_MARKERS distinct positions (a run of millions of ops) the markers snap
to a 2 px, then 4 px grid: each moves at most 2 px, a quarter of its own width, and the plot
stays a few MB. All markers of one (f, outcome) series form one <path>, which browsers draw
fast.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.stats import OUTCOMES
from dsjepsen.reports.svg import Frame, esc, paint

#: the plots' drawing width; the page scales them to the column (at most 1,000 px, CSS), so
#: at an 800 px window they shrink by about 0.8 and their 14 px text stays above 11 px
WIDTH = 880
OUTCOME_LABEL = {"ok": "ok", "fail": "fail", "info": "info (indeterminate)"}
# marker shapes per f, as a path fragment drawn at (x, y)
SHAPES = ("circle", "square", "triangle", "diamond", "plus", "cross")
#: distinct marker positions past which the markers snap to a coarser grid (about 25 bytes each)
MAX_MARKERS = 60_000


def _marker(shape: str, x: int, y: int) -> str:
    """Markers 7-8 px across: big enough that a circle, a square and a triangle read as
    different shapes at a glance (f is told by shape, outcome by colour)."""
    if shape == "square":
        return f"M{x - 3} {y - 3}h6v6h-6z"
    if shape == "triangle":
        return f"M{x} {y - 4}l4 7h-8z"
    if shape == "diamond":
        return f"M{x} {y - 4}l4 4-4 4-4-4z"
    if shape == "plus":
        return f"M{x - 1} {y - 4}h2v3h3v2h-3v3h-2v-3h-3v-2h3z"
    if shape == "cross":
        return f"M{x - 4} {y - 3}l1-1 3 3 3-3 1 1-3 3 3 3-1 1-3-3-3 3-1-1 3-3z"
    return f"M{x - 3.5} {y}a3.5 3.5 0 1 0 7 0a3.5 3.5 0 1 0-7 0"


def _time_scale(run: RunData) -> tuple[float, str]:
    return (1.0, "history position") if run.logical_time else (NS, "seconds since start")


#: the width of one character of a plot label, px (the labels are 13 px text)
CHAR_W = 7.8
FINAL_LABEL = "final reads →"


def fault_shading(run: RunData, fr: Frame, scale: float, final_t: int | None = None) -> list[str]:
    """Fault windows (labelled "#n family" above the plot, as in the fault table), one-shot
    nemesis events, and the final reads, which run after the heal and are set apart."""
    out = []
    row_end = [-1e9, -1e9]  # where the last label of each of two label rows ends
    # the "final reads" label sits at the end of the first row: no fault label may run into it
    final_label: tuple[float, float] | None = None
    if final_t is not None:
        fx = fr.x(final_t / scale)
        final_label = (fx - 3 - CHAR_W * len(FINAL_LABEL), fx)

    def free(row: int, a: float, b: float) -> bool:
        clear = row_end[row] < a
        if row == 0 and final_label is not None:
            clear = clear and (b < final_label[0] or a > final_label[1])
        return clear

    for w in run.faults:
        if w.failed:
            continue
        x0, x1 = fr.x(w.start / scale), fr.x(w.end / scale)
        x1 = max(x1, x0 + 1.5)
        tip = f"{w.family}: {w.description}"
        out.append(
            f'<rect class="fault fault-{esc(_cls(w.family))}"{paint(run.looks(w.family).colour)} '
            f'x="{x0:.1f}" y="{fr.top}" width="{x1 - x0:.1f}" height="{fr.ph:.1f}">'
            f"<title>{esc(tip)}</title></rect>"
        )
        label = f"#{w.id + 1} {w.family}"
        if x1 - x0 > 30:
            text = _clip(label, int(max(x1 - x0, 7.5 * len(label)) / 7.5))
            end = x0 + 3 + CHAR_W * len(text)
            # overlapping windows (a clock fault inside a partition) get the second row, and
            # so does a label that would run into "final reads"
            row = 0 if free(0, x0, end) else 1
            if row == 1 and not free(1, x0, end):
                continue  # a third overlapping label would collide: its title still tells
            row_end[row] = end
            out.append(
                f'<text class="fault-label" x="{x0 + 3:.1f}" y="{fr.top - 5 - 15 * row}">'
                f"{esc(text)}</text>"
            )
    for e in run.events:
        px = fr.x(e.time / scale)
        out.append(
            f'<line class="event" x1="{px:.1f}" x2="{px:.1f}" y1="{fr.top}" '
            f'y2="{fr.top + fr.ph:.1f}"><title>{esc(e.description)}</title></line>'
        )
    if final_t is not None:
        fx = fr.x(final_t / scale)
        out.append(
            f'<rect class="final-reads" x="{fx:.1f}" y="{fr.top}" '
            f'width="{max(fr.left + fr.pw - fx, 1):.1f}" height="{fr.ph:.1f}">'
            "<title>final reads: after the heal, every node is read until replicas agree"
            "</title></rect>"
            f'<line class="final-line" x1="{fx:.1f}" x2="{fx:.1f}" y1="{fr.top - 14}" '
            f'y2="{fr.top + fr.ph:.1f}"/>'
            f'<text class="final-label" x="{fx - 3:.1f}" y="{fr.top - 5}" '
            f'text-anchor="end">{FINAL_LABEL}</text>'
        )
    return out


def _cls(s: str) -> str:
    return "".join(c if c.isalnum() or c == "-" else "_" for c in s)[:40]


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: max(n - 1, 1)] + "…"


def _legend(items: list[tuple[str, str]], x: float, y: float) -> list[str]:
    """items: (svg snippet drawn at origin, label), laid out left to right by label length."""
    out = []
    lx = x
    for mark, label in items:
        out.append(
            f'<g transform="translate({lx:.0f} {y:.0f})">{mark}'
            f'<text class="legend" x="12" y="5">{esc(label)}</text></g>'
        )
        lx += 30 + 7.6 * len(label)
    return out


def latency_svg(
    run: RunData,
    df: pd.DataFrame,
    quant: pd.DataFrame,
    bucket_ns: float,
    final_t: int | None = None,
) -> str:
    scale, x_label = _time_scale(run)
    unit = "positions" if run.logical_time else "ms"
    done = df[df["latency"].notna()]
    end = max(run.end_time, 1) / scale
    lat = done["latency"].to_numpy()
    positive = lat[lat > 0]
    lo = float(positive.min()) if positive.size else 0.1
    hi = float(positive.max()) if positive.size else 1.0
    lo = 10 ** math.floor(math.log10(lo))
    hi = 10 ** math.ceil(math.log10(hi)) if hi > lo else lo * 10
    fs = [str(f) for f in df["f"].cat.categories] if len(df) else []
    shape_of = {f: SHAPES[i % len(SHAPES)] for i, f in enumerate(fs)}
    fr = Frame(WIDTH, 370, 0.0, end, lo, hi, log_y=True, top=76, left=70)
    parts = fr.axes(x_label, f"latency ({unit}, log)")
    parts += fault_shading(run, fr, scale, final_t)
    if len(done):
        xs = np.rint(
            fr.left + (done["ret_t"].to_numpy() / scale - fr.x0) / (end or 1) * fr.pw
        ).astype(np.int64)
        ly = np.log10(np.maximum(lat, lo))
        frac = (ly - math.log10(lo)) / ((math.log10(hi) - math.log10(lo)) or 1.0)
        ys = np.rint(fr.top + (1 - frac) * fr.ph).astype(np.int64)
        fcodes = done["f"].cat.codes.to_numpy()
        tcodes = done["type"].cat.codes.to_numpy()
        grid = 1
        while True:
            key = ((xs // grid * 4096 + ys // grid) * 64 + fcodes) * 4 + tcodes
            _, first = np.unique(key, return_index=True)
            if len(first) <= MAX_MARKERS or grid >= 4:
                break
            grid *= 2
        if grid > 1:  # each marker at its grid cell's centre
            xs, ys = xs // grid * grid + grid // 2, ys // grid * grid + grid // 2
        for ti, t in enumerate(OUTCOMES):
            for fi, f in enumerate(fs):
                sel = first[(tcodes[first] == ti) & (fcodes[first] == fi)]
                if not len(sel):
                    continue
                d = "".join(_marker(shape_of[f], int(xs[i]), int(ys[i])) for i in sel)
                parts.append(
                    f'<path class="pt pt-{t}" d="{d}"><title>{esc(f)} {esc(t)}</title></path>'
                )
    gap = bucket_ns * 1.5
    for q, cls in (("p50", "q50"), ("p95", "q95"), ("p99", "q99")):
        if len(quant) > 1:
            d, prev = [], None
            for t, v in zip(quant["t"], quant[q], strict=True):
                # a bucket with no ok op breaks the line rather than bridging the gap
                cmd = "M" if prev is None or t - prev > gap else "L"
                d.append(f"{cmd}{fr.x(t / scale):.1f} {fr.y(max(v, lo)):.1f}")
                prev = t
            parts.append(f'<path class="qline {cls}" d="{"".join(d)}"/>')
    legend = [
        (f'<path class="pt pt-{t}" d="{_marker("square", 0, 0)}"/>', OUTCOME_LABEL[t])
        for t in OUTCOMES
    ]
    legend += [
        (f'<path class="pt pt-neutral" d="{_marker(shape_of[f], 0, 0)}"/>', f) for f in fs[:6]
    ]
    legend += [
        (f'<line class="qline {c}" x1="-6" x2="6" y1="0" y2="0"/>', q)
        for q, c in (("p50", "q50"), ("p95", "q95"), ("p99", "q99"))
    ]
    parts += _legend_rows(legend[:3] + legend[-3:], fr.left, 14)
    parts += _legend_rows(legend[3:-3], fr.left, 36)
    return _svg(fr, parts, "latency-plot", "Latency of every op over time")


def _legend_rows(items: list[tuple[str, str]], x: float, y: float) -> list[str]:
    return _legend(items, x + 6, y)


def throughput_svg(
    run: RunData, tp: pd.DataFrame, width_ns: float, final_t: int | None = None
) -> str:
    """Completions per second by outcome. The y scale is set by the run proper: the burst of
    final reads after the heal would flatten everything else, so past `final_t` values above
    the scale are clipped at the top and their peak is written there."""
    scale, x_label = _time_scale(run)
    end = max(run.end_time, 1) / scale
    body = tp if final_t is None else tp[tp["t"] + width_ns <= final_t]
    if not len(body):
        body = tp
    ymax = float(body[list(OUTCOMES)].to_numpy().max()) if len(body) else 1.0
    ymax = ymax * 1.1 if ymax > 0 else 1.0
    fr = Frame(WIDTH, 280, 0.0, end, 0.0, ymax, top=50, left=70)
    unit = "completions / position" if run.logical_time else "ops / s"
    parts = fr.axes(x_label, unit)
    parts += fault_shading(run, fr, scale, final_t)
    peak = 0.0
    for t in OUTCOMES:
        if not len(tp) or not tp[t].any():
            continue
        pts = []
        for t0, v in zip(tp["t"], tp[t], strict=True):
            x0, x1 = fr.x(t0 / scale), fr.x(min(t0 + width_ns, run.end_time) / scale)
            if v > ymax:
                peak = max(peak, float(v))
            y = fr.y(min(v, ymax))
            pts.append(f"{x0:.1f},{y:.1f} {x1:.1f},{y:.1f}")
        parts.append(f'<polyline class="tline tl-{t}" points="{" ".join(pts)}"/>')
    if peak:
        parts.append(
            f'<text class="final-label" x="{fr.left + fr.pw - 4:.1f}" y="{fr.top + 14}" '
            f'text-anchor="end">clipped: final reads peak at {peak:,.0f} ops/s</text>'
        )
    legend = [
        (f'<line class="tline tl-{t}" x1="-6" x2="6" y1="0" y2="0"/>', OUTCOME_LABEL[t])
        for t in OUTCOMES
    ]
    parts += _legend_rows(legend, fr.left, 16)
    return _svg(fr, parts, "throughput-plot", "Throughput over time by outcome")


def _svg(fr: Frame, parts: list[str], css_id: str, label: str) -> str:
    return (
        f'<svg id="{css_id}" class="plot" viewBox="0 0 {fr.width} {fr.height}" '
        f'role="img" aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )
