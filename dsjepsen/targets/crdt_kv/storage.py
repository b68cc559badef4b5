"""What a crdt-kv node keeps on disk, and the journal that makes a change durable before anyone
can see it.

Files in the data directory:

- `replica`: this data directory's replica id (`<node>-<8 hex>`), made once. A G-Counter entry
  belongs to a replica id, not to a node name, so a node whose data was wiped starts a fresh
  entry instead of counting again from zero under its old one (which the max-merge would
  swallow).
Every record, the snapshot and the replica id are sealed with a CRC-32 (serverkit.seal):
recovery cuts a journal's torn tail and refuses to start (exit 71) on anything corrupted.

- `journal-<seq>.jsonl`: every change to the state, one JSON record per line: this node's own
  updates, and what it merged from peers. Each is fsync'd before it is applied, so before an
  update is acknowledged and before a read can return it (several concurrent changes share one
  fsync). A node therefore never forgets, in a crash, something it has shown a client:
  reads through one replica stay monotonic across SIGKILL.
- `snapshot.json`: the whole state, written atomically every few seconds; the journals it
  covers are then deleted (compaction: recovery reads less).

Records and snapshot entries are CRDT states, so replaying a journal over a snapshot that
already contains part of it is harmless (merges are idempotent): no sequence numbers needed.
The `volatile` bug applies and answers before the journal is written and writes it every
`flush_interval` seconds, so a SIGKILL loses the node's recent changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from .httpio import serverkit

REPLICA = "replica"
SNAPSHOT = "snapshot.json"
JOURNAL_PREFIX = "journal-"
JOURNAL_SUFFIX = ".jsonl"


class Storage:
    """The files of one data directory. Blocking calls: the journal runs them in a thread."""

    def __init__(self, data_dir: str, node_id: str):
        self.dir = data_dir
        os.makedirs(data_dir, exist_ok=True)
        self.replica_id = self._replica_id(node_id)
        self.seq = max(self._journal_seqs(), default=0) + 1  # a fresh journal per start
        self._fh = open(self._journal(self.seq), "ab")  # noqa: SIM115 - kept open

    def _replica_id(self, node_id: str) -> str:
        path = os.path.join(self.dir, REPLICA)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            rid = f"{node_id}-{secrets.token_hex(4)}"
            serverkit.write_atomic(path, serverkit.seal(rid.encode()))
            return rid
        payload = serverkit.unseal(raw)  # written atomically: never torn, so damage is
        if payload is None:  # corruption, and another id would count under a stranger's name
            raise serverkit.CorruptData(f"{path}: the replica id fails its checksum")
        return payload.decode("ascii")

    def _journal(self, seq: int) -> str:
        return os.path.join(self.dir, f"{JOURNAL_PREFIX}{seq:08d}{JOURNAL_SUFFIX}")

    def _journal_seqs(self) -> list[int]:
        seqs = []
        for name in os.listdir(self.dir):
            if name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX):
                middle = name[len(JOURNAL_PREFIX) : -len(JOURNAL_SUFFIX)]
                if middle.isdigit():
                    seqs.append(int(middle))
        return sorted(seqs)

    # -- recovery -----------------------------------------------------------------------------

    def load(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(snapshot or None, journal records in order). A torn tail (a crash mid-write) is
        skipped: it was never acknowledged. A record or snapshot that fails its checksum is
        corruption: serverkit.CorruptData (read as data it would be a count nobody made, and
        skipped it would forget acknowledged updates)."""
        snapshot = None
        path = os.path.join(self.dir, SNAPSHOT)
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raw = None
        if raw is not None:
            payload = serverkit.unseal(raw)  # written atomically: any damage is corruption
            if payload is None:
                raise serverkit.CorruptData(f"{path}: the snapshot fails its checksum")
            snapshot = json.loads(payload)
        records: list[dict[str, Any]] = []
        for seq in self._journal_seqs():
            journal = self._journal(seq)
            with open(journal, "rb") as fh:
                payloads, _ = serverkit.read_records(fh.read(), journal)
            records.extend(json.loads(p) for p in payloads)
        return snapshot, records

    # -- writing ------------------------------------------------------------------------------

    def write(self, lines: list[bytes]) -> None:
        """Append lines to the current journal and fsync."""
        self._fh.write(b"".join(lines))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def rotate(self) -> int:
        """Start a new journal; returns the sequence number of the first journal that a
        snapshot taken now does not cover."""
        self._fh.close()
        self.seq += 1
        self._fh = open(self._journal(self.seq), "ab")  # noqa: SIM115
        return self.seq

    def write_snapshot(self, data: bytes, keep_from: int) -> None:
        """Write the snapshot durably, then delete the journals before `keep_from`."""
        serverkit.write_atomic(os.path.join(self.dir, SNAPSHOT), serverkit.seal(data))
        for seq in self._journal_seqs():
            if seq < keep_from:
                os.remove(self._journal(seq))

    def close(self) -> None:
        self._fh.close()


