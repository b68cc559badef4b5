"""Timeline data: client ops and fault windows, packed column-wise for timeline.js.

The page draws the timeline in the browser from this data so that it stays usable at 100,000
ops: the script draws only what is in view and merges bars that share a pixel, but always
draws the ops an anomaly involves. Columns (not one object per op) keep the JSON small.

A nightly hour at 1,000 ops/s records millions of ops, and every op in the page would make a
file no browser opens comfortably. Beyond OPS_IN_PAGE ops the page keeps in full detail the
ops an anomaly is about and the ops nearest to where something happened (a fault starting or
ending, a harness event, an anomaly), and summarises the quiet stretches between them as
counts per time bucket; `dsjepsen serve` loads any stretch in full on demand (`window`).
Everything here is data; the script writes it into the page with textContent/setAttribute
only, and the template embeds it with `tojson`, which escapes `<`, `>` and `&`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from dsjepsen.history import Operation
from dsjepsen.reports.rundata import NS, RunData

TYPE_CODE = {"ok": 0, "fail": 1, "info": 2}
MAX_TEXT = 60
#: ops a report page carries in full (about 60 bytes each in the page): beyond it, the quiet
#: stretches are summarised
OPS_IN_PAGE = 50_000
#: time buckets of the summary of the ops a page leaves out
SUMMARY_BUCKETS = 2_000


def short(v: Any, n: int = MAX_TEXT) -> str:
    """A value as short text for labels (never markup: escaped where it is shown)."""
    if v is None:
        return "nil"
    if v == "":
        return "''"  # the empty string, visibly (never a blank next to nil), as checkers write it
    t = type(v)
    if t is int or t is float:
        return str(v)
    if t is list and len(v) == 2 and type(v[0]) is int and type(v[1]) is int:
        return f"[{v[0]},{v[1]}]"  # cas values: the common case, without json.dumps
    s = v if t is str else json.dumps(v, default=str, separators=(",", ":"))
    return s if len(s) <= n else s[: n - 1] + "…"


def node_label(o: Operation) -> str:
    """Where an op ran, written one way on the whole page: the node it was sent to, or
    "n3 via n1" when its completion names another node that served it (a follower that
    forwarded to the leader); "" when the history does not say."""
    served, sent = o.node, o.bound_node
    if served and sent and served != sent:
        return f"{served} via {sent}"
    return served or ""


def kept_ops(run: RunData, anomaly_ops: set[int], budget: int | None = None) -> list[int] | None:
    """The positions of the ops a page carries in full, or None when all of them fit.

    Every op an anomaly is about, then the ops nearest in time to something that happened (a
    fault window's start or end, a harness event, an anomaly's op): an op whose interval
    contains such a moment is at distance 0. Nearest first until `budget` (OPS_IN_PAGE)."""
    budget = OPS_IN_PAGE if budget is None else budget
    ops = run.operations
    n = len(ops)
    if n <= budget:
        return None
    end = float(run.end_time)
    starts = np.fromiter((o.invoke.time for o in ops), dtype=np.float64, count=n)
    ends = np.fromiter(
        (o.complete.time if o.complete is not None else end for o in ops),
        dtype=np.float64,
        count=n,
    )
    anomalous = np.fromiter((i for i in anomaly_ops if 0 <= i < n), dtype=np.int64)
    moments = [t for w in run.faults if not w.failed for t in (w.start, w.end)]
    moments += [e.time for e in run.events]
    points = np.unique(np.concatenate([np.asarray(moments, dtype=np.float64), starts[anomalous]]))
    if not len(points):
        points = np.array([0.0])
    # the nearest moment at or after each op's start, and the last one before it
    j = np.searchsorted(points, starts)
    after = points[np.minimum(j, len(points) - 1)]
    before = points[np.maximum(j - 1, 0)]
    dist = np.where(after >= starts, np.maximum(after - ends, 0.0), np.inf)
    dist = np.minimum(dist, np.where(before <= starts, starts - before, np.inf))
    dist[anomalous] = -1.0
    keep = np.argpartition(dist, budget - 1)[:budget] if budget > 0 else anomalous
    keep = np.union1d(keep, anomalous)
    return [int(i) for i in keep]


def summary(run: RunData, kept: Sequence[int], scale: float) -> dict[str, Any]:
    """What the page leaves out: per time bucket, how many ops it omits that were invoked
    then, by outcome (ok, fail, info), so the quiet stretches still show how busy they were."""
    end = max(float(run.end_time), 1.0)
    width = end / SUMMARY_BUCKETS
    counts = np.zeros((3, SUMMARY_BUCKETS), dtype=np.int64)
    keep = np.zeros(len(run.operations), dtype=bool)
    keep[np.asarray(kept, dtype=np.int64)] = True
    for i, o in enumerate(run.operations):
        if not keep[i]:
            b = min(int(o.invoke.time / width), SUMMARY_BUCKETS - 1)
            counts[TYPE_CODE.get(o.type, 2), max(b, 0)] += 1
    return {
        "w": round(width / scale, 3),
        "ok": counts[0].tolist(),
        "fail": counts[1].tolist(),
        "info": counts[2].tolist(),
        "n": int(counts.sum()),
    }


def op_columns(run: RunData, which: Sequence[int] | None = None) -> dict[str, Any]:
    """The op columns of the page (all ops, or the positions in `which`, in that order):
    lane, start, end (-1 never completed), type code, f code, key, value, output, node code,
    and the error texts by op id; times in ms (or positions). Lanes, fs and nodes are the
    names the codes index. With `which`, an "id" column holds each op's position in the run."""
    scale = 1.0 if run.logical_time else NS / 1000.0  # ms
    lanes: dict[str, int] = {}
    fs: dict[str, int] = {}
    nodes: dict[str, int] = {"": 0}
    cols: dict[str, list[Any]] = {k: [] for k in ("l", "s", "e", "t", "f", "k", "v", "o", "n")}
    errors: dict[str, str] = {}
    all_ops = run.operations
    for o in all_ops if which is None else (all_ops[i] for i in which):
        lane = lanes.setdefault(str(o.process), len(lanes))
        cols["l"].append(lane)
        cols["s"].append(round(o.invoke.time / scale, 3))
        cols["e"].append(round(o.complete.time / scale, 3) if o.complete is not None else -1)
        cols["t"].append(TYPE_CODE.get(o.type, 2))
        cols["f"].append(fs.setdefault(o.f, len(fs)))
        cols["k"].append("" if o.key is None else short(o.key, 24))
        cols["v"].append(short(o.value))
        cols["o"].append("" if o.complete is None else short(o.output))
        cols["n"].append(nodes.setdefault(node_label(o), len(nodes)))
        err = o.complete.error if o.complete is not None else None
        if err is not None:
            errors[str(o.id)] = short(err, 200)
    if which is not None:
        cols["id"] = list(which)
    return {"lanes": list(lanes), "fs": list(fs), "nodes": list(nodes), "ops": cols,
            "errors": errors}  # fmt: skip


