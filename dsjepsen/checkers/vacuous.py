"""The vacuous-run check: a run that exercised nothing must not pass.

A linearizability checker happily calls a history of nothing but failed ops valid, and a
partition test where the partition never happened proves nothing about partitions. This check
turns both into an honest `unknown` with the reason, so `valid` always means "the system was
exercised, under the faults asked for, and behaved".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.stats import op_counts
from dsjepsen.errors import InputError
from dsjepsen.faults import fault_of, is_start
from dsjepsen.history import NEMESIS, History, Op

#: does this nemesis completion show that the named fault really happened?
TookEffect = Callable[[str, Op], bool]


def ok_start(name: str, op: Op) -> bool:
    """The default test of a fault taking effect: a start op of that fault completed ok."""
    return op.type == "ok" and is_start(op) and fault_of(op) == name


def faults_applied(
    history: History, faults: Sequence[str] = (), took_effect: TookEffect | None = None
) -> dict[str, int]:
    """{fault name: number of nemesis completions showing it took effect}.

    Without `took_effect`, every fault that completed a start op with ok is counted (also
    faults not in `faults`); with it, each fault of `faults` is counted by asking it about every
    nemesis completion, because only the fault package knows what its records mean.
    """
    applied: dict[str, int] = {}
    for op in history.ops:
        if op.process != NEMESIS or op.type == "invoke":
            continue
        if took_effect is None:
            if ok_start(fault_of(op), op):
                name = fault_of(op)
                applied[name] = applied.get(name, 0) + 1
            continue
        for name in faults:
            if took_effect(name, op):
                applied[name] = applied.get(name, 0) + 1
    return applied


def without_client_ops(history: History, checker: str = "vacuous") -> CheckResult | None:
    """The verdict on a history that holds ops but none of a client (only the nemesis's):
    unknown, because it tested nothing (Jepsen's vacuous rule; Knossos would call it valid),
    and not bad input either, because it is well formed. None when a client op is there.
    A history with no ops at all is not a history: InputError."""
    if not history.ops:
        raise InputError("history is empty (no ops)", history.source)
    if any(op.process != NEMESIS for op in history.ops):
        return None
    n = len(history.ops)
    reason = (
        f"no client operations to check (only {n} nemesis op{'s' if n != 1 else ''}): "
        "the history is vacuous"
    )
    return CheckResult(
        checker=checker,
        valid="unknown",
        reason=reason,
        anomalies=[{"type": "no-client-ops", "message": reason}],
        details={"ops": n, "client_ops": 0, "source": history.source},
    )


def check_vacuous(
    history: History,
    *,
    required_ok: Mapping[str, int],
    faults: Sequence[str] = (),
    before_index: int | None = None,
    took_effect: TookEffect | None = None,
) -> CheckResult:
    """Unknown when no client op succeeded, when some f in required_ok has fewer ok completions
    than asked, or when a requested fault never took effect (`took_effect`, default: a start op
    that completed ok). before_index limits the counts to the run proper (final reads after
    healing do not show the system worked under faults)."""
    counts = op_counts(history.ops, before_index=before_index)
    problems: list[str] = []
    anomalies: list[dict[str, Any]] = []
    total_ok = sum(c.get("ok", 0) for c in counts.values())
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
    if total_ok == 0 and not problems:
        outcomes = {k: sum(c.get(k, 0) for c in counts.values()) for k in ("fail", "info")}
        msg = (
            f"no client op succeeded during the run ({outcomes['fail']} failed, "
            f"{outcomes['info']} indeterminate)"
        )
        problems.append(msg)
        anomalies.append({"type": "too-few-ok", "f": None, "ok": 0, "message": msg})
    applied = faults_applied(history, faults, took_effect)
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


class VacuousChecker(Checker):
    """`check_vacuous` configured by the context: the workload's `required_ok`, the requested
    `faults` and the fault package's `fault_took_effect`, counting up to `final_from_index`."""

    name: ClassVar[str] = "vacuous"
    description: ClassVar[str] = (
        "unknown when the run exercised nothing: too few ok ops, or a fault that never happened"
    )

    def check(self, history: History, context: CheckContext) -> CheckResult:
        return check_vacuous(
            history,
            required_ok=context.required_ok,
            faults=context.faults,
            before_index=context.final_from_index,
            took_effect=context.fault_took_effect,
        )
