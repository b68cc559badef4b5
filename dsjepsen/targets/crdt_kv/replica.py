"""One crdt-kv replica: the state of every key, local updates, merges from peers, and gossip.

Every node is a full replica and answers every request from its own state: an update is
journaled, applied locally and acknowledged (no coordination), and anti-entropy gossip then
carries the new state to every peer. Gossip is push-based and per peer: every
`gossip_interval` the replica sends each peer the keys that changed since that peer last
acknowledged them (their whole CRDT state); the peer journals what is new to it, applies it
and answers. A failed exchange acknowledges nothing, so whatever a partition, pause or crash
kept from a peer is sent again once it answers; a peer that answers with a new boot id
restarted, and is sent every key again (its data directory may have been wiped). Merges that
change a key bump its version too, so updates also travel through a node that sees both sides
of a bridge.

Everything a read can see is on disk first (storage.Journal), so a replica's reads never go
backwards, even across a crash. Everything runs on one asyncio loop: state is only touched
between awaits, no locks. The bug switches are each a marked deviation (search for
`self.bugs`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .crdt import GSet, PNCounter, canonical
from .httpio import PeerConnection, ProtocolError
from .storage import Journal, Storage

SET, COUNTER = "set", "counter"
#: at most this many keys per gossip message (the rest go in the next rounds)
MAX_KEYS_PER_GOSSIP = 256

Key = tuple[str, str]  # (SET or COUNTER, key)


@dataclass
class Config:
    node_id: str
    peers: dict[str, tuple[str, int]]
    gossip_interval: float = 0.1  # seconds between two gossip rounds to one peer
    gossip_timeout: float = 1.0  # one exchange, connect included
    push_timeout: float = 0.5  # no-anti-entropy: one push attempt
    snapshot_interval: float = 5.0
    bugs: frozenset[str] = field(default_factory=frozenset)


@dataclass
class Peer:
    """What this replica knows of one peer."""

    name: str
    conn: PeerConnection
    acked: dict[Key, int] = field(default_factory=dict)  # key -> version the peer has
    boot: str | None = None  # the peer's boot id at its last answer
    last_ok: float | None = None  # monotonic time of the last successful exchange
    failures: int = 0  # consecutive failed exchanges
    last_error: str | None = None


class Replica:
    def __init__(self, cfg: Config, storage: Storage, journal: Journal, log: logging.Logger):
        self.cfg = cfg
        self.id = cfg.node_id
        self.bugs = cfg.bugs
        self.storage = storage
        self.replica = storage.replica_id
        self.journal = journal
        self.log = log
        self.boot = secrets.token_hex(8)  # new at every start: peers resend everything
        self.sets: dict[str, GSet] = {}
        self.counters: dict[str, PNCounter] = {}
        self.versions: dict[Key, int] = {}
        self.clock = 0
        self.changed_since_snapshot = False
        # own counts including updates still waiting for their fsync, so that concurrent
        # increments of one key each journal a distinct, larger absolute count
        self._own: dict[tuple[str, str], int] = {}
        self.peers = {
            name: Peer(name, PeerConnection(host, port)) for name, (host, port) in cfg.peers.items()
        }
        self.pushes_dropped = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    def recover(self) -> int:
        """Load the snapshot and replay the journals; returns the number of records."""
        snapshot, records = self.storage.load()
        if snapshot:
            self.load_state(snapshot)
        for rec in records:
            self._apply(rec)
        self.changed_since_snapshot = False
        return len(records)

    def start(self) -> None:
        if "no-anti-entropy" not in self.bugs:  # the bug: no gossip at all
            for peer in self.peers.values():
                self._spawn(self._gossip(peer))
        if not self.journal.durable:
            self._spawn(self.journal.run_periodic_flush())
        self._spawn(self._snapshots())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await self.journal.flush()
        await self.journal.snapshot(self.state)
        for peer in self.peers.values():
            peer.conn.close()

    # -- local updates (the client contract) --------------------------------------------------

    def _set(self, key: str) -> GSet:
        g = self.sets.get(key)
        if g is None:
            g = self.sets[key] = GSet()
        return g

    def _counter(self, key: str) -> PNCounter:
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = PNCounter()
        return c

    def _touch(self, kind: str, key: str) -> None:
        self.clock += 1
        self.versions[(kind, key)] = self.clock
        self.changed_since_snapshot = True

    async def add(self, key: str, element: Any) -> None:
        """Add element to the set `key`; returns once it is durable and applied."""
        rec: dict[str, Any] = {"s": key, "e": element}
        if "lww-set" in self.bugs:
            g = self._set(key)
            rec["t"] = [max(time.time_ns(), g.stamp[0] + 1), self.replica]
        await self._journaled([rec])
        if "no-anti-entropy" in self.bugs:
            self._push({"s": key, "e": element})

    async def increment(self, key: str, delta: int) -> None:
        """Add delta (any sign) to the counter `key`; returns once durable and applied."""
        c = self._counter(key)
        half_name, half = c.half(delta)
        base = max(self._own.get((key, half_name), 0), half.counts.get(self.replica, 0))
        count = base + abs(delta)
        self._own[(key, half_name)] = count
        await self._journaled([{"c": key, "h": half_name, "r": self.replica, "v": count}])
        if "no-anti-entropy" in self.bugs and delta:
            self._push({"c": key, "h": half_name, "r": self.replica, "d": abs(delta)})

    async def _journaled(self, records: list[dict[str, Any]]) -> None:
        """Journal records, then apply them: whatever a read can see is already on disk, so
        a crash never makes a replica forget something it has shown (monotonic reads)."""
        if records:
            await self.journal.append(records, lambda: self._apply_all(records))

    def _apply_all(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self._apply(rec)

    def _apply(self, rec: dict[str, Any]) -> None:
        """Apply one journal record. Records are CRDT states (elements, a replica's absolute
        count, a stamped whole set), so applying one twice changes nothing."""
        if "s" in rec:
            key = rec["s"]
            g = self._set(key)
            if "lww" in rec:  # the lww-set bug: a peer's newer whole set replaces ours
                t = rec["t"]
                grew = g.lww_merge(rec["lww"], (int(t[0]), str(t[1])))
            else:
                grew = g.merge(rec["es"]) if "es" in rec else g.add(rec["e"])
                if "t" in rec:
                    g.stamp = max(g.stamp, (int(rec["t"][0]), str(rec["t"][1])))
            if grew:
                self._touch(SET, key)
        elif "c" in rec:
            key = rec["c"]
            c = self._counter(key)
            half = c.p if rec["h"] == "p" else c.n
            if half.raise_to(str(rec.get("r", self.replica)), int(rec["v"])):
                self._touch(COUNTER, key)

    def read_set(self, key: str) -> list[Any]:
        g = self.sets.get(key)
        return g.read() if g is not None else []

    def read_counter(self, key: str) -> int:
        c = self.counters.get(key)
        return c.value() if c is not None else 0

    # -- merging peers' states ----------------------------------------------------------------

    def state(self, keys: list[Key] | None = None) -> dict[str, Any]:
        """The CRDT states of keys (all keys when None), as gossip and the snapshot carry
        them."""
        if keys is None:
            keys = [(SET, k) for k in self.sets] + [(COUNTER, k) for k in self.counters]
        sets: dict[str, Any] = {}
        counters: dict[str, Any] = {}
        for kind, key in keys:
            if kind == SET:
                sets[key] = self.sets[key].to_wire()
            else:
                counters[key] = self.counters[key].to_wire()
        return {"sets": sets, "counters": counters}

    def load_state(self, payload: dict[str, Any]) -> None:
        """Take a snapshot's states as they are (it is this replica's own past state)."""
        for key, w in (payload.get("sets") or {}).items():
            g = self._set(key)
            g.merge(w["elements"])
            g.stamp = max(g.stamp, (int(w["stamp"][0]), str(w["stamp"][1])))
        for key, w in (payload.get("counters") or {}).items():
            self._counter(key).merge(w)

    def delta(self, payload: dict[str, Any], sender: str | None) -> list[dict[str, Any]]:
        """What merging a peer's states would change here, as journal records (nothing is
        applied yet). `sender` is the peer's replica id."""
        records: list[dict[str, Any]] = []
        for key, w in (payload.get("sets") or {}).items():
            g = self.sets.get(key) or GSet()
            if "lww-set" in self.bugs:  # the bug: the newer whole set wins
                stamp = (int(w["stamp"][0]), str(w["stamp"][1]))
                if stamp > g.stamp:
                    records.append({"s": key, "lww": w["elements"], "t": list(stamp)})
                continue
            new = [e for e in w["elements"] if canonical(e) not in g.elements]
            if new:
                records.append({"s": key, "es": new})
        sum_merge = "sum-merge" in self.bugs and sender is not None
        for key, w in (payload.get("counters") or {}).items():
            c = self.counters.get(key) or PNCounter()
            for half_name, half in (("p", c.p), ("n", c.n)):
                for replica, count in (w.get(half_name) or {}).items():
                    count = int(count)
                    mine = half.counts.get(replica, 0)
                    if sum_merge and replica == self.replica:
                        continue  # the bug: we know our own count best
                    if sum_merge and replica == sender:
                        count = mine + count  # the bug: add the sender's count, not max
                    if count > mine:
                        records.append({"c": key, "h": half_name, "r": replica, "v": count})
        return records

    async def on_gossip(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A peer's gossip: journal what is new to us, apply it, and say who we are (a new boot
        id tells the peer we restarted)."""
        await self._journaled(self.delta(payload, payload.get("replica")))
        return {"boot": self.boot, "replica": self.replica}

    # -- anti-entropy gossip ------------------------------------------------------------------

    async def _gossip(self, peer: Peer) -> None:
        while True:
            await asyncio.sleep(self.cfg.gossip_interval * random.uniform(0.8, 1.2))
            await self.gossip_once(peer)

    async def gossip_once(self, peer: Peer) -> bool:
        """Send the peer what changed since it last acknowledged; True on success."""
        pending = [(k, v) for k, v in self.versions.items() if v > peer.acked.get(k, 0)]
        pending = pending[:MAX_KEYS_PER_GOSSIP]
        payload = {
            "from": self.id,
            "replica": self.replica,
            "boot": self.boot,
            **self.state([k for k, _ in pending]),
        }
        try:
            status, body = await peer.conn.post("/gossip", payload, self.cfg.gossip_timeout)
            if status != 200 or not isinstance(body, dict):
                raise ProtocolError(f"answered {status}")
        except (OSError, TimeoutError, EOFError, ProtocolError, ValueError) as e:
            if peer.failures == 0:
                self.log.info("gossip to %s failing: %s", peer.name, _describe(e))
            peer.failures += 1
            peer.last_error = _describe(e)
            return False
        if peer.failures:
            self.log.info("gossip to %s works again after %d failures", peer.name, peer.failures)
        peer.failures = 0
        peer.last_ok = time.monotonic()
        boot = body.get("boot")
        if boot != peer.boot:
            if peer.boot is not None:
                self.log.info("%s restarted: sending it every key again", peer.name)
                peer.acked.clear()
            peer.boot = boot if isinstance(boot, str) else None
        for k, v in pending:  # the peer merged these versions (or later ones)
            if v > peer.acked.get(k, 0):
                peer.acked[k] = v
        return True

    # -- the no-anti-entropy bug: one push per update, never repaired -------------------------

    def _push(self, op: dict[str, Any]) -> None:
        for peer in self.peers.values():
            host, port = peer.conn.host, peer.conn.port
            self._spawn(self._push_to(host, port, op))

    async def _push_to(self, host: str, port: int, op: dict[str, Any]) -> None:
        conn = PeerConnection(host, port)  # a fresh connection: reachable now, or never
        try:
            await conn.post("/push", op, self.cfg.push_timeout)
        except (OSError, TimeoutError, EOFError, ProtocolError, ValueError):
            self.pushes_dropped += 1
        finally:
            conn.close()

    async def on_push(self, op: dict[str, Any]) -> None:
        """Apply a pushed operation. It is op-based: a counter delta is added to what we have,
        so a push that was missed is missed for good and nothing could repair it."""
        if "s" in op:
            g = self.sets.get(op["s"])
            if g is None or canonical(op["e"]) not in g.elements:
                await self._journaled([{"s": op["s"], "es": [op["e"]]}])
        elif "c" in op:
            c = self.counters.get(op["c"]) or PNCounter()
            half = c.p if op["h"] == "p" else c.n
            replica = str(op["r"])
            count = half.counts.get(replica, 0) + int(op["d"])
            await self._journaled([{"c": op["c"], "h": op["h"], "r": replica, "v": count}])

    # -- snapshots and status -----------------------------------------------------------------

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.snapshot_interval)
            if not self.changed_since_snapshot:
                continue
            self.changed_since_snapshot = False
            try:
                await self.journal.snapshot(self.state)
            except OSError as e:
                self.changed_since_snapshot = True
                self.log.warning("snapshot failed: %s", _describe(e))

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "id": self.id,
            "role": "replica",  # no leader: every node serves every request
            "leader": None,
            "term": 0,
            "commit_index": self.clock,
            "replica": self.replica,
            "boot": self.boot,
            "bugs": sorted(self.bugs),
            "sets": len(self.sets),
            "counters": len(self.counters),
            "journal_written": self.journal.written,
            "pushes_dropped": self.pushes_dropped,
            "peers": {
                p.name: {
                    "reachable": p.failures == 0 and p.last_ok is not None,
                    "last_ok_s_ago": None if p.last_ok is None else round(now - p.last_ok, 3),
                    "failures": p.failures,
                    "last_error": p.last_error,
                    "keys_behind": sum(
                        1 for k, v in self.versions.items() if v > p.acked.get(k, 0)
                    ),
                }
                for p in self.peers.values()
            },
        }


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
