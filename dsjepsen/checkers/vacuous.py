"""The vacuous-run check: a run that exercised nothing must not pass.

A linearizability checker happily calls a history of nothing but failed ops valid, and a
partition test where the partition never happened proves nothing about partitions. This check
turns both into an honest `unknown` with the reason, so `valid` always means "the system was
exercised, under the faults asked for, and behaved".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.stats import op_counts
from dsjepsen.history import NEMESIS, History


def faults_applied(history: History) -> dict[str, int]:
    """{fault name: number of start ops that completed ok} from the nemesis ops."""
    applied: dict[str, int] = {}
    for op in history.ops:
        if op.process != NEMESIS or op.type != "ok" or not op.f.startswith("start"):
            continue
        fault = op.value.get("fault") if isinstance(op.value, dict) else None
        if fault is None:  # a nemesis that does not name its fault: take it from f
            fault = op.f.removeprefix("start-")
        applied[fault] = applied.get(fault, 0) + 1
    return applied


def check_vacuous(
    history: History,
    *,
    required_ok: Mapping[str, int],
    faults: Sequence[str] = (),
    before_index: int | None = None,
) -> CheckResult:
    """Unknown when some f in required_ok has fewer ok completions than asked, or a requested
    fault never completed a start op with ok. before_index limits the count to the run proper
    (final reads after healing do not show the system worked under faults)."""
    counts = op_counts(history.ops, before_index=before_index)
    problems: list[str] = []
    anomalies: list[dict[str, Any]] = []
    for f, minimum in required_ok.items():
        got = counts.get(f, {}).get("ok", 0)
        if got < minimum:
            c = counts.get(f, {})
            msg = (
                f"only {got} {f} op(s) succeeded during the run (need {minimum}; "
                f"{c.get('fail', 0)} failed, {c.get('info', 0)} indeterminate)"
            )
            problems.append(msg)
            anomalies.append({"type": "too-few-ok", "f": f, "ok": got, "message": msg})
    applied = faults_applied(history)
    for fault in faults:
        if not applied.get(fault):
            msg = f"fault {fault} was requested but never took effect"
            problems.append(msg)
            anomalies.append({"type": "fault-not-applied", "fault": fault, "message": msg})
    return CheckResult(
        checker="vacuous",
        valid="unknown" if problems else True,
        reason="; ".join(problems) or None,
        anomalies=anomalies,
        details={
            "required_ok": dict(required_ok),
            "ok_during_run": {f: c.get("ok", 0) for f, c in counts.items()},
            "faults_requested": list(faults),
            "faults_applied": applied,
        },
    )
