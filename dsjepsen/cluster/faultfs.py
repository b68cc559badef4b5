"""The fault file system: a FUSE pass-through that can forget what was never fsynced.

A SIGKILL cannot lose a write that reached write(): the kernel's page cache keeps it and writes
it back later. Only a power failure loses it, and a test cannot cut the machine's power. Jepsen
uses LazyFS for this (a FUSE file system that keeps un-fsynced writes in its own cache); this
is the same idea in Python, mounted by the harness over a node's data directory and passing
every operation through to a backing directory beside it.

How un-fsynced state is kept. Writes go through to the backing file at once (so reads are a
plain pass-through and a crash of this process loses nothing), and what each write replaced is
kept in memory: the file's size at its last fsync and the old bytes of every range overwritten
since. `drop-unsynced` (a power failure) puts back exactly those pre-images, which leaves each
file as it was at its last fsync / fdatasync. Directory entries follow a journaled file
system's rule (ext4's, and LazyFS's): a create, unlink, rename, mkdir, rmdir, link or symlink
is durable once the parent directory is fsynced or any file is fsynced (a journal commit
carries every pending name change); until then it is undone at a power failure, newest first
(an unlinked or replaced file waits in a trash directory so that it can come back). This loses
no more than a real journaled file system may, so a correct store that fsyncs its file (and,
for a new name, its directory) before it acknowledges never fails on it: a false alarm is
the worst bug a harness can have. Mode, owner and times are passed through and never undone.

Why mfusepy: it is maintained (releases through 2026), speaks libfuse 3 (Debian's `fuse3` and
`libfuse3-3`) through ctypes, so nothing is compiled on the node, and it is a pure-Python
wheel with no dependency of its own. pyfuse3 needs a C build against libfuse3-dev and trio;
fusepy is unmaintained and libfuse 2 only.

The process serves a Unix socket beside its state (one JSON object per line each way):
`drop-unsynced`, `trap SECTOR GLOB` (hold the next write to a matching file that spans two
sectors: the power is cut in the middle of it), `torn-write SEED PARTS SECTOR [GLOB]` (a power
failure that tears the held write, or else the newest un-fsynced write to one file), `release`, `stall MS`, `error`, `full`, `heal`,
`status`, `ping`. A crash of this
process leaves a dead mount ("Transport endpoint is not connected"); faultmount.py, the
controller's side (mounting, commanding, unmounting), detaches it on every heal path.

Run one with `python -m dsjepsen.cluster.faultfs serve --backing DIR --mount DIR --state DIR`.
This file imports nothing of dsjepsen (and mfusepy only to serve), so that it runs as a plain
script on a node that has only python3 and libfuse 3: see `main`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fnmatch
import json
import logging
import os
import random
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dsjepsen.faultfs")

#: the control socket's name in the state directory
CONTROL = "control.sock"
#: where unlinked or replaced files wait until their removal is durable
TRASH = "trash"

#: the longest a trapped write (and every operation after it) is held before it goes on: the
#: controller cuts the power within this, and a lost controller never hangs the target
TRAP_HOLD_S = 30.0

#: the file system's name in /proc/mounts, by which heal finds every one left behind
FSNAME = "dsj-faultfs"


@dataclass
class FileUndo:
    """What one file (by inode) looked like at its last fsync: its size then, and the old
    bytes of each range overwritten since, oldest first."""

    path: str  # the backing path it had when first changed (a hint; inodes are the key)
    durable_size: int
    pre_images: list[tuple[int, bytes]] = field(default_factory=list)
    unsynced_bytes: int = 0  # bytes written or cut since the last fsync
    #: the newest write since the last fsync (offset, bytes), when the newest change was a
    #: write: what a torn write splits (a truncate after it clears it)
    last_write: tuple[int, bytes] | None = None


@dataclass
class NameUndo:
    """One directory-entry change not yet durable, and how to undo it."""

    kind: str  # "remove" (undo a create), "rmtree" (undo a mkdir), "restore" (from trash),
    # "rename" (move back), "mkdir" (undo an rmdir)
    path: str
    other: str = ""  # rename: where it came from; restore: its place in the trash
    mode: int = 0o755


class FaultState:
    """The undo journal and the active fault, shared by the FUSE threads and the control
    thread (one lock: operations on a data directory are few and small)."""

    def __init__(self, backing: str, state: str) -> None:
        self.backing = os.path.realpath(backing)
        self.trash = os.path.join(state, TRASH)
        os.makedirs(self.trash, exist_ok=True)
        self.lock = threading.RLock()
        self.files: dict[int, FileUndo] = {}
        self.names: list[NameUndo] = []
        self.fault: str | None = None
        self.stall_ms = 0
        #: torn-write's trap: a glob; the next write to a file matching it is held (its bytes
        #: written, its caller not answered) and every operation after it waits, so that the
        #: controller can cut the power in the middle of that write
        self.trap: str | None = None
        self.trap_sector = 0
        self.trapped: dict[str, Any] | None = None  # the held write: file, inode, offset, length
        self.released = threading.Event()
        self.released.set()
        self.power_failures = 0
        self._trash_seq = 0
        self.counters = {"fsyncs": 0, "writes": 0, "errors_injected": 0}

    # -- recording ----------------------------------------------------------------------------

    def before_write(self, path: str, fd: int, offset: int, length: int) -> FileUndo:
        """Keep what a write of `length` bytes at `offset` (or a truncate: length -1, offset
        the new size) is about to replace, if it was durable; the file's undo record."""
        st = os.fstat(fd)
        undo = self.files.get(st.st_ino)
        if undo is None:
            undo = self.files[st.st_ino] = FileUndo(path, st.st_size)
        if length < 0:  # truncate to `offset`
            end = min(st.st_size, undo.durable_size)
            if offset < end:
                undo.pre_images.append((offset, os.pread(fd, end - offset, offset)))
            undo.unsynced_bytes += abs(st.st_size - offset)
            undo.last_write = None
            return undo
        end = min(offset + length, undo.durable_size, st.st_size)
        if offset < end:
            undo.pre_images.append((offset, os.pread(fd, end - offset, offset)))
        undo.unsynced_bytes += length
        return undo

    def commit_file(self, fd: int) -> None:
        """An fsync: this file's data is durable, and (a journal commit) every name change."""
        with contextlib.suppress(OSError):
            self.files.pop(os.fstat(fd).st_ino, None)
        self.commit_names()
        self.counters["fsyncs"] += 1

    def commit_names(self) -> None:
        self.names.clear()
        for entry in os.listdir(self.trash):
            p = os.path.join(self.trash, entry)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)

    def to_trash(self, path: str) -> str:
        self._trash_seq += 1
        place = os.path.join(self.trash, str(self._trash_seq))
        os.rename(path, place)
        return place

    # -- a power failure ----------------------------------------------------------------------

    def drop_unsynced(self) -> dict[str, Any]:
        """Put every file and name back as it was at its last fsync; what was undone."""
        with self.lock:
            names = self._undo_names()
            return self._roll_back(names, self._inodes())

    def torn_write(self, seed: int, parts: int, sector: int, pattern: str | None) -> dict[str, Any]:
        """A power failure that tears one write (LazyFS's torn-op): every file and name goes
        back to its last fsync, except that of the newest un-fsynced write to one file, split
        at `sector` boundaries (or, with sector 0, into `parts` equal parts: `spans`), a
        random non-empty proper subset (from `seed`) persists.
        The file is the one whose path relative to the mount matches `pattern` (fnmatch; the
        one with most un-fsynced bytes among several), or, with no pattern, the one with most
        un-fsynced bytes. What was undone, plus "torn": the file, offset, length, parts and
        which persisted (None, and "torn_skipped" saying why, when no write could be torn)."""
        with self.lock:
            names = self._undo_names()
            by_ino = self._inodes()
            held = self.trapped["inode"] if self.trapped else None
            candidates = []
            for ino, undo in self.files.items():
                path = by_ino.get(ino)
                if path is None or undo.last_write is None:
                    continue  # gone at the power failure, or its newest change was no write
                rel = os.path.relpath(path, self.backing)
                if held is not None:
                    if ino == held:
                        candidates.append((undo.unsynced_bytes, rel, path, undo.last_write))
                elif pattern is None or fnmatch.fnmatchcase(rel, pattern):
                    candidates.append((undo.unsynced_bytes, rel, path, undo.last_write))
            answer = self._roll_back(names, by_ino)
            if not candidates:
                answer["torn"] = None
                answer["torn_skipped"] = (
                    f"no file matching {pattern!r} had an un-fsynced write"
                    if pattern is not None
                    else "no file had an un-fsynced write"
                )
                return answer
            _bytes, rel, path, (offset, data) = max(candidates)
            answer["torn"] = tear(path, rel, offset, data, parts, sector, random.Random(seed))
            answer["torn"]["held"] = held is not None  # cut in the middle of the write
            return answer

    def _undo_names(self) -> int:
        """Undo every name change made since the last journal commit, newest first; how many.
        (The first step of every power failure, so it counts them.)"""
        self.power_failures += 1
        names = len(self.names)
        for n in reversed(self.names):
            self._undo_name(n)
        self.names.clear()
        return names

    def _roll_back(self, names: int, by_ino: dict[int, str]) -> dict[str, Any]:
        """Put every file's un-fsynced bytes back (names already undone); what was undone."""
        dropped = 0
        files: list[str] = []
        for ino, undo in self.files.items():
            dropped += undo.unsynced_bytes
            path = by_ino.get(ino)
            if path is None:  # its creation was undone, or its removal was durable
                files.append(os.path.relpath(undo.path, self.backing))
                continue
            with open(path, "r+b") as fh:
                fd = fh.fileno()
                for offset, old in reversed(undo.pre_images):
                    os.pwrite(fd, old, offset)
                os.ftruncate(fd, undo.durable_size)
                os.fsync(fd)
            files.append(os.path.relpath(path, self.backing))
        self.files.clear()
        self.commit_names()  # the trash now holds only what stays removed
        return {
            "bytes_dropped": dropped,
            "files_rolled_back": sorted(files),
            "entries_undone": names,
        }

    def _inodes(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for root, _dirs, fnames in os.walk(self.backing):
            for f in fnames:
                p = os.path.join(root, f)
                with contextlib.suppress(OSError):
                    st = os.lstat(p)
                    found.setdefault(st.st_ino, p)
        return found

    def _undo_name(self, n: NameUndo) -> None:
        try:
            if n.kind == "remove":
                os.unlink(n.path)
            elif n.kind == "rmtree":
                shutil.rmtree(n.path)
            elif n.kind == "restore":
                os.rename(n.other, n.path)
            elif n.kind == "rename":
                os.rename(n.path, n.other)
            elif n.kind == "mkdir":
                os.mkdir(n.path, n.mode)
        except OSError as e:  # a half-undone name is reported, not fatal to the rest
            log.warning("could not undo %s %s: %s", n.kind, n.path, e)

    # -- faults -------------------------------------------------------------------------------

    def gate(self, kind: str) -> None:
        """Called before every operation: stall it, or fail it (kind: "read", "write",
        "sync", "meta") as the active fault says."""
        if self.trapped is not None and not self.released.is_set():  # a write is held
            epoch = self.power_failures
            self.released.wait(TRAP_HOLD_S)
            if self.power_failures != epoch:  # the caller died with the power: never done
                raise OSError(errno.EIO, "the power failed before this operation ran")
        fault, ms = self.fault, self.stall_ms
        if fault == "stall" and ms > 0:
            time.sleep(ms / 1000.0)
        elif fault == "error" and kind in ("write", "sync", "meta"):
            self.counters["errors_injected"] += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        elif fault == "full" and kind in ("write", "meta"):
            self.counters["errors_injected"] += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def hold(self, path: str, ino: int, offset: int, length: int) -> bool:
        """After a write to `path` (relative): whether it springs the trap. The first write that
        matches and can tear (it spans two sectors) is the held one; the caller then waits on
        `released` outside the lock."""
        with self.lock:
            if self.trap is None:
                return False
            if (
                self.trapped is None
                and fnmatch.fnmatchcase(path, self.trap)
                and len(spans(offset, length, 2, self.trap_sector)) > 1  # it can tear
            ):
                self.trapped = {"file": path, "inode": ino, "offset": offset, "length": length}
            return self.trapped is not None

    def release(self) -> None:
        with self.lock:
            self.trap, self.trapped = None, None
            self.released.set()

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "fault": self.fault,
                "stall_ms": self.stall_ms,
                "unsynced_files": len(self.files),
                "unsynced_bytes": sum(u.unsynced_bytes for u in self.files.values()),
                "unsynced_entries": len(self.names),
                "trap": self.trap,
                "trapped": self.trapped,
                **self.counters,
            }

    def command(self, line: str) -> dict[str, Any]:
        """One control command; its answer (always a dict with "ok")."""
        words = line.split()
        if not words:
            return {"ok": False, "error": "empty command"}
        cmd, args = words[0], words[1:]
        if cmd == "ping":
            return {"ok": True, "pid": os.getpid()}
        if cmd == "status":
            return {"ok": True, **self.status()}
        if cmd == "drop-unsynced":
            return {"ok": True, **self.drop_unsynced()}
        if cmd == "torn-write":  # torn-write SEED PARTS SECTOR [GLOB]
            if len(args) < 3 or not all(a.isdigit() for a in args[:3]):
                return {"ok": False, "error": "torn-write takes a seed, parts, a sector, a glob"}
            if not 2 <= int(args[1]) <= 64:
                return {"ok": False, "error": "torn-write: parts must be 2..64"}
            pattern = " ".join(args[3:]) or None
            seed, parts, sector = (int(a) for a in args[:3])
            return {"ok": True, **self.torn_write(seed, parts, sector, pattern)}
        if cmd == "stall":
            if len(args) != 1 or not args[0].isdigit():
                return {"ok": False, "error": "stall takes one whole number of milliseconds"}
            self.stall_ms, self.fault = int(args[0]), "stall"
            return {"ok": True, "fault": "stall", "stall_ms": self.stall_ms}
        if cmd in ("error", "full"):
            self.fault = cmd
            return {"ok": True, "fault": cmd}
        if cmd == "trap":  # trap SECTOR GLOB
            if len(args) < 2 or not args[0].isdigit():
                return {"ok": False, "error": "trap takes a sector size and a glob"}
            with self.lock:
                self.trap, self.trapped = " ".join(args[1:]), None
                self.trap_sector = int(args[0])
                self.released.clear()
            return {"ok": True, "trap": self.trap}
        if cmd == "release":
            self.release()
            return {"ok": True, "trap": None}
        if cmd == "heal":
            self.release()
            self.fault, self.stall_ms = None, 0
            return {"ok": True, "fault": None}
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def spans(offset: int, length: int, parts: int, sector: int) -> list[tuple[int, int]]:
    """How a write of `length` bytes at `offset` may tear, as (start, end) within it: at the
    file's `sector` boundaries (a disk writes a sector whole or not at all: etcd's WAL and
    PostgreSQL's full-page writes assume so), or, with sector 0, into `parts` equal parts at
    any byte (LazyFS's torn-op, which such a disk never does; the last part takes the rest)."""
    if sector > 0:
        out, pos, end = [], offset, offset + length
        while pos < end:
            nxt = min(end, (pos // sector + 1) * sector)
            out.append((pos - offset, nxt - offset))
            pos = nxt
        return out
    parts = max(1, min(parts, length))
    step = length // parts
    return [(i * step, length if i == parts - 1 else (i + 1) * step) for i in range(parts)]


def tear(
    path: str,
    rel: str,
    offset: int,
    data: bytes,
    parts: int,
    sector: int,
    rng: random.Random,
) -> dict[str, Any]:
    """Write back a random non-empty proper subset of `data`'s parts (`spans`) at `offset` in
    `path` (already rolled back to its last fsync), and fsync it; what persisted. A part
    beyond the rolled-back end leaves a hole of zeros before it, as a file system that
    persisted the size but not every block would. A write of one part cannot tear and is
    dropped whole."""
    cut = spans(offset, len(data), parts, sector)
    n = len(cut)
    kept = sorted(rng.sample(range(n), rng.randint(1, n - 1))) if n > 1 else []
    if kept:
        with open(path, "r+b") as fh:
            for i in kept:
                start, end = cut[i]
                os.pwrite(fh.fileno(), data[start:end], offset + start)
            os.fsync(fh.fileno())
    return {
        "file": rel,
        "offset": offset,
        "length": len(data),
        "sector": sector,
        "parts": [[offset + a, b - a] for a, b in cut],
        "persisted": kept,
        "persisted_bytes": sum(cut[i][1] - cut[i][0] for i in kept),
    }


def _build_operations(state: FaultState) -> Any:
    """The mfusepy Operations over `state.backing` (imported here: only the serving process
    needs libfuse)."""
    import mfusepy

    def oserror(fn):  # noqa: ANN001, ANN202 - a decorator over many signatures
        def wrapped(self, *args):  # noqa: ANN001, ANN202
            try:
                return fn(self, *args)
            except OSError as e:
                raise mfusepy.FuseOSError(e.errno or errno.EIO) from e

        wrapped.__name__ = fn.__name__
        return wrapped

    class FaultOps(mfusepy.Operations):
        use_ns = True

        def _full(self, path: str) -> str:
            return os.path.join(state.backing, path.lstrip("/"))

        @staticmethod
        def _own(full: str) -> None:
            """Give a new file or directory to whoever made it: this process runs as root,
            and a target that runs as its own user (postgres) must own what it creates."""
            uid, gid, _pid = mfusepy.fuse_get_context()
            if uid != os.geteuid() or gid != os.getegid():
                os.lchown(full, uid, gid)

        @oserror
        def getattr(self, path, fh=None):
            # by path when there is one: libfuse 3 may hand over a handle it did not open
            st = os.lstat(self._full(path)) if path else os.fstat(fh)
            keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")
            out = {k: getattr(st, k) for k in keys}
            for k in ("st_atime", "st_mtime", "st_ctime"):
                out[k] = getattr(st, k + "_ns")
            return out

        @oserror
        def access(self, path, amode):
            if not os.access(self._full(path), amode):
                raise OSError(errno.EACCES, "access")
            return 0

        @oserror
        def readdir(self, path, fh):
            return [".", "..", *os.listdir(self._full(path))]

        @oserror
        def readlink(self, path):
            return os.readlink(self._full(path))

        @oserror
        def statfs(self, path):
            sv = os.statvfs(self._full(path))
            keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree")
            out = {k: getattr(sv, k) for k in keys}
            out.update(f_files=sv.f_files, f_flag=sv.f_flag, f_frsize=sv.f_frsize)
            out["f_namemax"] = sv.f_namemax
            return out

        @oserror
        def chmod(self, path, mode):
            os.chmod(self._full(path), mode)
            return 0

        @oserror
        def chown(self, path, uid, gid):
            os.lchown(self._full(path), uid, gid)
            return 0

        @oserror
        def utimens(self, path, times=None):
            if times is None:  # now (touch)
                os.utime(self._full(path), follow_symlinks=False)
            else:
                os.utime(self._full(path), ns=times, follow_symlinks=False)
            return 0

        # -- names ---------------------------------------------------------------------------

        @oserror
        def create(self, path, mode, fi=None):
            state.gate("meta")
            full = self._full(path)
            with state.lock:
                existed = os.path.lexists(full)
                fd = os.open(full, os.O_RDWR | os.O_CREAT, mode)
                if not existed:
                    self._own(full)
                    state.names.append(NameUndo("remove", full))
            return fd

        @oserror
        def mknod(self, path, mode, dev):
            state.gate("meta")
            full = self._full(path)
            with state.lock:
                os.mknod(full, mode, dev)
                self._own(full)
                state.names.append(NameUndo("remove", full))
            return 0

        @oserror
        def mkdir(self, path, mode):
            state.gate("meta")
            full = self._full(path)
            with state.lock:
                os.mkdir(full, mode)
                self._own(full)
                state.names.append(NameUndo("rmtree", full))
            return 0

        @oserror
        def rmdir(self, path):
            state.gate("meta")
            full = self._full(path)
            with state.lock:
                mode = os.lstat(full).st_mode & 0o7777
                os.rmdir(full)
                state.names.append(NameUndo("mkdir", full, mode=mode))
            return 0

        @oserror
        def unlink(self, path):
            state.gate("meta")
            full = self._full(path)
            with state.lock:
                place = state.to_trash(full)
                state.names.append(NameUndo("restore", full, place))
            return 0

        @oserror
        def symlink(self, target, source):
            state.gate("meta")
            full = self._full(target)
            with state.lock:
                os.symlink(source, full)
                self._own(full)
                state.names.append(NameUndo("remove", full))
            return 0

        @oserror
        def link(self, target, source):
            state.gate("meta")
            full = self._full(target)
            with state.lock:
                os.link(self._full(source), full)
                state.names.append(NameUndo("remove", full))
            return 0

        @oserror
        def rename(self, old, new):
            state.gate("meta")
            src, dst = self._full(old), self._full(new)
            with state.lock:
                if os.path.lexists(dst):
                    place = state.to_trash(dst)
                    state.names.append(NameUndo("restore", dst, place))
                os.rename(src, dst)
                state.names.append(NameUndo("rename", dst, src))
            return 0

        # -- data ----------------------------------------------------------------------------

        @oserror
        def open(self, path, flags):
            truncating = bool(flags & os.O_TRUNC)
            if truncating:
                state.gate("write")
            # The kernel resolves appends to offsets (O_APPEND here would make pwrite ignore
            # them), and a writer's handle is opened read-write: a write must read what it
            # replaces, the pre-image a power failure puts back.
            flags &= ~(os.O_TRUNC | os.O_APPEND)
            if flags & os.O_ACCMODE == os.O_WRONLY:
                flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
            full = self._full(path)
            with state.lock:
                fd = os.open(full, flags)
                if truncating:
                    state.before_write(full, fd, 0, -1)
                    os.ftruncate(fd, 0)
            return fd

        @oserror
        def read(self, path, size, offset, fh):
            state.gate("read")
            return os.pread(fh, size, offset)

        @oserror
        def write(self, path, data, offset, fh):
            state.gate("write")
            with state.lock:
                undo = state.before_write(self._full(path), fh, offset, len(data))
                undo.last_write = (offset, bytes(data))
                state.counters["writes"] += 1
                written = os.pwrite(fh, data, offset)
            if state.hold(path.lstrip("/"), os.fstat(fh).st_ino, offset, len(data)):
                state.released.wait(TRAP_HOLD_S)  # the power fails before this write returns
            return written

        @oserror
        def truncate(self, path, length, fh=None):
            state.gate("write")
            full = self._full(path)
            with state.lock:
                fd = fh if fh is not None else os.open(full, os.O_RDWR)
                try:
                    state.before_write(full, fd, length, -1)
                    os.ftruncate(fd, length)
                finally:
                    if fh is None:
                        os.close(fd)
            return 0

        @oserror
        def fsync(self, path, datasync, fh):
            state.gate("sync")
            with state.lock:
                os.fsync(fh)
                state.commit_file(fh)
            return 0

        @oserror
        def fsyncdir(self, path, datasync, fh):
            state.gate("sync")
            with state.lock:
                state.commit_names()
                state.counters["fsyncs"] += 1
            return 0

        @oserror
        def flush(self, path, fh):
            return 0

        @oserror
        def release(self, path, fh):
            os.close(fh)
            return 0

    return FaultOps()


# -- the control channel ----------------------------------------------------------------------


#: a Unix socket's path holds at most 107 bytes; a longer one is reached through its directory
SHORT_SOCKET_PATH = 100


@contextlib.contextmanager
def reachable(sock_path: str) -> Iterator[str]:
    """A name for `sock_path` that bind and connect accept: itself when short enough, else
    /proc/self/fd/N/<name> through a descriptor of its directory (the same file, so the socket
    still lives in the state directory and goes with it; a node's workdir can be deep)."""
    if len(os.fsencode(sock_path)) <= SHORT_SOCKET_PATH:
        yield sock_path
        return
    fd = os.open(os.path.dirname(sock_path) or ".", os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(sock_path)}"
    finally:
        os.close(fd)


def serve_control(state: FaultState, sock_path: str) -> threading.Thread:
    """Answer control commands on a Unix socket, in a daemon thread."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with reachable(sock_path) as name:
        server.bind(name)
    os.chmod(sock_path, 0o600)
    server.listen(8)

    def one(conn: socket.socket) -> None:
        with conn, conn.makefile("rw") as f:
            for line in f:
                try:
                    answer = state.command(line.strip())
                except Exception as e:  # an answer, so the controller never waits for nothing
                    answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                f.write(json.dumps(answer) + "\n")
                f.flush()

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, name="faultfs-control", daemon=True)
    t.start()
    return t


def control(sock_path: str, command: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send one command to a fault file system and return its answer; OSError when it does not
    answer (not running, or dead)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        with reachable(sock_path) as name:
            s.connect(name)
        s.sendall(command.encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise OSError(errno.ECONNRESET, f"fault file system closed {sock_path}")
            buf += chunk
    answer = json.loads(buf)
    if not isinstance(answer, dict):
        raise OSError(errno.EPROTO, f"fault file system answered {buf[:100]!r}")
    return answer


def is_mounted(mount: str) -> bool:
    """Whether anything is mounted at `mount` in this process's mount table (also a dead FUSE
    mount, which os.path.ismount cannot stat)."""
    target = os.path.realpath(mount)
    try:
        with open("/proc/self/mounts") as fh:
            return any(line.split()[1] == target for line in fh if len(line.split()) > 1)
    except OSError:
        return False


#: the probe's file, beside the target's own in its data directory (removed after)
PROBE = ".dsj-disk-probe"


def probe(directory: str) -> dict[str, Any]:
    """Write and fsync a small file in `directory` (a mount), timing the fsync: what the
    target's own I/O meets now ({"fsync_ms"} or {"errno", "failed_at"}). Run where the target
    runs: in the controller for a local node, as `probe DIR` on any other node."""
    path = os.path.join(directory, PROBE)
    step = "create"
    fd = -1
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        step = "write"
        os.write(fd, b"dsjepsen disk probe\n")
        step = "fsync"
        t = time.monotonic()
        os.fsync(fd)
        return {"fsync_ms": round((time.monotonic() - t) * 1000.0, 1)}
    except OSError as e:
        return {"errno": errno.errorcode.get(e.errno or 0, str(e.errno)), "failed_at": step}
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


def wait_mounted(state: str, mount: str, timeout: float) -> dict[str, Any]:
    """Until the file system at `mount` answers `ping` on its socket in `state`: its answer,
    or {"ok": False, "error"} when it did not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = "not mounted"
    while time.monotonic() < deadline:
        if is_mounted(mount):
            try:
                return control(os.path.join(state, CONTROL), "ping", timeout=2.0)
            except (OSError, ValueError) as e:
                last = str(e)
        time.sleep(0.05)
    return {"ok": False, "error": f"{mount} did not mount within {timeout:g} s ({last})"}


def main(argv: list[str] | None = None) -> int:
    """The fault file system's command line. On a node that is not the controller's (SSH,
    docker) the harness uploads this file with mfusepy beside it and runs each subcommand as
    a one-shot through the node's Remote: `serve` as a daemon, `control` / `wait` / `probe`
    printing one JSON answer (exit 1 when it says "ok": false)."""
    p = argparse.ArgumentParser(prog="python -m dsjepsen.cluster.faultfs")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="mount the fault file system (foreground)")
    s.add_argument("--backing", required=True, help="the directory that holds the data")
    s.add_argument("--mount", required=True, help="where the file system is mounted")
    s.add_argument("--state", required=True, help="control socket, trash and log")
    c = sub.add_parser("control", help="send one command to a running one")
    c.add_argument("--state", required=True)
    c.add_argument("command", nargs="+")
    w = sub.add_parser("wait", help="wait until one is mounted and answers")
    w.add_argument("--state", required=True)
    w.add_argument("--mount", required=True)
    w.add_argument("--timeout", type=float, default=15.0)
    pr = sub.add_parser("probe", help="write and fsync a small file in DIR, timed")
    pr.add_argument("dir")
    args = p.parse_args(argv)
    if args.cmd in ("control", "wait", "probe"):
        if args.cmd == "probe":
            answer: dict[str, Any] = {"ok": True, **probe(args.dir)}
        elif args.cmd == "wait":
            answer = wait_mounted(args.state, args.mount, args.timeout)
        else:
            try:
                answer = control(os.path.join(args.state, CONTROL), " ".join(args.command))
            except (OSError, ValueError) as e:  # not running, or dead: said, not a traceback
                answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer))
        return 0 if answer.get("ok") else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s faultfs %(message)s")
    import mfusepy

    os.makedirs(args.state, exist_ok=True)
    state = FaultState(args.backing, args.state)
    serve_control(state, os.path.join(args.state, CONTROL))
    log.info("mounting %s over %s", args.mount, args.backing)
    mfusepy.FUSE(
        _build_operations(state),
        args.mount,
        foreground=True,
        fsname=FSNAME,
        # targets that run as their own user (postgres) reach it too, and the kernel checks
        # their permissions against the backing files' owners and modes
        allow_other=True,
        default_permissions=True,
        # no kernel caching of names or attributes: a power failure changes the backing
        # directory underneath, and the next lookup must see it
        attr_timeout=0,
        entry_timeout=0,
        negative_timeout=0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
