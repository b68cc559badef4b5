"""The transactional workloads, Elle's generators: `list-append` and `rw-register`.

Every op is one transaction, `f: "txn"`, whose value is a list of 1 to `max-txn-length`
micro-ops over the `key-count` keys in use:

- list-append: `["append", k, v]` adds v to the end of key k's list, `["r", k, None]` reads
  the whole list (the completion carries it: `["r", k, [1, 2, 3]]`);
- rw-register: `["w", k, v]` writes v, `["r", k, None]` reads the register (`["r", k, 3]`).

Why shaped this way (Kingsbury & Alvaro, Elle, VLDB 2020): every value written to a key is
unique (1, 2, 3, ... per key), so a read names the writes it saw and the checker can infer the
version order of each key, then the dependencies between transactions, without any guessing.
Keys are drawn exponentially (key i of the active ones half as often as key i-1), so a few hot
keys are read and written by many transactions at once, which is where isolation anomalies
show; after `max-writes-per-key` writes a key is retired for a fresh one, which keeps each
key's version order short (the checker's cost) and starts keys during faults.

After healing, every key used is read once through every node (transactions of at most
FINAL_READS_PER_TXN reads): lost appends and a node that never caught up show there. The
history is judged by the list-append or rw-register checker for `--consistency` (Elle's model
names, comma-separated, all must hold; default strict-serializable); rw-register's
`--wfr-keys` lets its checker infer version orders from writes following reads, as
Maelstrom's txn-rw-register does. The op sequence is a function of the seed alone.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen import plugins
from dsjepsen.checkers.consistency import DEFAULT_TXN_MODEL, TXN_MODELS, consistency_models
from dsjepsen.errors import ConfigError
from dsjepsen.options import Option
from dsjepsen.workloads.base import KEYS, OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker

TXN = "txn"
READ = "r"
#: reads per transaction in the final reads (one transaction per key would be as right, only
#: slower on runs that used thousands of keys)
FINAL_READS_PER_TXN = 8
#: a transaction's micro-ops, at most (a longer one is a typo; the checkers' cost grows with it)
MAX_TXN_LENGTH = 1_000

TXN_OPTIONS: tuple[Option, ...] = (
    replace(KEYS, default=10, help="keys in use at once (Elle's key-count)"),
    Option(
        "min-txn-length",
        "int",
        1,
        "micro-ops per transaction, at least",
        minimum=1,
        maximum=MAX_TXN_LENGTH,
        metavar="N",
    ),
    Option(
        "max-txn-length",
        "int",
        4,
        "micro-ops per transaction, at most",
        minimum=1,
        maximum=MAX_TXN_LENGTH,
        metavar="N",
    ),
    Option(
        "max-writes-per-key",
        "int",
        16,
        "writes (appends) to a key before a fresh key replaces it",
        minimum=1,
        maximum=1_000_000_000,
        metavar="N",
    ),
    Option(
        "consistency",
        "str",
        DEFAULT_TXN_MODEL,
        "the isolation models the transactions are checked for, comma-separated, all must "
        f"hold (Elle's names: {', '.join(TXN_MODELS)})",
        metavar="MODELS",
        check=consistency_models,
        label="consistency",
    ),
)
#: rw-register only: Elle's writes-follow-reads inference of version orders
WFR_KEYS = Option(
    "wfr-keys",
    "bool",
    False,
    "infer that a transaction's write of a key follows the version it read of it (Elle's "
    "wfr-keys; sound for read committed and stronger; Maelstrom's txn-rw-register checks so)",
)


class TxnWorkload(Workload):
    """What list-append and rw-register share: the generator, the final reads, the checker."""

    needs = frozenset({TXN})
    required_ok = {TXN: 5}
    options = TXN_OPTIONS
    #: the micro-op that writes (Elle's name for it)
    write_f: ClassVar[str] = "append"

    def __init__(
        self,
        *,
        seed: int,
        keys: int = 10,
        min_txn_length: int = 1,
        max_txn_length: int = 4,
        max_writes_per_key: int = 16,
        consistency: str = DEFAULT_TXN_MODEL,
    ) -> None:
        if keys < 1 or min_txn_length < 1 or max_writes_per_key < 1:
            raise ValueError("keys, min_txn_length and max_writes_per_key must be positive")
        if max_txn_length < min_txn_length:
            raise ValueError(
                f"max_txn_length ({max_txn_length}) is below min_txn_length ({min_txn_length})"
            )
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:{self.name}")
        self.min_len = min_txn_length
        self.max_len = max_txn_length
        self.max_writes = max_writes_per_key
        self.consistency = consistency
        self.active = list(range(keys))
        self.next_key = keys
        self.used: list[int] = list(self.active)
        self.writes: dict[int, int] = {}
        # Elle's exponential key distribution: active key i weighs 2^-i
        self.weights = [2.0**-i for i in range(keys)]

    @classmethod
    def check_options(cls, **values: Any) -> None:
        low, high = values.get("min_txn_length", 1), values.get("max_txn_length", 4)
        if high < low:
            raise ConfigError(
                f"--max-txn-length ({high}) is below --min-txn-length ({low}): a transaction "
                "has at least min and at most max micro-ops"
            )

    def next_op(self) -> OpSpec:
        n = self.rng.randint(self.min_len, self.max_len)
        mops: list[list[Any]] = []
        for _ in range(n):
            slot = self.rng.choices(range(len(self.active)), self.weights)[0]
            key = self.active[slot]
            if self.rng.random() < 0.5:
                mops.append([READ, key, None])
                continue
            v = self.writes[key] = self.writes.get(key, 0) + 1
            mops.append([self.write_f, key, v])
            if v >= self.max_writes:  # retired: a fresh key takes its slot
                self.active[slot] = self.next_key
                self.used.append(self.next_key)
                self.next_key += 1
        return OpSpec(TXN, None, mops)

    def final_ops(self) -> list[OpSpec]:
        keys = self.used
        return [
            OpSpec(TXN, None, [[READ, k, None] for k in keys[i : i + FINAL_READS_PER_TXN]])
            for i in range(0, len(keys), FINAL_READS_PER_TXN)
        ]

    def checkers(self) -> list[Checker]:
        return [plugins.get("checkers", self.name)()]


class ListAppendWorkload(TxnWorkload):
    name = "list-append"
    description = (
        "transactions of appends and list reads over a few hot keys (Elle's list-append), "
        "checked for --consistency (default strict-serializable)"
    )
    write_f = "append"


class RwRegisterWorkload(TxnWorkload):
    name = "rw-register"
    description = (
        "transactions of register writes and reads over a few hot keys (Elle's rw-register), "
        "checked for --consistency (default strict-serializable)"
    )
    write_f = "w"
    options = (*TXN_OPTIONS, WFR_KEYS)

    def __init__(self, *, wfr_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wfr_keys = wfr_keys

    @property
    def check_extra(self) -> dict[str, Any]:
        return {"wfr_keys": self.wfr_keys}