def _nothing() -> None:
    return None


class Journal:
    """Group commit on the event loop: `append` returns once the records are on disk, and
    applies them to the state only then.

    Applying after the fsync means nothing a reader or a peer can see is ever lost by a crash:
    a replica never shows an element and then forgets it, and a G-Counter entry that peers had
    seen higher than the journal would otherwise swallow the increments made after the
    restart. Records that arrive while an fsync is running wait for the next one, so many
    concurrent changes cost one fsync. With `durable=False` (the `volatile` bug) `append`
    applies and returns at once and `run_periodic_flush` writes the pending records every
    `flush_interval` seconds.
    """

    def __init__(self, storage: Storage, durable: bool = True, flush_interval: float = 2.0):
        self.storage = storage
        self.durable = durable
        self.flush_interval = flush_interval
        self._pending: list[tuple[bytes, Callable[[], None], asyncio.Future[None] | None]] = []
        self._lock = asyncio.Lock()  # one writer at a time: a flush or a snapshot
        self._flusher: asyncio.Task[None] | None = None
        self.written = 0  # records on disk since start

    async def append(self, records: list[dict[str, Any]], apply: Callable[[], None]) -> None:
        """Journal records; `apply` (which changes the in-memory state) runs once they are
        durable, before anything else can observe the state."""
        line = b"".join(
            serverkit.seal(json.dumps(r, separators=(",", ":")).encode()) + b"\n" for r in records
        )
        if not self.durable:
            apply()
            self._pending.append((line, _nothing, None))
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((line, apply, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self.flush())
        await fut

    async def flush(self) -> None:
        """Write and fsync everything pending, batch by batch."""
        while self._pending:
            async with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    continue
                try:
                    await asyncio.to_thread(self.storage.write, [line for line, _, _ in batch])
                except OSError as e:
                    # maybe partly written: the requests answer 500, which clients take as
                    # "unknown", and the update may reappear after a restart
                    for _, _, fut in batch:
                        if fut is not None and not fut.done():
                            fut.set_exception(e)
                    continue
                self.written += len(batch)
                for _, apply, fut in batch:
                    if fut is not None:
                        apply()
                        if not fut.done():
                            fut.set_result(None)

    async def run_periodic_flush(self) -> None:
        """The volatile bug's writer: everything pending reaches disk only every
        `flush_interval` seconds."""
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def snapshot(self, state: Callable[[], dict[str, Any]]) -> None:
        """Write the whole state and drop the journals it covers.

        Taken between flushes (under the writer lock): every record already on disk has been
        applied to the state captured here, and records still pending go to the new journal.
        """
        async with self._lock:
            keep_from = self.storage.rotate()
            data = json.dumps(state(), separators=(",", ":")).encode()
            await asyncio.to_thread(self.storage.write_snapshot, data, keep_from)
