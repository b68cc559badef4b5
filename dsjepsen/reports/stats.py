"""Per-op statistics for the report: one pandas frame of operations, then group-bys.

Every figure on the page (latency plot, throughput plot, per-f table, availability inside and
outside fault windows) comes from the same frame so that they cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dsjepsen.reports.rundata import NS, RunData

OUTCOMES = ("ok", "fail", "info")
QUANTILES = (0.5, 0.95, 0.99)


def ops_frame(run: RunData) -> pd.DataFrame:
    """One row per client operation. Times in ns since start (or positions when logical).

    `ret_t` is the completion's time even for `info` completions (a timeout still has a
    duration); it is NaN only when the op never completed.
    """
    ops = run.operations
    n = len(ops)
    call_t = np.empty(n, dtype=np.float64)
    ret_t = np.full(n, np.nan)
    for i, o in enumerate(ops):
        call_t[i] = o.invoke.time
        if o.complete is not None:
            ret_t[i] = o.complete.time
    df = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "process": [str(o.process) for o in ops],
            "f": pd.Categorical([o.f for o in ops]),
            "type": pd.Categorical([o.type for o in ops], categories=OUTCOMES),
            "call_t": call_t,
            "ret_t": ret_t,
        }
    )
    scale = 1.0 if run.logical_time else 1e6  # ms for real clocks
    df["latency"] = (df["ret_t"] - df["call_t"]) / scale
    in_fault = np.zeros(n, dtype=bool)
    for w in run.faults:
        if not w.failed:
            in_fault |= (call_t >= w.start) & (call_t <= w.end)
    df["in_fault"] = in_fault
    return df


def nice_width(span: float, target_buckets: int = 120, logical: bool = False) -> float:
    """A round bucket width (1, 2, 5 x 10^k of the unit) giving about `target_buckets`."""
    unit = 1.0 if logical else NS / 1000.0  # logical positions, else microseconds
    raw = max(span / max(target_buckets, 1), unit)
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        w = m * 10**exp
        if w >= raw:
            return float(w)
    return float(10 ** (exp + 1))


def throughput(df: pd.DataFrame, width: float, end: float, logical: bool = False) -> pd.DataFrame:
    """Completions per second (or per history position) in each bucket, by outcome."""
    nb = max(1, int(math.ceil(max(end, 1.0) / width)))
    done = df[df["ret_t"].notna()]
    b = np.minimum((done["ret_t"].to_numpy() // width).astype(np.int64), nb - 1)
    out = pd.DataFrame(index=np.arange(nb))
    per = width if logical else width / NS
    for t in OUTCOMES:
        mask = (done["type"] == t).to_numpy()
        counts = np.bincount(b[mask], minlength=nb)
        out[t] = counts / per
    out["t"] = out.index * width
    return out


def latency_quantiles(df: pd.DataFrame, width: float) -> pd.DataFrame:
    """p50/p95/p99 latency of ok ops per time bucket (by completion time)."""
    ok = df[(df["type"] == "ok") & df["latency"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=["t", "p50", "p95", "p99"])
    bucket = (ok["ret_t"] // width).astype(np.int64)
    q = ok.groupby(bucket)["latency"].quantile(list(QUANTILES)).unstack()
    q.columns = ["p50", "p95", "p99"]
    q["t"] = (q.index.to_numpy() + 0.5) * width
    return q.reset_index(drop=True)


def _q(s: pd.Series, q: float) -> float | None:
    return None if s.empty else float(s.quantile(q))


def per_f_table(run: RunData, df: pd.DataFrame) -> list[dict[str, Any]]:
    """The statistics table: one row per f plus an 'all' row."""
    duration_s = max(run.end_time, 1) / (1 if run.logical_time else NS)
    rows: list[dict[str, Any]] = []
    groups: list[tuple[str, pd.DataFrame]] = [
        (str(f), g) for f, g in df.groupby("f", observed=True)
    ]
    if len(groups) != 1:
        groups.append(("all", df))
    for f, g in groups:
        ok = g[g["type"] == "ok"]
        lat = ok["latency"].dropna()
        inside, outside = g[g["in_fault"]], g[~g["in_fault"]]
        rows.append(
            {
                "f": f,
                "count": len(g),
                "ok": int((g["type"] == "ok").sum()),
                "fail": int((g["type"] == "fail").sum()),
                "info": int((g["type"] == "info").sum()),
                "p50": _q(lat, 0.5),
                "p95": _q(lat, 0.95),
                "p99": _q(lat, 0.99),
                "max": None if lat.empty else float(lat.max()),
                "throughput": len(ok) / duration_s if duration_s else None,
                "avail_in": _avail(inside),
                "avail_out": _avail(outside),
                "n_in": len(inside),
                "n_out": len(outside),
            }
        )
    return rows


def _avail(g: pd.DataFrame) -> float | None:
    """Availability: the share of invoked ops that completed ok."""
    return None if g.empty else float((g["type"] == "ok").mean())
