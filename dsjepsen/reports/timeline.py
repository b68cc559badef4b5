"""Timeline data: every client op and fault window, packed column-wise for timeline.js.

The page draws the timeline in the browser from this data so that it stays usable at 100,000
ops: the script draws only what is in view and merges bars that share a pixel, but always
draws the ops an anomaly involves. Columns (not one object per op) keep the JSON small.
Everything here is data; the script writes it into the page with textContent/setAttribute
only, and the template embeds it with `tojson`, which escapes `<`, `>` and `&`.
"""

from __future__ import annotations

import json
from typing import Any

from dsjepsen.history import Operation
from dsjepsen.reports.rundata import NS, RunData

TYPE_CODE = {"ok": 0, "fail": 1, "info": 2}
MAX_TEXT = 60


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


def timeline_data(run: RunData, anomaly_ops: set[int]) -> dict[str, Any]:
    """Columns: lane, start, end (-1 never completed), type code, f code, key, value, output,
    node code; times in ms (or positions)."""
    scale = 1.0 if run.logical_time else NS / 1000.0  # ms
    lanes: dict[str, int] = {}
    fs: dict[str, int] = {}
    nodes: dict[str, int] = {"": 0}
    cols: dict[str, list[Any]] = {k: [] for k in ("l", "s", "e", "t", "f", "k", "v", "o", "n")}
    errors: dict[str, str] = {}
    for o in run.operations:
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
        "lanes": list(lanes),
        "fs": list(fs),
        "nodes": list(nodes),
        "ops": cols,
        "errors": errors,
        "faults": faults,
        "events": events,
        "anomalies": sorted(anomaly_ops),
    }


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
