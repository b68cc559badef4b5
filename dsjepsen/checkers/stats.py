"""Op statistics per f and outcome: what the run actually did.

Never a verdict by itself (valid is always True): whether the numbers are too thin to trust is
the vacuous check's job. Latencies are from invocation to completion, in milliseconds, over the
ops whose completion is known.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.history import NEMESIS, History, Op

OUTCOMES = ("ok", "fail", "info")


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def op_counts(ops: list[Op], *, before_index: int | None = None) -> dict[str, dict[str, int]]:
    """{f: {"ok": n, "fail": n, "info": n, "pending": n}} for client ops, pairing by process.

    `pending` counts invocations that never completed. With before_index, only ops invoked
    before that history index count (the run proper, without the final reads).
    """
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys((*OUTCOMES, "pending"), 0)
    )
    open_: dict[Any, Op] = {}
    for op in ops:
        if op.process == NEMESIS:
            continue
        if op.type == "invoke":
            open_[op.process] = op
            continue
        inv = open_.pop(op.process, None)
        if inv is None or (before_index is not None and inv.index >= before_index):
            continue
        if op.type in OUTCOMES:
            counts[inv.f][op.type] += 1
    for inv in open_.values():
        if before_index is None or inv.index < before_index:
            counts[inv.f]["pending"] += 1
    return {f: dict(c) for f, c in sorted(counts.items())}


def check_stats(history: History) -> CheckResult:
    by_f: dict[str, dict[str, Any]] = {}
    latencies: dict[str, list[float]] = defaultdict(list)
    open_: dict[Any, Op] = {}
    nemesis: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    first = last = None
    for op in history.ops:
        first = op.time if first is None else first
        last = op.time
        if op.type == "invoke":
            open_[op.process] = op
            continue
        inv = open_.pop(op.process, None)
        if op.process == NEMESIS:
            if op.type in OUTCOMES:
                nemesis[op.f][op.type] += 1
            continue
        if inv is not None and op.type != "info":
            latencies[inv.f].append((op.time - inv.time) / 1e6)
    counts = op_counts(history.ops)
    duration_s = ((last or 0) - (first or 0)) / 1e9
    total = {k: sum(c.get(k, 0) for c in counts.values()) for k in (*OUTCOMES, "pending")}
    for f, c in counts.items():
        lat = sorted(latencies.get(f, []))
        n = sum(c.values())
        by_f[f] = {
            **c,
            "count": n,
            "ok_fraction": round(c["ok"] / n, 4) if n else 0.0,
            "latency_ms": {
                "p50": round(_quantile(lat, 0.5), 3),
                "p95": round(_quantile(lat, 0.95), 3),
                "p99": round(_quantile(lat, 0.99), 3),
                "max": round(lat[-1], 3) if lat else 0.0,
            },
        }
    details = {
        "by_f": by_f,
        "total": {**total, "count": sum(total.values())},
        "nemesis": {f: dict(c) for f, c in sorted(nemesis.items())},
        "duration_s": round(duration_s, 3),
        "throughput_ok_per_s": round(total["ok"] / duration_s, 2) if duration_s > 0 else 0.0,
    }
    return CheckResult(checker="stats", valid=True, details=details)


class StatsChecker(Checker):
    """`check_stats` as a registered checker (it needs nothing from the context)."""

    name: ClassVar[str] = "stats"
    description: ClassVar[str] = "op counts, latencies and throughput per f (never a verdict)"

    def check(self, history: History, context: CheckContext) -> CheckResult:
        return check_stats(history)
