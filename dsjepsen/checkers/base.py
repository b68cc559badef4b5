"""The Checker contract: a history (and what the run knows) in, a CheckResult out.

Every checker has one signature, `check(history, context)`, so the run composes a workload's
checkers with the generic ones (stats, vacuous) and `dsjepsen check FILE --checker NAME` runs any
of them on a file. Checkers are pure: they never reach nodes, files of nodes or templates; what a
run knows beyond the history (requested faults, where the final reads begin, the time budget)
arrives in `CheckContext`.
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.checkers.models import NOT_GIVEN
from dsjepsen.checkers.result import CheckResult, compose

if TYPE_CHECKING:
    from dsjepsen.history import History, Op


#: the checkers' budget when none is given (`dsjepsen check`, `dsjepsen test`): past it the
#: verdict is unknown rather than a search that never ends
DEFAULT_TIME_LIMIT = 120.0
#: the largest budget that may be given
MAX_TIME_LIMIT = 7 * 86400.0


@dataclass(frozen=True)
class CheckContext:
    """What a checker may know besides the history.

    `model` names a model from the `dsjepsen.models` registry (None: inferred from the ops);
    `faults` are the fault names the run asked for and `fault_took_effect(name, completion)`
    says whether one nemesis completion shows the fault really happened (the fault package
    decides; None: an `ok` start completion counts); `final_from_index` is the history index
    where the final reads begin (None: there are none) and `healed_at` the history time (ns)
    when every fault had been healed before them; `required_ok` is the workload's minimum
    of ok completions per f for a run to count as having tested anything.
    """

    time_limit: float | None = None
    model: str | None = None
    #: the state every object starts in, as JSON (`--initial`); NOT_GIVEN: the model's own
    initial: Any = NOT_GIVEN
    consistency: str = "linearizable"
    faults: Sequence[str] = ()
    fault_took_effect: Callable[[str, Op], bool] | None = None
    final_from_index: int | None = None
    healed_at: int | None = None
    required_ok: Mapping[str, int] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


class Checker(ABC):
    """One way of judging a history. Registered under `name` in the `dsjepsen.checkers` group."""

    name: ClassVar[str] = "checker"
    description: ClassVar[str] = ""
    #: True: the checker takes completions without invocations (Elle's test histories are
    #: made of them), paired as orphans (`History.operations(orphans=True)`); `dsjepsen check`
    #: then validates the history that way
    orphans: ClassVar[bool] = False

    @abstractmethod
    def check(self, history: History, context: CheckContext) -> CheckResult:
        """The verdict on the whole history."""

    #: the op vocabularies this checker judges, each a set of fs: a history must have client
    #: ops of every f of at least one of them (set-full: add and read-set, or Jepsen's add and
    #: read). Empty: any history (stats, vacuous, the model-driven checkers).
    needs: ClassVar[tuple[frozenset[str], ...]] = ()

    def validate_input(self, history: History, context: CheckContext) -> None:
        """Raise InputError / ConfigError for input this checker cannot judge at all (an op
        its model does not know, an unknown model name, none of the ops it judges).

        `run_checkers` turns an exception inside `check` into `unknown`, which is right for a
        broken checker but wrong for bad input: `dsjepsen check` calls this first, so bad input
        is an error (exit 254), never a verdict (a register history is not `unknown` for the
        set checker, nor `valid` for the echo checker). The default checks `needs`.
        """
        if not self.needs:
            return None
        from dsjepsen.errors import InputError
        from dsjepsen.history import NEMESIS

        has = {op.f for op in history.ops if op.process != NEMESIS}
        if any(vocabulary <= has for vocabulary in self.needs):
            return None
        wanted = " or ".join(" and ".join(sorted(v)) for v in self.needs)
        shown = ", ".join(sorted(has)[:12]) + (" ..." if len(has) > 12 else "")
        raise InputError(
            f"the {self.name} checker judges histories of {wanted} ops; this one has "
            f"{shown or 'no client ops'} (pick a checker with --checker, "
            "`dsjepsen list checkers`)",
            history.source,
        )


def run_checkers(
    checkers: Sequence[Checker], history: History, context: CheckContext, name: str = "dsjepsen"
) -> tuple[CheckResult, list[CheckResult]]:
    """Run each checker and compose (Jepsen's rule: any False -> False, else any unknown ->
    unknown). A checker that raises is `unknown` with the error, never a pass."""
    results: list[CheckResult] = []
    for c in checkers:
        try:
            results.append(c.check(history, context))
        except Exception as e:  # noqa: BLE001 - a broken checker is unknown, never a pass
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            results.append(
                CheckResult(
                    c.name,
                    "unknown",
                    reason=f"checker failed: {type(e).__name__}: {first}",
                    details={"traceback": traceback.format_exc(limit=8)},
                )
            )
    return compose(name, results), results
