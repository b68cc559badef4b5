"""Transactions on the reference Raft store: `POST /txn` with `{"txn": [[f, k, v], ...]}`.

The correct store proposes the whole transaction as one log command; its micro-ops apply at
one point of the log on every replica (kv.py), reads included, so the transactions are strict
serializable. Three switchable bugs each break it the way real stores have:

- txn-no-isolation: each micro-op is proposed as its own command as it is reached, so other
  transactions interleave with it (intermediate reads G1b, circular information flow G1c,
  G-single, lost updates); one that fails halfway is answered as failed though its first
  micro-ops were applied (a later read of them is an aborted read, G1a);
- txn-read-uncommitted: the leader executes a transaction micro-op by micro-op, as an
  interactive transaction does, against its committed state plus the write intents of every
  transaction still executing, so reads see writes that have not committed (G1b, and G1a when
  the writer then aborts: a write-write conflict with another executing transaction aborts the
  later writer, first writer wins); only its writes go through the log;
- txn-stale-snapshot: the node that takes the transaction reads from its own applied state,
  outside the log and without confirming leadership (a follower's state lags, a cut-off node's
  stays old): read-only transactions are answered there and then, the writes of the others go
  to the leader with the reads already made (G-single-realtime, and G2 / write skew when two
  transactions read a stale snapshot and write disjoint keys).
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from .kv import ABSENT, APPEND, READ
from .node import Outcome, RaftNode

#: the pause between two micro-ops of an interactive transaction (txn-read-uncommitted): the
#: round trip a client's next statement takes, during which other transactions run
MICRO_OP_GAP_S = 0.005

#: one proposal's answer: (outcome, (verdict, value) from the state machine, log index)
Proposed = tuple[str, Any, int]


class TxnExecutor:
    """Runs transactions on one node, correctly or with its bugs (see the module doc)."""

    def __init__(self, node: RaftNode) -> None:
        self.node = node
        self.bugs = node.bugs
        # txn-read-uncommitted: key -> (transaction id, its value) of every executing writer
        self.intents: dict[str, tuple[int, Any]] = {}
        self._ids = itertools.count(1)

    async def run(
        self, txn: list[list[Any]], reads: list[Any] | None = None
    ) -> tuple[str, Any, int]:
        """(outcome, result, index): outcome as Outcome, or "conflict" (aborted, nothing
        applied); result is the state machine's (verdict, micro-ops with reads filled)."""
        if reads is not None:  # the writes of a stale-snapshot transaction, reads made
            return await self.node.propose({"op": "txn", "txn": txn, "reads": reads})
        if "txn-no-isolation" in self.bugs:
            return await self._one_by_one(txn)
        if "txn-read-uncommitted" in self.bugs:
            return await self._interactive(txn)
        return await self.node.propose({"op": "txn", "txn": txn})

    def local_reads(self, txn: list[list[Any]]) -> list[Any]:
        """txn-stale-snapshot: each read as this node's applied state has it now, seeing the
        transaction's own earlier writes; None in the places of writes."""
        staged: dict[str, Any] = {}
        reads: list[Any] = []
        for f, k, v in txn:
            key = str(k)
            cur = staged[key] if key in staged else self.node.kv.get(key)
            if f == READ:
                reads.append(None if cur is ABSENT else _copy(cur))
                continue
            reads.append(None)
            if f == APPEND:
                staged[key] = [*([] if cur is ABSENT or not isinstance(cur, list) else cur), v]
            else:
                staged[key] = v
        return reads

    async def _one_by_one(self, txn: list[list[Any]]) -> Proposed:
        # BUG txn-no-isolation: one log entry per micro-op, others interleave between them
        out: list[list[Any]] = []
        index = 0
        for mop in txn:
            outcome, result, index = await self.node.propose({"op": "txn", "txn": [mop]})
            if outcome != Outcome.OK:
                return outcome, None, index
            verdict, done = result
            if verdict != "ok":
                return outcome, result, index
            out.extend(done)
        return Outcome.OK, ("ok", out), index

    async def _interactive(self, txn: list[list[Any]]) -> Proposed:
        # BUG txn-read-uncommitted: reads see other transactions' uncommitted write intents
        tid = next(self._ids)
        mine: dict[str, Any] = {}
        reads: list[Any] = []
        try:
            for f, k, v in txn:
                if self.node.role != "leader":
                    return Outcome.NOT_LEADER, None, 0
                key = str(k)
                held = self.intents.get(key)
                if f == READ:
                    cur = mine[key] if key in mine else held[1] if held else self.node.kv.get(key)
                    reads.append(None if cur is ABSENT else _copy(cur))
                else:
                    if held is not None and held[0] != tid:
                        return "conflict", None, 0  # first writer wins; ours were seen already
                    cur = mine[key] if key in mine else self.node.kv.get(key)
                    if f == APPEND:
                        base = [] if cur is ABSENT or not isinstance(cur, list) else cur
                        mine[key] = [*base, v]
                    else:
                        mine[key] = v
                    self.intents[key] = (tid, mine[key])
                    reads.append(None)
                await asyncio.sleep(MICRO_OP_GAP_S)
            return await self.node.propose({"op": "txn", "txn": txn, "reads": reads})
        finally:
            for key in mine:
                if self.intents.get(key, (None,))[0] == tid:
                    del self.intents[key]


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value
