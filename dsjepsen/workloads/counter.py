"""The g-counter and pn-counter workloads: increment a few counters, read them.

Maelstrom's g-counter (positive deltas) and pn-counter (deltas of either sign), on
independent keys: each op picks one of `keys` counters at random, so every counter is
incremented and read through every node while faults split them. The final reads read every
counter through every node, in rounds, until all nodes agree or `convergence-timeout` seconds
pass (`converges = True`).

Judged by counter (every read within the signed bounds, counting as definitely applied only the
increments acknowledged through the read's own node, as a CRDT replica promises; every final
read the ok sum plus a subset of the indeterminate deltas) and convergence (every node ends
with the same value, in measured time; a g-counter never reads lower on a node than it already
read there).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, ClassVar

from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.counter import CounterChecker
from dsjepsen.workloads.base import KEYS, OpSpec, Workload
from dsjepsen.workloads.gset import CONVERGENCE_TIMEOUT

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker

INCREMENT, READ_COUNTER = "increment", "read-counter"
INCREMENT_SHARE = 0.5


class _CounterWorkload(Workload):
    needs = frozenset({INCREMENT, READ_COUNTER})
    required_ok = {INCREMENT: 5, READ_COUNTER: 5}
    converges = True
    options = (
        KEYS,
        CONVERGENCE_TIMEOUT,
    )
    #: the deltas drawn (uniformly)
    deltas: ClassVar[tuple[int, ...]] = ()

    def __init__(self, *, seed: int, keys: int = 5, convergence_timeout: float = 30.0):
        if keys < 1:
            raise ValueError("keys must be positive")
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:{self.name}")
        self.keys = keys
        self.convergence_timeout = convergence_timeout

    def next_op(self) -> OpSpec:
        key = self.rng.randrange(self.keys)
        if self.rng.random() >= INCREMENT_SHARE:
            return OpSpec(READ_COUNTER, key, None)
        return OpSpec(INCREMENT, key, self.rng.choice(self.deltas))

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec(READ_COUNTER, key, None) for key in range(self.keys)]

    def checkers(self) -> list[Checker]:
        return [CounterChecker(lower="node"), ConvergenceChecker()]


class GCounterWorkload(_CounterWorkload):
    name = "g-counter"
    description = (
        "increment a few grow-only counters by positive deltas, read them; counter bounds, "
        "final sums and convergence (CRDT stores)"
    )
    deltas = (1, 2, 3, 4, 5)


class PNCounterWorkload(_CounterWorkload):
    name = "pn-counter"
    description = (
        "increment a few counters by deltas of either sign, read them; signed counter bounds, "
        "final sums and convergence (CRDT stores)"
    )
    deltas = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)