def timeline_data(run: RunData, anomaly_ops: set[int], budget: int | None = None) -> dict[str, Any]:
    """Everything timeline.js draws: the ops (op_columns; all of them, or those kept_ops
    chooses and a summary of the rest), fault windows and harness events."""
    scale = 1.0 if run.logical_time else NS / 1000.0  # ms
    kept = kept_ops(run, anomaly_ops, budget)
    faults = [
        {
            "id": w.id,
            "family": w.family,
            "c": run.looks(w.family).colour,
            "s": round(w.start / scale, 3),
            "e": round(w.end / scale, 3),
            "d": w.description,
            "healed": w.healed,
            "stop": w.stop_description or "",
        }
        for w in run.faults
        if not w.failed
    ]
    events = [{"s": round(e.time / scale, 3), "d": e.description} for e in run.events]
    return {
        "unit": "pos" if run.logical_time else "ms",
        "end": round(max(run.end_time, 1) / scale, 3),
        **op_columns(run, kept),
        "total": len(run.operations),
        "omitted": summary(run, kept, scale) if kept is not None else None,
        "faults": faults,
        "events": events,
        "anomalies": sorted(anomaly_ops),
    }


def window(run: RunData, a: float, b: float, limit: int | None = None) -> dict[str, Any]:
    """The ops of [a, b] (page units: ms, or positions) in full, at most `limit` of them (the
    first ones by start): what `dsjepsen serve` answers when the page asks for a stretch it
    summarised."""
    limit = OPS_IN_PAGE if limit is None else limit
    scale = 1.0 if run.logical_time else NS / 1000.0
    lo, hi = a * scale, b * scale
    which: list[int] = []
    for o in run.operations:
        done = o.complete.time if o.complete is not None else run.end_time
        if done >= lo and o.invoke.time <= hi:
            which.append(o.id)
            if len(which) >= limit:
                break
    return op_columns(run, which)


def key_order(run: RunData, failing: list[Any], limit: int = 300) -> list[str]:
    """The keys the per-key view offers, as the timeline's key column writes them: failing
    keys first (in the order of their first anomaly), then the rest by number of ops."""
    counts: dict[str, int] = {}
    for o in run.operations:
        if o.key is not None:
            k = short(o.key, 24)
            counts[k] = counts.get(k, 0) + 1
    out: list[str] = []
    for key in failing:
        if key is None:
            continue
        k = short(key, 24)
        if k in counts and k not in out:
            out.append(k)
    rest = sorted((k for k in counts if k not in out), key=lambda k: (-counts[k], k))
    return (out + rest)[:limit]
