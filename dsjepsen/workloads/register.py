"""The register workload: read / write / cas on many independent integer registers.

Shaped for finding bugs, not for load:
- every op picks one of the `keys` active keys at random, so each key is touched by every
  worker and therefore through every node; a node that answers reads from stale local state is
  read from on the very keys the majority is writing;
- each key gets `ops_per_key` ops and is then retired for a fresh key, which keeps per-key
  histories short (the checker's cost grows with concurrency within a key, not with run length)
  and means new keys are born during faults: a stale node that never saw a key's first write
  reads it as absent while a write has already completed;
- every written value is unique per key (writes and cas targets draw from one counter), so the
  linearizability checker can map every read to the one write it observed;
- cas compares against one of the last few values written to the key, mostly the latest, so
  many cas succeed and the register's state keeps moving.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsjepsen import plugins
from dsjepsen.options import Option
from dsjepsen.workloads.base import KEYS, OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker

#: op mix: reads dominate because stale reads are the commonest real anomaly
MIX = (("read", 0.5), ("write", 0.3), ("cas", 0.2))
MODEL = "cas-register"


@dataclass
class _Key:
    key: int
    issued: int = 0
    values: list[int] = field(default_factory=list)  # values written or cas'd to, in order


class RegisterWorkload(Workload):
    name = "register"
    description = "read / write / cas on independent integer registers, linearizable per key"
    needs = frozenset({"read", "write", "cas"})
    model = MODEL
    required_ok = {"read": 5, "write": 5}
    options = (
        KEYS,
        Option(
            "consistency",
            "str",
            "linearizable",
            "the consistency model the history is checked for",
            choices=("linearizable", "sequential"),
            metavar="MODEL",
            label="consistency",
        ),
        Option(
            "ops-per-key",
            "int",
            60,
            "ops on a key before it is retired for a fresh one",
            minimum=1,
            maximum=1_000_000_000,
            metavar="N",
        ),
    )

    def __init__(
        self,
        *,
        seed: int,
        keys: int = 5,
        ops_per_key: int = 60,
        consistency: str = "linearizable",
    ):
        if keys < 1 or ops_per_key < 1:
            raise ValueError("keys and ops_per_key must be positive")
        super().__init__(seed=seed)
        self.consistency = consistency
        self.rng = random.Random(f"{seed}:register")
        self.ops_per_key = ops_per_key
        self._next_key = 0
        self.used: list[int] = []
        self.active: list[_Key] = [self._fresh() for _ in range(keys)]
        fs, weights = zip(*MIX, strict=True)
        self._fs: tuple[str, ...] = fs
        self._weights: tuple[float, ...] = weights

    def _fresh(self) -> _Key:
        k = _Key(self._next_key)
        self._next_key += 1
        self.used.append(k.key)
        return k

    def next_op(self) -> OpSpec:
        slot = self.rng.randrange(len(self.active))
        k = self.active[slot]
        f = self.rng.choices(self._fs, self._weights)[0]
        if f == "cas" and not k.values:
            f = "write"  # a cas on a key never written can only fail: write instead
        value: Any
        if f == "read":
            value = None
        else:
            new = (k.values[-1] + 1) if k.values else 1
            if f == "write":
                value = new
            else:
                recent = k.values[-3:]
                old = recent[-1] if self.rng.random() < 0.7 else self.rng.choice(recent)
                value = [old, new]
            k.values.append(new)
        k.issued += 1
        if k.issued >= self.ops_per_key:
            self.active[slot] = self._fresh()
        return OpSpec(f, k.key, value)

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec("read", key, None) for key in self.used]

    def checkers(self) -> list[Checker]:
        return [plugins.get("checkers", self.consistency)()]
