"""The echo workload (Maelstrom's): send a payload, expect the same payload back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsjepsen.checkers.echo import EchoChecker
from dsjepsen.workloads.base import OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker


class EchoWorkload(Workload):
    name = "echo"
    description = "send a payload, expect it back unchanged (Maelstrom's echo)"
    needs = frozenset({"echo"})
    required_ok = {"echo": 1}

    def __init__(self, *, seed: int) -> None:
        super().__init__(seed=seed)
        self.n = 0

    def next_op(self) -> OpSpec:
        self.n += 1
        return OpSpec("echo", None, f"Please echo {self.n}")

    def final_ops(self) -> list[OpSpec]:
        return []

    def checkers(self) -> list[Checker]:
        return [EchoChecker()]
