"""The broadcast workload (Maelstrom's): broadcast unique messages, read them back.

Each op broadcasts a fresh integer through one node or reads every message a node holds;
after healing, every node is read in rounds until they agree (`converges`, bounded by
`--convergence-timeout`). Every acknowledged message must then be in every node's final read
(checkers.broadcast: set-full and convergence over the messages). The target sends each node
Maelstrom's `topology` message before the first broadcast through it.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from dsjepsen.checkers.broadcast import BROADCAST, READ_MESSAGES, BroadcastChecker
from dsjepsen.workloads.base import OpSpec, Workload
from dsjepsen.workloads.gset import CONVERGENCE_TIMEOUT

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker

BROADCAST_SHARE = 0.5


class BroadcastWorkload(Workload):
    name = "broadcast"
    description = (
        "broadcast unique messages, read them; every acknowledged message in every node's "
        "final read (Maelstrom's broadcast)"
    )
    needs = frozenset({BROADCAST, READ_MESSAGES})
    required_ok = {BROADCAST: 1, READ_MESSAGES: 1}
    converges = True
    options = (CONVERGENCE_TIMEOUT,)

    def __init__(self, *, seed: int, convergence_timeout: float = 30.0) -> None:
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:broadcast")
        self.convergence_timeout = convergence_timeout
        self.n = 0

    def next_op(self) -> OpSpec:
        if self.rng.random() >= BROADCAST_SHARE:
            return OpSpec(READ_MESSAGES)
        self.n += 1
        return OpSpec(BROADCAST, None, self.n)

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec(READ_MESSAGES)]

    def checkers(self) -> list[Checker]:
        return [BroadcastChecker()]
