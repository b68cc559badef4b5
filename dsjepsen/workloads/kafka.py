"""The kafka workload (Maelstrom's, Gossip Glomers 5a-5c): append-only logs under string keys.

Ops, as Maelstrom's generator (jepsen.tests.kafka over elle's list-append, one micro-op per
transaction, keys written as strings) makes them:

- `send` to a key a message unique within that key (1, 2, 3, ...): half the ops;
- `poll` whatever this client is assigned (from the offsets its client keeps): the other half;
- now and then `assign` (about 1 op in 64): the key the op would have used, and a third of the
  time every key in use too, so that consumers follow what producers write; the client then
  polls those keys from its own offsets or the node's committed ones;
- rarely `crash` (the client is torn down and a fresh one takes over), as Maelstrom does.

Keys: `keys` in use at once (10, as Maelstrom's generator), chosen exponentially (the first
twice as often as the second ...); after `max-writes-per-key` sends (16) a key is retired for
a fresh one. The op sequence is a function of the seed alone.

After healing, every node polls every key from the start (`assign` with seek-to-beginning,
then `poll` again and again: `final_followups`) until it has returned every offset the run
saw acknowledged or polled, or for at most FINAL_POLL_SECONDS, as Maelstrom's final polls do.
Judged by checkers.kafka (Jepsen's queue/log checker).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from dsjepsen.checkers.kafka import KafkaChecker, max_offsets
from dsjepsen.options import Option
from dsjepsen.workloads.base import KEYS, OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker
    from dsjepsen.history import Op

SEND, POLL, ASSIGN, CRASH = "send", "poll", "assign", "crash"
#: Jepsen's sub-p: the share of ops that (re)assign keys
ASSIGN_SHARE = 1 / 64
#: crash a client about once per 500 ops (Maelstrom: one per 30 s / concurrency)
CRASH_SHARE = 1 / 500
#: how long the final polls may go on (Maelstrom clips them to 10 s)
FINAL_POLL_SECONDS = 10.0


class KafkaWorkload(Workload):
    name = "kafka"
    description = (
        "Maelstrom's kafka: send to append-only logs, poll them with committed offsets; "
        "Jepsen's queue/log checker (lost writes, skips, offsets going backwards)"
    )
    needs = frozenset({SEND, POLL, ASSIGN, CRASH})
    required_ok = {SEND: 1, POLL: 1}
    options = (
        replace(KEYS, default=10),  # Maelstrom's generator keeps 10 keys in use
        Option(
            "max-writes-per-key",
            "int",
            16,
            "kafka: sends to a key before a fresh key replaces it",
            minimum=1,
            metavar="N",
        ),
    )

    def __init__(self, *, seed: int, keys: int = 10, max_writes_per_key: int = 16) -> None:
        if keys < 1 or max_writes_per_key < 1:
            raise ValueError("keys and max_writes_per_key must be positive")
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:kafka")
        self.max_writes = max_writes_per_key
        self.active = list(range(keys))
        self.next_key = keys
        self.writes: dict[int, int] = {}
        self.used: list[int] = list(self.active)
        # the exponential key distribution of elle's generator: key i weighs 2^-i
        self.weights = [2.0**-i for i in range(keys)]
        self._targets: dict[str, int] | None = None
        self._lock = threading.Lock()

    def _key(self) -> int:
        return self.rng.choices(range(len(self.active)), self.weights)[0]

    def next_op(self) -> OpSpec:
        r = self.rng.random()
        slot = self._key()
        key = self.active[slot]
        if r < CRASH_SHARE:
            return OpSpec(CRASH)
        if r < CRASH_SHARE + ASSIGN_SHARE:
            keys = {key}
            if self.rng.random() < 1 / 3:
                keys.update(self.active)
            return OpSpec(ASSIGN, None, {"keys": [str(k) for k in sorted(keys)]})
        if self.rng.random() < 0.5:
            return OpSpec(POLL)
        n = self.writes[key] = self.writes.get(key, 0) + 1
        if n >= self.max_writes:  # retired: a fresh key takes its place
            self.active[slot] = self.next_key
            self.used.append(self.next_key)
            self.next_key += 1
        return OpSpec(SEND, str(key), n)

    def final_ops(self) -> list[OpSpec]:
        keys = [str(k) for k in self.used]
        return [OpSpec(ASSIGN, None, {"keys": keys, "seek_to_beginning": True}), OpSpec(POLL)]

    def final_followups(
        self, done: Sequence[Op], history: Sequence[Op], final_from: int | None
    ) -> list[OpSpec]:
        """Poll again until this node has returned every offset the run saw (acknowledged
        sends, polls) for every key, or FINAL_POLL_SECONDS have passed; after a crash or a
        failed assign, assign again from the beginning first."""
        if not done:
            return []
        with self._lock:
            if self._targets is None:
                self._targets = max_offsets(history[:final_from])
            targets = self._targets
        if (done[-1].time - done[0].time) / 1e9 >= FINAL_POLL_SECONDS:
            return []
        last = done[-1]
        if last.type == "info" or (last.f == ASSIGN and last.type != "ok"):
            return self.final_ops()
        since = max((i for i, op in enumerate(done) if op.f == ASSIGN and op.type == "ok"),
                    default=-1)  # fmt: skip
        reached = max_offsets(done[since + 1 :])
        if all(reached.get(k, -1) >= o for k, o in targets.items()):
            return []
        return [OpSpec(POLL)]

    def checkers(self) -> list[Checker]:
        return [KafkaChecker()]
