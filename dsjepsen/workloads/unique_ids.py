"""The unique-ids workload (Maelstrom's): ask nodes for ids; no id may be handed out twice.

Availability matters here as in Maelstrom (`dsjepsen maelstrom test --availability total`):
a node that answers "unavailable" during a partition is safe but fails the gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsjepsen.checkers.unique_ids import UniqueIdsChecker
from dsjepsen.workloads.base import OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker


class UniqueIdsWorkload(Workload):
    name = "unique-ids"
    description = "generate ids through every node; no duplicates (Maelstrom's unique-ids)"
    needs = frozenset({"generate"})
    required_ok = {"generate": 1}

    def next_op(self) -> OpSpec:
        return OpSpec("generate")

    def final_ops(self) -> list[OpSpec]:
        return []

    def checkers(self) -> list[Checker]:
        return [UniqueIdsChecker()]
