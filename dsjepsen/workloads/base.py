"""The Workload contract: what clients do, what is read at the end, and how it is judged.

A workload is a deterministic function of its seed: the runner asks it for the next op under
the history lock, so the sequence of invocations in history.jsonl is the same for the same seed
(which worker gets which op depends on timing, as in Jepsen). It knows nothing of nodes or
threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsjepsen.checkers.result import CheckResult
    from dsjepsen.harness.config import TestConfig
    from dsjepsen.history import History


@dataclass(frozen=True, slots=True)
class OpSpec:
    """An op to invoke: f, key and value (the runner adds process, node, index, time)."""

    f: str
    key: Any = None
    value: Any = None


class Workload(ABC):
    name: str = "workload"
    description: str = ""
    #: minimum number of `ok` completions per f, during the run proper, for a run to count as
    #: having tested anything (see checkers.vacuous)
    required_ok: dict[str, int] = {}

    @classmethod
    @abstractmethod
    def from_config(cls, config: TestConfig) -> Workload: ...

    @abstractmethod
    def next_op(self) -> OpSpec:
        """The next client op. Not thread-safe: the runner serialises calls."""

    @abstractmethod
    def final_ops(self) -> list[OpSpec]:
        """Ops to run through every node after faults are healed (e.g. a read of every key)."""

    @abstractmethod
    def check(self, history: History, time_limit: float) -> list[CheckResult]:
        """The workload's own correctness checks on the whole history."""
