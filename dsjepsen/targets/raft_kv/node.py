"""One Raft node: elections, log replication, commitment, and linearizable reads (ReadIndex).

Follows the Raft paper (Ongaro & Ousterhout, 2014, figure 2). Everything runs on one asyncio
loop, so the state below is only touched between awaits and needs no locks. The four bug
switches are each a small, marked deviation (search for `self.bugs`):

- stale-read: reads are served from local state on any node, with no leadership check;
- no-fsync: the log is written but never fsynced before an entry is counted and acknowledged
  (storage.py): a kill loses nothing, a power failure (disk faults) loses the tail;
- early-ack: a PUT is answered as soon as the leader has appended it, before commit;
- no-term-check: terms are never compared where Raft says they must be: AppendEntries from a
  stale term is accepted, a vote is granted to every up-to-date candidate of a term instead of
  to the first one only, and a leader never steps down for a newer term (neither for an
  AppendEntries, a vote request nor a reply that carries one). A leader that was paused or cut
  off therefore comes back as a second leader beside the one elected meanwhile, and both serve
  reads and writes from their own logs (split brain) until the run ends;
- lease-read: the leader answers reads from local state, without a quorum round, while it
  holds a lease. Followers stamp each AppendEntries reply with their wall clock (time.time())
  and, as in the Raft thesis (4.2.3), ignore vote requests for an election timeout after
  hearing from the leader (timed on the monotonic clock); the leader takes the stamp of the
  majority-th freshest follower plus half an election timeout as the end of its lease and
  compares it with its own time.time(). That is safe while wall clocks agree: no new leader
  can be elected before the lease ends. The bug is trusting wall clocks: a follower clock
  ahead of the leader's, or a leader clock that jumps back, stretches the lease past the
  election of a new leader, and the old one serves stale reads. libfaketime (clock faults)
  moves exactly this clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .bugs import BUGS
from .httpio import PeerConnection
from .kv import KV
from .storage import Entry, Storage

__all__ = ["BUGS", "Config", "Outcome", "RaftNode"]

#: Under libfaketime (clock faults on nodes that share the controller's kernel) a second thread
#: is ruinous: its pthread_cond_timedwait wrapper, with FAKETIME_DONT_FAKE_MONOTONIC=1, stalls
#: the GIL hand-off (measured: 231 instead of 15334 thread round trips in 3 s, with 1.9 s stalls
#: of the event loop, so followers miss heartbeats and elect again and again). Such a process
#: fsyncs on the loop instead, which costs a few ms per group commit and keeps elections quiet.
NO_THREADS = "faketime" in os.environ.get("LD_PRELOAD", "")


FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"


@dataclass
class Config:
    node_id: str
    advertise: str  # host:port others use to reach this node (leader hints)
    peers: dict[str, tuple[str, int]]
    election_timeout: float = 0.5  # seconds; each timeout is drawn from [t, 2t]
    heartbeat: float = 0.05
    request_timeout: float = 1.0
    rpc_timeout: float = 0.25
    max_batch: int = 512
    bugs: frozenset[str] = field(default_factory=frozenset)


class Outcome:
    OK = "ok"
    NOT_LEADER = "not-leader"  # definite: nothing was appended
    LOST = "lost"  # definite: another entry was committed at our index
    TIMEOUT = "timeout"  # unknown: appended, not (yet) known to be committed


class RaftNode:
    def __init__(self, cfg: Config, storage: Storage, log: logging.Logger):
        self.cfg = cfg
        self.id = cfg.node_id
        self.bugs = cfg.bugs
        self.st = storage
        self.log = log
        self.kv = KV()
        self.role = FOLLOWER
        self.leader_id: str | None = None
        self.commit_index = 0
        self.last_applied = 0
        self.cluster_size = len(cfg.peers) + 1
        self.majority = self.cluster_size // 2 + 1
        self.votes_in_term: list[str] = [storage.voted_for] if storage.voted_for else []
        # Leader state, reset by _become_leader.
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        self.acked_round: dict[str, int] = {}
        self.read_round = 0
        self.noop_index = 0
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: dict[int, list[tuple[int, asyncio.Future[tuple[bool, Any]]]]] = defaultdict(
            list
        )
        self._changed = asyncio.Event()
        self._flush_pending = False
        self._deadline = 0.0
        self._append_conns = {p: PeerConnection(h, port) for p, (h, port) in cfg.peers.items()}
        self._vote_conns = {p: PeerConnection(h, port) for p, (h, port) in cfg.peers.items()}
        self._loop = asyncio.get_running_loop()
        # lease-read: the end of the leader's lease (wall clock), the followers' stamps of this
        # term, and when (monotonic) a follower last heard from its leader
        self.lease_until = 0.0
        self.follower_clock: dict[str, float] = {}
        self._last_heard = -1e9

    @property
    def term(self) -> int:
        return self.st.term

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._reset_deadline()
        self._spawn(self._ticker())
        self.log.info(
            "node %s up: term %d, %d log entries recovered, bugs: %s",
            self.id,
            self.term,
            self.st.last_index,
            ", ".join(sorted(self.bugs)) or "none",
        )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = self._loop.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _notify(self) -> None:
        """Wake everything waiting for a state change (reads, acks, role changes)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, deadline: float) -> bool:
        remaining = deadline - self._loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            return False
        return True

    # -- elections ----------------------------------------------------------------------------

    def _reset_deadline(self) -> None:
        t = self.cfg.election_timeout
        self._deadline = self._loop.time() + random.uniform(t, 2 * t)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(max(0.005, self._deadline - self._loop.time()))
            if self.role == LEADER:
                self._reset_deadline()  # leaders do not time out; just look again later
            elif self._loop.time() >= self._deadline:
                self._reset_deadline()
                self._spawn(self._election())

    def _set_term(self, term: int) -> None:
        """Adopt a newer term (forgetting our vote) and follow."""
        if term > self.term:
            self.st.save_meta(term, None)
            self.votes_in_term = []
        if self.role != FOLLOWER:
            self.log.info("%s -> follower in term %d", self.role, self.term)
        self.role = FOLLOWER
        self._notify()
        for ev in self._wake.values():
            ev.set()  # let replicators notice and exit

    async def _election(self) -> None:
        term = self.term + 1
        self.st.save_meta(term, self.id)
        self.votes_in_term = [self.id]
        self.role = CANDIDATE
        self.leader_id = None
        self.log.info("election timeout: candidate in term %d", term)
        votes = {self.id}
        last = self.st.last_index
        req = {
            "term": term,
            "candidate": self.id,
            "last_log_index": last,
            "last_log_term": self.st.term_at(last),
        }
        if len(votes) >= self.majority:
            self._become_leader()
            return

        async def ask(peer: str) -> None:
            try:
                _, resp = await self._vote_conns[peer].post("/raft/vote", req, self.cfg.rpc_timeout)
            except (OSError, TimeoutError, ValueError, EOFError, asyncio.IncompleteReadError):
                return
            if not isinstance(resp, dict):
                return
            if resp.get("term", 0) > self.term:
                self._set_term(resp["term"])
                return
            if resp.get("granted") and self.role == CANDIDATE and self.term == term:
                votes.add(peer)
                if len(votes) >= self.majority:
                    self._become_leader()

        await asyncio.gather(*(ask(p) for p in self.cfg.peers))

    def on_vote(self, req: dict[str, Any]) -> dict[str, Any]:
        term = int(req["term"])
        cand = str(req["candidate"])
        if (
            "lease-read" in self.bugs
            and term > self.term
            and self.role == FOLLOWER
            and self.leader_id not in (None, cand)
            and self._loop.time() - self._last_heard < self.cfg.election_timeout
        ):
            # thesis 4.2.3: a follower that heard from its leader within the minimum election
            # timeout ignores vote requests; this is what the leader's lease relies on
            return {"term": self.term, "granted": False}
        if term > self.term and self._keeps_leadership(term):
            return {"term": self.term, "granted": False}
        if term > self.term:
            self._set_term(term)
        granted = False
        if term == self.term:
            last = self.st.last_index
            up_to_date = (int(req["last_log_term"]), int(req["last_log_index"])) >= (
                self.st.term_at(last),
                last,
            )
            free = self.st.voted_for in (None, cand)
            if "no-term-check" in self.bugs and not free and up_to_date:
                self.log.warning(
                    "BUG no-term-check: second vote in term %d, for %s (already voted for %s)",
                    term,
                    cand,
                    self.st.voted_for,
                )
                free = True
            if up_to_date and free:
                granted = True
                if self.st.voted_for != cand:
                    self.st.save_meta(term, cand)
                if cand not in self.votes_in_term:
                    self.votes_in_term.append(cand)
                self._reset_deadline()
                self.log.info("granted vote to %s in term %d", cand, term)
        return {"term": self.term, "granted": granted}

    def _become_leader(self) -> None:
        self.role = LEADER
        self.leader_id = self.id
        self.log.info("became leader in term %d", self.term)
        last = self.st.last_index
        self.next_index = {p: last + 1 for p in self.cfg.peers}
        self.match_index = {p: 0 for p in self.cfg.peers}
        self.acked_round = {p: 0 for p in self.cfg.peers}
        self.read_round = 0
        self.lease_until = 0.0
        self.follower_clock = {}
        # A no-op of our own term: committing it commits everything before it (paper, 5.4.2)
        # and is what lets ReadIndex know the commit index is up to date.
        self.st.append([Entry(self.term, {"op": "noop"})])
        self.noop_index = self.st.last_index
        self._wake = {p: asyncio.Event() for p in self.cfg.peers}
        for p in self.cfg.peers:
            self._spawn(self._replicate(p, self.term))
        self._schedule_flush()
        self._notify()

    # -- replication (leader side) ------------------------------------------------------------

    def _own_match(self) -> int:
        # Under no-fsync `durable` means written, not fsynced: that is the bug.
        return self.st.durable

    def _schedule_flush(self) -> None:
        """Replicate at once and fsync the leader's own log in a worker thread meanwhile
        (Raft allows sending entries before they are durable on the leader, which counts
        itself only once they are). One fsync covers every request that arrived while the
        previous one ran (group commit)."""
        for ev in self._wake.values():
            ev.set()
        if not self._flush_pending:
            self._flush_pending = True
            self._spawn(self._flusher())

    async def _flusher(self) -> None:
        try:
            while self.st.durable < self.st.last_index:
                if NO_THREADS:
                    self.st.sync()
                else:
                    await asyncio.to_thread(self.st.sync)
                if self.role == LEADER:
                    self._advance_commit()
        finally:
            self._flush_pending = False
        if self.role == LEADER:
            self._advance_commit()  # a single-node cluster: nothing else to wait for

    async def _replicate(self, peer: str, term: int) -> None:
        conn = self._append_conns[peer]
        ev = self._wake[peer]
        while self.role == LEADER and self.term == term:
            try:
                await asyncio.wait_for(ev.wait(), self.cfg.heartbeat)
            except TimeoutError:
                pass
            ev.clear()
            if self.role != LEADER or self.term != term:
                return
            prev = self.next_index[peer] - 1
            entries = self.st.entries[prev : prev + self.cfg.max_batch]
            req = {
                "term": term,
                "leader": self.id,
                "prev_index": prev,
                "prev_term": self.st.term_at(prev),
                "entries": [[e.term, e.cmd] for e in entries],
                "commit": self.commit_index,
            }
            rnd = self.read_round
            try:
                _, resp = await conn.post("/raft/append", req, self.cfg.rpc_timeout)
            except (OSError, TimeoutError, ValueError, EOFError, asyncio.IncompleteReadError):
                await asyncio.sleep(self.cfg.heartbeat)
                continue
            if not isinstance(resp, dict):
                continue
            if resp.get("term", 0) > self.term and not self._keeps_leadership(resp["term"]):
                self._set_term(resp["term"])
                return
            if self.role != LEADER or self.term != term:
                return
            self.acked_round[peer] = max(self.acked_round[peer], rnd)
            if "lease-read" in self.bugs and isinstance(resp.get("clock"), int | float):
                self._extend_lease(peer, float(resp["clock"]))
            if resp.get("success"):
                m = prev + len(entries)
                self.match_index[peer] = max(self.match_index[peer], m)
                self.next_index[peer] = max(self.next_index[peer], m + 1)
                self._advance_commit()
            else:
                nxt = int(resp.get("conflict_index") or prev)
                ct = resp.get("conflict_term")
                if ct:
                    for i in range(min(prev, self.st.last_index), 0, -1):
                        t = self.st.term_at(i)
                        if t == ct:
                            nxt = i + 1
                            break
                        if t < ct:
                            break
                self.next_index[peer] = max(1, min(nxt, prev))
            self._notify()
            if self.next_index[peer] <= self.st.last_index or self.read_round > rnd:
                ev.set()

    def _keeps_leadership(self, term: int) -> bool:
        """BUG no-term-check: a leader that meets a newer term stays leader. Raft's rule (step
        down at once, 5.1) is what keeps two leaders from serving at the same time."""
        if "no-term-check" not in self.bugs or self.role != LEADER:
            return False
        self.log.warning("BUG no-term-check: leader of term %d ignores term %d", self.term, term)
        return True

    def _extend_lease(self, peer: str, clock: float) -> None:
        """BUG lease-read: the lease ends half an election timeout after the stamp of the
        majority-th freshest follower, a time read on *its* wall clock and compared with
        ours; `max` keeps a lease once granted, even when our clock jumps back."""
        self.follower_clock[peer] = max(self.follower_clock.get(peer, 0.0), clock)
        need = self.majority - 1  # followers needed besides ourselves
        stamps = sorted(self.follower_clock.values(), reverse=True)
        if need <= 0 or len(stamps) < need:
            return
        self.lease_until = max(self.lease_until, stamps[need - 1] + self.cfg.election_timeout / 2)

    def holds_lease(self) -> bool:
        return (
            "lease-read" in self.bugs
            and self.role == LEADER
            and self.commit_index >= self.noop_index
            and time.time() < self.lease_until
        )

    def _advance_commit(self) -> None:
        matches = sorted([self._own_match(), *self.match_index.values()], reverse=True)
        n = matches[self.majority - 1]
        # Only entries of the current term are committed by counting replicas (paper, 5.4.2).
        if n > self.commit_index and self.st.term_at(n) == self.term:
            self.commit_index = n
            self._apply()

    def _apply(self) -> None:
        while self.last_applied < self.commit_index:
            i = self.last_applied + 1
            e = self.st.entries[i - 1]
            result = self.kv.apply(e.cmd, i)
            self.last_applied = i
            for term, fut in self._waiters.pop(i, ()):
                if not fut.done():
                    fut.set_result((e.term == term, result))
        self._notify()

    # -- replication (follower side) ----------------------------------------------------------

    def on_append(self, req: dict[str, Any]) -> dict[str, Any]:
        term = int(req["term"])
        leader = str(req["leader"])
        if term != self.term and self._keeps_leadership(term):
            return {"term": self.term, "success": False, "conflict_index": int(req["prev_index"])}
        if term < self.term:
            if "no-term-check" not in self.bugs:
                return {"term": self.term, "success": False}
            self.log.warning(
                "BUG no-term-check: accepting AppendEntries from %s of stale term %d (mine %d)",
                leader,
                term,
                self.term,
            )
            if self.role != FOLLOWER:
                self._set_term(self.term)
        elif term > self.term or self.role == CANDIDATE:
            self._set_term(term)
        elif self.role == LEADER:
            # Two leaders in one term: impossible in Raft, possible with no-term-check's votes.
            self.log.warning("another leader %s in my term %d", leader, term)
            return {"term": self.term, "success": False, "conflict_index": int(req["prev_index"])}
        if self.leader_id != leader:
            self.log.info("following leader %s in term %d", leader, term)
        self.leader_id = leader
        self._reset_deadline()
        self._last_heard = self._loop.time()
        prev = int(req["prev_index"])
        if prev > self.st.last_index:
            return {
                "term": self.term,
                "success": False,
                "conflict_index": self.st.last_index + 1,
                "clock": time.time(),
            }
        if self.st.term_at(prev) != int(req["prev_term"]):
            ct = self.st.term_at(prev)
            first = prev
            while first > 1 and self.st.term_at(first - 1) == ct:
                first -= 1
            return {
                "term": self.term,
                "success": False,
                "conflict_index": first,
                "conflict_term": ct,
                "clock": time.time(),
            }
        entries = req["entries"]
        for k, (t, _cmd) in enumerate(entries):
            idx = prev + 1 + k
            if idx <= self.st.last_index:
                if self.st.term_at(idx) == t:
                    continue
                self.log.info("log conflict at index %d: truncating", idx)
                self.st.truncate(idx)
            self.st.append([Entry(int(t), c) for t, c in entries[k:]])
            break
        self.st.sync()  # durable before we acknowledge (only written under no-fsync: the bug)
        match = prev + len(entries)
        new_commit = min(int(req["commit"]), match)
        if new_commit > self.commit_index:
            self.commit_index = new_commit
            self._apply()
        return {"term": self.term, "success": True, "match_index": match, "clock": time.time()}

    # -- client operations --------------------------------------------------------------------

    async def propose(self, cmd: dict[str, Any]) -> tuple[str, Any, int]:
        """Replicate one command; the outcome says whether it certainly did or did not happen.
        The last item is the command's log index (0 when nothing was appended)."""
        if self.role != LEADER:
            return Outcome.NOT_LEADER, None, 0
        term = self.term
        self.st.append([Entry(term, cmd)])
        index = self.st.last_index
        fut: asyncio.Future[tuple[bool, Any]] = self._loop.create_future()
        self._waiters[index].append((term, fut))
        self._schedule_flush()
        if "early-ack" in self.bugs and cmd.get("op") == "put":
            return Outcome.OK, ("ok", cmd["value"]), index
        try:
            same, result = await asyncio.wait_for(fut, self.cfg.request_timeout)
        except TimeoutError:
            return Outcome.TIMEOUT, None, index
        return (Outcome.OK, result, index) if same else (Outcome.LOST, None, index)

    async def wait_applied(self, index: int, timeout: float) -> bool:
        """Wait until this node's state machine has applied `index` (sticky-follower writes
        return only then, so the writer's next local read sees its own write)."""
        deadline = self._loop.time() + timeout
        while self.last_applied < index:
            if not await self._wait_change(deadline):
                return False
        return True

    async def read_barrier(self) -> str:
        """ReadIndex (Raft thesis, 6.4): confirm leadership with a quorum round after the
        request arrived, then wait until the state machine has caught up to the commit index
        seen at arrival. A read that cannot be confirmed has done nothing, so it may fail."""
        if "stale-read" in self.bugs:
            return Outcome.OK
        if self.holds_lease():
            return Outcome.OK  # BUG lease-read: no quorum round while the lease looks valid
        if self.role != LEADER:
            return Outcome.NOT_LEADER
        term = self.term
        deadline = self._loop.time() + self.cfg.request_timeout

        def deposed() -> bool:
            return self.role != LEADER or self.term != term

        while self.commit_index < self.noop_index:
            if not await self._wait_change(deadline) or deposed():
                return Outcome.NOT_LEADER
        read_index = self.commit_index
        if self.cfg.peers:
            self.read_round += 1
            rnd = self.read_round
            for ev in self._wake.values():
                ev.set()
            while sum(1 for r in self.acked_round.values() if r >= rnd) + 1 < self.majority:
                if not await self._wait_change(deadline) or deposed():
                    return Outcome.NOT_LEADER
        while self.last_applied < read_index:
            if not await self._wait_change(deadline):
                return Outcome.NOT_LEADER
        return Outcome.OK

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "term": self.term,
            "leader": self.leader_id,
            "voted_for": self.st.voted_for,
            "votes_in_term": list(self.votes_in_term),
            "commit_index": self.commit_index,
            "last_applied": self.last_applied,
            "last_log_index": self.st.last_index,
            "durable_index": self.st.durable,
            "bugs": sorted(self.bugs),
            # the wall clock as this process sees it (moved by clock faults under libfaketime)
            "clock": time.time(),
            "lease_until": self.lease_until if "lease-read" in self.bugs else None,
        }
