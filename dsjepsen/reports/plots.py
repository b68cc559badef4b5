"""Latency and throughput plots as inline SVG, with fault windows shaded.

The latency plot shows every op, but ops that would land on the same pixel with the same f and
outcome are drawn once: at 100,000 ops that keeps the file small without changing a single
visible pixel. All markers of one (f, outcome) series form one <path>, which browsers draw fast.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.stats import OUTCOMES
from dsjepsen.reports.svg import Frame, esc

WIDTH = 1100
OUTCOME_LABEL = {"ok": "ok", "fail": "fail", "info": "info (indeterminate)"}
# marker shapes per f, as a path fragment drawn at (x, y)
SHAPES = ("circle", "square", "triangle", "diamond", "plus", "cross")


def _marker(shape: str, x: int, y: int) -> str:
    if shape == "square":
        return f"M{x - 2} {y - 2}h4v4h-4z"
    if shape == "triangle":
        return f"M{x} {y - 3}l3 5h-6z"
    if shape == "diamond":
        return f"M{x} {y - 3}l3 3-3 3-3-3z"
    if shape == "plus":
        return f"M{x - 1} {y - 3}h2v2h2v2h-2v2h-2v-2h-2v-2h2z"
    if shape == "cross":
        return f"M{x - 3} {y - 2}l1-1 2 2 2-2 1 1-2 2 2 2-1 1-2-2-2 2-1-1 2-2z"
    return f"M{x - 2} {y}a2 2 0 1 0 4 0a2 2 0 1 0-4 0"


def _time_scale(run: RunData) -> tuple[float, str]:
    return (1.0, "history position") if run.logical_time else (NS, "seconds since start")


def fault_shading(run: RunData, fr: Frame, scale: float) -> list[str]:
    out = []
    for w in run.faults:
        if w.failed:
            continue
        x0, x1 = fr.x(w.start / scale), fr.x(w.end / scale)
        x1 = max(x1, x0 + 1.5)
        tip = f"{w.family}: {w.description}"
        out.append(
            f'<rect class="fault fault-{esc(_cls(w.family))}" x="{x0:.1f}" y="{fr.top}" '
            f'width="{x1 - x0:.1f}" height="{fr.ph:.1f}"><title>{esc(tip)}</title></rect>'
        )
        if x1 - x0 > 40:
            out.append(
                f'<text class="fault-label" x="{x0 + 3:.1f}" y="{fr.top - 4}">'
                f"{esc(_clip(w.family, int((x1 - x0) / 6)))}</text>"
            )
    for e in run.events:
        px = fr.x(e.time / scale)
        out.append(
            f'<line class="event" x1="{px:.1f}" x2="{px:.1f}" y1="{fr.top}" '
            f'y2="{fr.top + fr.ph:.1f}"><title>{esc(e.description)}</title></line>'
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
            f'<text class="legend" x="12" y="4">{esc(label)}</text></g>'
        )
        lx += 34 + 6.4 * len(label)
    return out


def latency_svg(run: RunData, df: pd.DataFrame, quant: pd.DataFrame, bucket_ns: float) -> str:
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
    fr = Frame(WIDTH, 360, 0.0, end, lo, hi, log_y=True, top=40)
    parts = fr.axes(x_label, f"latency ({unit}, log)")
    parts += fault_shading(run, fr, scale)
    if len(done):
        xs = np.rint(
            fr.left + (done["ret_t"].to_numpy() / scale - fr.x0) / (end or 1) * fr.pw
        ).astype(np.int64)
        ly = np.log10(np.maximum(lat, lo))
        frac = (ly - math.log10(lo)) / ((math.log10(hi) - math.log10(lo)) or 1.0)
        ys = np.rint(fr.top + (1 - frac) * fr.ph).astype(np.int64)
        fcodes = done["f"].cat.codes.to_numpy()
        tcodes = done["type"].cat.codes.to_numpy()
        key = ((xs * 4096 + ys) * 64 + fcodes) * 4 + tcodes
        _, first = np.unique(key, return_index=True)
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
    parts += _legend_rows(legend, fr.left, 12)
    return _svg(fr, parts, "latency-plot", "Latency of every op over time")


def _legend_rows(items: list[tuple[str, str]], x: float, y: float) -> list[str]:
    return _legend(items, x + 6, y)


def throughput_svg(run: RunData, tp: pd.DataFrame, width_ns: float) -> str:
    scale, x_label = _time_scale(run)
    end = max(run.end_time, 1) / scale
    ymax = float(tp[list(OUTCOMES)].to_numpy().max()) if len(tp) else 1.0
    ymax = ymax * 1.1 if ymax > 0 else 1.0
    fr = Frame(WIDTH, 260, 0.0, end, 0.0, ymax, top=40)
    unit = "completions / position" if run.logical_time else "ops / s"
    parts = fr.axes(x_label, unit)
    parts += fault_shading(run, fr, scale)
    for t in OUTCOMES:
        if not len(tp) or not tp[t].any():
            continue
        pts = []
        for t0, v in zip(tp["t"], tp[t], strict=True):
            x0, x1 = fr.x(t0 / scale), fr.x(min(t0 + width_ns, run.end_time) / scale)
            y = fr.y(v)
            pts.append(f"{x0:.1f},{y:.1f} {x1:.1f},{y:.1f}")
        parts.append(f'<polyline class="tline tl-{t}" points="{" ".join(pts)}"/>')
    legend = [
        (f'<line class="tline tl-{t}" x1="-6" x2="6" y1="0" y2="0"/>', OUTCOME_LABEL[t])
        for t in OUTCOMES
    ]
    parts += _legend_rows(legend, fr.left, 14)
    return _svg(fr, parts, "throughput-plot", "Throughput over time by outcome")


def _svg(fr: Frame, parts: list[str], css_id: str, label: str) -> str:
    return (
        f'<svg id="{css_id}" class="plot" viewBox="0 0 {fr.width} {fr.height}" '
        f'role="img" aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(parts)
        + "</svg>"
    )
