"""Raft's persistent state: term and vote in a small metadata file, the log in an append-only file.

Raft is only safe if a node never forgets a vote or an acknowledged entry, so `save_meta` and
`sync` return only once the bytes are on disk (fsync of the file, and of the directory when a
file is renamed into place). The `no-fsync` bug writes the log but never fsyncs it: the bytes
reach the kernel's page cache, so a SIGKILL loses nothing, but a power failure (the disk faults'
fault file system) loses every entry written since the last fsync, which is none. Nothing here
simulates that loss: the file system does it.

Every log record and the metadata carry a CRC-32, so that recovery can tell the two ways a
record can be unreadable apart (the distinction of Alagappan et al., "Protocol-Aware Recovery
for Consensus-Based Storage", FAST 2018, and of etcd's WAL):

* a **torn tail**: the file ends inside the record, or the record holds a zero byte (a hole:
  sectors a power failure never wrote, as small as one byte of the record's first sector;
  records are printable ASCII, and no single bit flip of the characters JSON and the
  checksum use here makes a zero byte). It was never fsynced, so never acknowledged,
  and neither was anything written after it (an fsync would have made the hole durable too):
  the record and everything after it are cut off, and the node says so in its log.
* **corruption**: a whole record (newline-terminated, no hole) whose checksum or JSON fails.
  It may have been acknowledged; reading it as data would serve a different value, and
  cutting the log there would forget acknowledged entries. The node refuses to start
  (`CorruptLog`, exit status 71) and an operator must replace its data from a peer.

What a checksum cannot see: a file cut (`file-truncate`) exactly between two records is a
valid shorter log, and one cut inside a record looks like a torn tail; the node then forgets
entries it may have acknowledged, as etcd and the FAST paper's model do for a truncated tail.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from .httpio import serverkit

T = TypeVar("T")

META = "meta.json"
LOG = "log.jsonl"
#: the exit status of a node whose disk failed it
EXIT_DISK = 70
#: the exit status of a node that found its log or metadata corrupted
EXIT_CORRUPT = serverkit.EXIT_CORRUPT

log = logging.getLogger("raft-kv")


class CorruptLog(serverkit.CorruptData):
    """The log or metadata holds a record that fails its checksum and is no torn tail."""


def checksum(payload: bytes) -> str:
    return f"{zlib.crc32(payload):08x}"


def fail_stop(fn: Callable[..., T]) -> Callable[..., T]:
    """Exit the process when the disk fails a write or an fsync (EIO, ENOSPC, ...).

    After a failed write or fsync nobody knows what is on disk: the kernel may have dropped
    the dirty pages it could not write, so a retried fsync can report success for data that
    is gone (PostgreSQL's "fsyncgate", 2018), and a node that carries on may acknowledge what
    it never persisted. Stopping is what Raft tolerates: the node comes back, recovers from
    what its disk really holds, and catches up from the others."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            print(f"raft-kv: storage failed in {fn.__name__}: {e}; exiting", file=sys.stderr)
            sys.stderr.flush()
            os._exit(EXIT_DISK)

    return guarded


@dataclass
class Entry:
    term: int
    cmd: dict[str, Any]


class Storage:
    """The on-disk image of one node. `entries[i]` is log index i + 1 (Raft indexes from 1)."""

    def __init__(self, data_dir: str, fsync: bool = True):
        self.dir = data_dir
        self.fsync = fsync
        os.makedirs(data_dir, exist_ok=True)
        self.term = 0
        self.voted_for: str | None = None
        self.entries: list[Entry] = []
        self.durable = 0  # entries[:durable] are in the log file
        # The leader fsyncs in a worker thread (overlapping its own write with the followers');
        # the lock keeps that write and a truncation from interleaving on the file.
        self._lock = threading.Lock()
        self._load()
        self._fh = open(os.path.join(self.dir, LOG), "ab")  # noqa: SIM115 - kept open

    # -- recovery -----------------------------------------------------------------------------

    def _load(self) -> None:
        meta_path = os.path.join(self.dir, META)
        if os.path.exists(meta_path):
            self.term, self.voted_for = _read_meta(meta_path)
        log_path = os.path.join(self.dir, LOG)
        if not os.path.exists(log_path):
            return
        with open(log_path, "rb") as fh:
            raw = fh.read()
        try:
            payloads, good = serverkit.read_records(raw, log_path)
        except serverkit.CorruptData as e:
            raise CorruptLog(f"{e}: the log is corrupt") from None
        for payload in payloads:
            entry = _parse(payload)
            if entry is None:  # its checksum held: written so, not damaged since
                raise CorruptLog(f"{log_path}: entry {len(self.entries) + 1} is not an entry")
            self.entries.append(entry)
        if good != len(raw):
            log.warning(
                "log: cutting a torn tail at byte %d (%d B, never fsynced) after entry %d",
                good,
                len(raw) - good,
                len(self.entries),
            )
        if good != len(raw):
            with open(log_path, "r+b") as fh:
                fh.truncate(good)
                os.fsync(fh.fileno())
        self.durable = len(self.entries)

    # -- term and vote ------------------------------------------------------------------------

    @fail_stop
    def save_meta(self, term: int, voted_for: str | None) -> None:
        self.term = term
        self.voted_for = voted_for
        body = {"term": term, "voted_for": voted_for}
        crc = checksum(json.dumps(body, sort_keys=True).encode())
        payload = json.dumps({**body, "crc": crc}).encode()
        serverkit.write_atomic(os.path.join(self.dir, META), payload)

    # -- log ----------------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return len(self.entries)

    def term_at(self, index: int) -> int:
        return self.entries[index - 1].term if index >= 1 else 0

    def append(self, entries: list[Entry]) -> None:
        """Add entries in memory; they are durable only after `sync`."""
        self.entries.extend(entries)

    @fail_stop
    def truncate(self, from_index: int) -> None:
        """Drop entries from `from_index` on, on disk too (the file is rewritten atomically)."""
        with self._lock:
            if from_index > len(self.entries):
                return
            del self.entries[from_index - 1 :]
            if self.durable >= from_index:
                self._fh.close()
                data = b"".join(self._line(e) for e in self.entries[: from_index - 1])
                serverkit.write_atomic(os.path.join(self.dir, LOG), data)
                self._fh = open(os.path.join(self.dir, LOG), "ab")  # noqa: SIM115
                self.durable = from_index - 1

    @fail_stop
    def sync(self) -> None:
        """Write the in-memory tail and fsync it. Under no-fsync the fsync is left out, which
        is the bug: the node then counts the entries durable (and acknowledges them) once
        write() has returned, while they are only in the page cache."""
        with self._lock:
            start = self.durable
            tail = self.entries[start:]  # a snapshot: the loop may append meanwhile
            if not tail:
                return
            self._fh.write(b"".join(self._line(e) for e in tail))
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
            self.durable = start + len(tail)

    @staticmethod
    def _line(e: Entry) -> bytes:
        """One sealed record (`<crc32 hex>:<json>\n`), checked on recovery."""
        payload = json.dumps({"t": e.term, "c": e.cmd}, separators=(",", ":")).encode()
        return serverkit.seal(payload) + b"\n"

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _parse(payload: bytes) -> Entry | None:
    """One log entry from a record's verified payload, or None when it is not one."""
    try:
        d = json.loads(payload)
        return Entry(int(d["t"]), d["c"])
    except (ValueError, KeyError, TypeError):
        return None


def _read_meta(path: str) -> tuple[int, str | None]:
    """Term and vote; CorruptLog when the file fails its checksum (it is written atomically,
    so it is never torn: any damage is corruption, and a wrong term or vote breaks Raft)."""
    try:
        with open(path, "rb") as fh:
            meta = json.loads(fh.read())
        body = {"term": int(meta["term"]), "voted_for": meta.get("voted_for")}
        ok = meta.get("crc") == checksum(json.dumps(body, sort_keys=True).encode())
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise CorruptLog(f"{path}: the term and vote fail their checksum: metadata corrupt")
    return body["term"], body["voted_for"]
