"""The g-set workload: add unique elements to a few grow-only sets, read whole sets.

Maelstrom's g-set and Jepsen's set-full, on independent keys:
- every element is a fresh integer (unique across the run), so a read shows exactly which adds
  it reflects and set-full can follow each element from its add to every read;
- each op picks one of `keys` active sets at random, so every set is added to and read through
  every node while faults split them; after `adds-per-key` adds a set is retired for a fresh
  one, which keeps reads (whole sets) small and means sets are born during faults too;
- the final reads read every set ever used through every node, in rounds, until all nodes
  agree or `convergence-timeout` seconds pass (`converges = True`).

Judged by set-full (nothing lost, no phantom, stale windows measured) and convergence (every
node ends with the same set, in measured time; no node ever loses an element it returned).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.set_full import SetFullChecker
from dsjepsen.options import Option
from dsjepsen.workloads.base import KEYS, OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker

ADD, READ_SET = "add", "read-set"
#: op mix: half adds, half reads, so that stale windows are measured finely
ADD_SHARE = 0.5
#: the option every converging workload declares (the run layer reads it by name)
CONVERGENCE_TIMEOUT = Option(
    "convergence-timeout",
    "float",
    30.0,
    "after healing, repeat the final reads through every node until they agree, at most this "
    "many seconds",
    minimum=0.0,
    maximum=3600.0,
    metavar="SECONDS",
)


@dataclass
class _Set:
    key: int
    adds: int = 0


class GSetWorkload(Workload):
    name = "g-set"
    description = (
        "add unique elements to a few grow-only sets, read whole sets; set-full and "
        "convergence (CRDT stores)"
    )
    needs = frozenset({ADD, READ_SET})
    required_ok = {ADD: 5, READ_SET: 5}
    converges = True
    options = (
        KEYS,
        Option(
            "adds-per-key",
            "int",
            100,
            "g-set: adds to a set before it is retired for a fresh one",
            minimum=1,
            maximum=1_000_000_000,
            metavar="N",
        ),
        CONVERGENCE_TIMEOUT,
    )

    def __init__(
        self,
        *,
        seed: int,
        keys: int = 5,
        adds_per_key: int = 100,
        convergence_timeout: float = 30.0,
    ):
        if keys < 1 or adds_per_key < 1:
            raise ValueError("keys and adds_per_key must be positive")
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:g-set")
        self.adds_per_key = adds_per_key
        self.convergence_timeout = convergence_timeout
        self._next_key = 0
        self._next_element = 0
        self.used: list[int] = []
        self.active: list[_Set] = [self._fresh() for _ in range(keys)]

    def _fresh(self) -> _Set:
        s = _Set(self._next_key)
        self._next_key += 1
        self.used.append(s.key)
        return s

    def next_op(self) -> OpSpec:
        slot = self.rng.randrange(len(self.active))
        s = self.active[slot]
        if self.rng.random() >= ADD_SHARE:
            return OpSpec(READ_SET, s.key, None)
        self._next_element += 1
        s.adds += 1
        if s.adds >= self.adds_per_key:
            self.active[slot] = self._fresh()
        return OpSpec(ADD, s.key, self._next_element)

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec(READ_SET, key, None) for key in self.used]

    def checkers(self) -> list[Checker]:
        return [SetFullChecker(), ConvergenceChecker()]
