"""The fault file system on a real FUSE mount: what a power failure keeps and drops, the
stall / error / full faults, and that a crashed one leaves no hung mount."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from dsjepsen.cluster import faultmount
from dsjepsen.cluster.control.base import Node
from dsjepsen.cluster.control.local import LocalRemote
from dsjepsen.cluster.faultmount import FaultMount, NodeFaultMount

pytestmark = pytest.mark.skipif(
    faultmount.available() is not None or os.geteuid() != 0,
    reason=f"fault file system unavailable: {faultmount.available()}",
)


@pytest.fixture
def fs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "before").write_bytes(b"there before the mount")
    m = FaultMount.beside(str(data))
    m.start()
    yield m
    m.stop()
    assert not faultmount.is_mounted(m.mount)


def write(path: str, data: bytes, *, sync: bool, mode: str = "ab") -> None:
    with open(path, mode, buffering=0) as fh:
        fh.write(data)
        if sync:
            os.fsync(fh.fileno())


def sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_existing_data_moves_to_the_backing_directory(fs):
    assert Path(fs.mount, "before").read_bytes() == b"there before the mount"
    assert Path(fs.backing, "before").read_bytes() == b"there before the mount"
    assert faultmount.mounts_under(os.path.dirname(fs.mount)) == [fs.mount]


def test_power_failure_drops_exactly_what_was_not_fsynced(fs):
    log = os.path.join(fs.mount, "log")
    write(log, b"synced-1\n", sync=True)
    sync_dir(fs.mount)
    write(log, b"unsynced-2\n", sync=False)
    write(log, b"SYNCED", sync=False, mode="r+b")  # overwrites durable bytes, not synced
    write(os.path.join(fs.mount, "new"), b"never synced", sync=False)
    os.unlink(os.path.join(fs.mount, "before"))
    status = fs.command("status")
    assert status["unsynced_files"] == 2 and status["unsynced_entries"] == 2

    dropped = fs.command("drop-unsynced")
    assert dropped["bytes_dropped"] == len(b"unsynced-2\n") + len(b"SYNCED") + len(b"never synced")
    assert dropped["entries_undone"] == 2
    assert Path(log).read_bytes() == b"synced-1\n"
    assert sorted(os.listdir(fs.mount)) == ["before", "log"]
    assert Path(fs.mount, "before").read_bytes() == b"there before the mount"
    assert fs.command("status")["unsynced_bytes"] == 0


def test_fsync_of_a_file_keeps_it_and_commits_names(fs):
    tmp, final = os.path.join(fs.mount, "meta.tmp"), os.path.join(fs.mount, "meta")
    write(tmp, b"v1", sync=True)
    os.rename(tmp, final)
    sync_dir(fs.mount)  # the write_atomic protocol: the rename is durable now
    write(os.path.join(fs.mount, "other"), b"x", sync=True)
    write(final + ".tmp", b"v2", sync=False)
    os.rename(final + ".tmp", final)  # replaced, not yet durable
    fs.command("drop-unsynced")
    assert Path(final).read_bytes() == b"v1"
    assert Path(fs.mount, "other").read_bytes() == b"x"
    assert "meta.tmp" not in os.listdir(fs.mount)


def test_everyday_operations_pass_through(fs):
    d = os.path.join(fs.mount, "sub")
    os.mkdir(d)
    path = os.path.join(d, "f")
    write(path, b"abc", sync=True)
    os.utime(path)  # touch
    os.utime(path, ns=(1_000_000_000, 2_000_000_000))
    assert os.stat(path).st_mtime_ns == 2_000_000_000
    os.chmod(path, 0o640)
    assert os.stat(path).st_mode & 0o777 == 0o640
    os.symlink("f", os.path.join(d, "link"))
    assert os.readlink(os.path.join(d, "link")) == "f"
    os.link(path, os.path.join(d, "hard"))
    assert os.stat(path).st_nlink == 2
    assert sorted(os.listdir(d)) == ["f", "hard", "link"]
    assert os.statvfs(fs.mount).f_bsize > 0
    os.unlink(os.path.join(d, "hard"))
    os.unlink(os.path.join(d, "link"))
    os.unlink(path)
    os.rmdir(d)
    sync_dir(fs.mount)
    assert "sub" not in os.listdir(fs.mount)


def test_truncate_is_undone(fs):
    path = os.path.join(fs.mount, "t")
    write(path, b"0123456789", sync=True)
    os.truncate(path, 3)
    write(path, b"abc", sync=False)
    assert Path(path).read_bytes() == b"012abc"
    fs.command("drop-unsynced")
    assert Path(path).read_bytes() == b"0123456789"
    write(path, b"new", sync=False, mode="wb")  # open(O_TRUNC) cuts durable bytes too
    assert Path(path).read_bytes() == b"new"
    fs.command("drop-unsynced")
    assert Path(path).read_bytes() == b"0123456789"


def test_stall_delays_every_io_and_heal_ends_it(fs):
    path = os.path.join(fs.mount, "s")
    fs.command("stall 300")
    t = time.monotonic()
    write(path, b"x", sync=True)
    stalled = time.monotonic() - t
    assert stalled >= 0.6  # the write and the fsync, each held 300 ms
    fs.command("heal")
    t = time.monotonic()
    write(path, b"x", sync=True)
    assert time.monotonic() - t < 0.3


def test_error_and_full(fs):
    path = os.path.join(fs.mount, "e")
    write(path, b"ok", sync=True)
    fs.command("error")
    with pytest.raises(OSError) as e:
        write(path, b"x", sync=False)
    assert e.value.errno == errno.EIO
    fs.command("full")
    with pytest.raises(OSError) as e:
        write(path, b"x", sync=False)
    assert e.value.errno == errno.ENOSPC
    assert Path(path).read_bytes() == b"ok"  # reads still work
    fs.command("heal")
    write(path, b"!", sync=True)
    assert Path(path).read_bytes() == b"ok!"


def test_a_crashed_file_system_leaves_no_hung_mount(fs):
    pid = fs.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while faultmount.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert faultmount.is_mounted(fs.mount)  # dead: "Transport endpoint is not connected"
    with pytest.raises(OSError):
        os.listdir(fs.mount)
    done = faultmount.heal_under(os.path.dirname(fs.mount))
    assert f"unmounted {fs.mount}" in done
    assert not faultmount.is_mounted(fs.mount)
    assert Path(fs.backing, "before").read_bytes() == b"there before the mount"


def test_directories_made_or_removed_since_the_last_fsync_come_back_as_they_were(fs):
    kept = os.path.join(fs.mount, "kept")
    os.mkdir(kept)
    sync_dir(fs.mount)
    fresh = os.path.join(fs.mount, "fresh")
    os.mkdir(fresh)
    write(os.path.join(fresh, "f"), b"x", sync=False)
    os.rmdir(kept)
    os.rename(os.path.join(fs.mount, "before"), os.path.join(fs.mount, "moved"))
    dropped = fs.command("drop-unsynced")
    assert dropped["entries_undone"] == 4  # the mkdir, the create, the rmdir and the rename
    assert sorted(os.listdir(fs.mount)) == ["before", "kept"]
    assert os.path.isdir(kept)


def test_another_user_reaches_it_and_owns_what_it_creates():
    """A target that runs as its own user (postgres) works on the mount as on a disk."""
    nobody = 65534
    python = shutil.which("python3", path="/usr/bin:/bin")  # one that user may run
    if python is None:
        pytest.skip("no /usr/bin/python3 for another user to run")
    top = tempfile.mkdtemp(prefix="dsj-faultfs-user-", dir="/tmp")
    os.chmod(top, 0o755)  # reachable by that user, unlike pytest's own tmp directories
    data = os.path.join(top, "data")
    os.mkdir(data)
    Path(data, "before").write_bytes(b"root's")
    os.chown(data, nobody, nobody)  # its data directory is its own, as initdb makes it
    fs = FaultMount.beside(data)
    fs.start()
    script = (
        "import os\n"
        f"os.setgid({nobody}); os.setuid({nobody})\n"
        f"d = {fs.mount!r}\n"
        "os.mkdir(os.path.join(d, 'sub'))\n"
        "with open(os.path.join(d, 'sub', 'f'), 'wb') as fh:\n"
        "    fh.write(b'mine'); fh.flush(); os.fsync(fh.fileno())\n"
        "try:\n"
        "    open(os.path.join(d, 'before'), 'ab')\n"
        "    print('wrote a root file')\n"
        "except PermissionError:\n"
        "    print('refused')\n"
    )
    try:
        out = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.strip() == "refused", out
        st = os.stat(os.path.join(fs.mount, "sub", "f"))
        assert (st.st_uid, st.st_gid) == (nobody, nobody)
        assert os.stat(os.path.join(fs.backing, "sub")).st_uid == nobody
    finally:
        fs.stop()
        shutil.rmtree(top, ignore_errors=True)


def test_torn_write_keeps_some_parts_of_the_newest_unsynced_write_and_drops_the_rest(fs):
    """LazyFS's torn-op: the newest un-fsynced write to the chosen file is split into equal
    parts and a random non-empty proper subset of them persists; everything else is dropped."""
    import random

    log, other = os.path.join(fs.mount, "log"), os.path.join(fs.mount, "other")
    write(log, b"durable|", sync=True)
    sync_dir(fs.mount)
    write(other, b"0123456789" * 10, sync=True)
    write(log, b"older-unsynced|", sync=False)  # not the newest write: dropped whole
    newest = b"AAAABBBBCCCC"  # 3 parts of 4 bytes
    write(log, newest, sync=False)
    write(other, b"zz", sync=False, mode="r+b")  # a write to a file the glob does not name
    answer = fs.command("torn-write 7 3 0 lo*")
    torn = answer["torn"]
    offset = len(b"durable|older-unsynced|")
    assert torn["file"] == "log" and torn["offset"] == offset and torn["length"] == 12
    assert torn["parts"] == [[offset, 4], [offset + 4, 4], [offset + 8, 4]]
    # the subset is the seed's, drawn as faultfs draws it: reproducible from the record
    rng = random.Random(7)
    expected_kept = sorted(rng.sample(range(3), rng.randint(1, 2)))
    assert torn["persisted"] == expected_kept and 0 < len(expected_kept) < 3
    # read back the exact bytes: the durable prefix, zeros where the dropped older write and
    # the dropped parts were (past the file's durable end: a hole), the persisted parts
    expected = bytearray(b"durable|" + b"\0" * (offset - 8 + 12))
    for i in expected_kept:
        expected[offset + 4 * i : offset + 4 * i + 4] = newest[4 * i : 4 * i + 4]
    last = max(expected_kept)
    assert Path(log).read_bytes() == bytes(expected[: offset + 4 * last + 4])
    assert Path(other).read_bytes() == b"0123456789" * 10  # dropped as in a power failure
    assert answer["bytes_dropped"] == len(b"older-unsynced|") + 12 + 2
    assert fs.command("status")["unsynced_bytes"] == 0


def test_torn_write_overwriting_durable_bytes_mixes_old_and_new(fs):
    path = os.path.join(fs.mount, "page")
    write(path, b"o" * 8, sync=True)
    sync_dir(fs.mount)
    write(path, b"NNNNNNNN", sync=False, mode="r+b")
    torn = fs.command("torn-write 3 2 0")["torn"]  # no glob: the file with most unsynced bytes
    assert torn["file"] == "page" and torn["parts"] == [[0, 4], [4, 4]]
    got = Path(path).read_bytes()
    assert got == (b"NNNNoooo" if torn["persisted"] == [0] else b"ooooNNNN")


def test_torn_write_with_nothing_to_tear_is_a_plain_power_failure(fs):
    write(os.path.join(fs.mount, "x"), b"unsynced", sync=False)  # its creation is undone
    answer = fs.command("torn-write 1 3 0 *.db")
    assert answer["torn"] is None and "*.db" in answer["torn_skipped"]
    assert "x" not in os.listdir(fs.mount)
    with pytest.raises(OSError, match="parts must be 2..64"):  # one part cannot tear
        fs.command("torn-write 1 1 0")


def test_a_trapped_write_is_held_torn_and_what_waited_behind_it_fails(fs):
    """torn-write's trap: the next write to a matching file is held before it returns (the
    power is cut in the middle of it), and an operation queued behind it never runs."""
    import threading

    log = os.path.join(fs.mount, "wal")
    write(log, b"durable\n", sync=True)
    sync_dir(fs.mount)
    fs.command("trap 0 wal")
    outcome: dict[str, object] = {}

    def writer() -> None:
        with open(log, "ab", buffering=0) as fh:
            fh.write(b"0123456789AB")  # held here
            outcome["write"] = "returned"

    def syncer() -> None:  # another thread of the store, fsyncing another file meanwhile
        with open(os.path.join(fs.mount, "before"), "r+b", buffering=0) as fh:
            while not fs.command("status")["trapped"]:
                time.sleep(0.01)
            try:
                os.fsync(fh.fileno())
                outcome["fsync"] = "done"
            except OSError as e:
                outcome["fsync"] = e.errno

    threads = [threading.Thread(target=f, daemon=True) for f in (writer, syncer)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while not fs.command("status")["trapped"]:
        assert time.monotonic() < deadline, "the write was never trapped"
        time.sleep(0.01)
    assert fs.command("status")["trapped"]["length"] == 12
    time.sleep(0.3)
    assert outcome == {}  # neither caller has an answer yet
    torn = fs.command("torn-write 5 3 0")["torn"]
    assert torn["held"] is True and torn["file"] == "wal" and torn["offset"] == 8
    fs.command("release")
    for t in threads:
        t.join(5)
    assert outcome["fsync"] == errno.EIO  # queued behind the held write: the power was gone
    got = Path(log).read_bytes()
    assert got.startswith(b"durable\n") and got != b"durable\n0123456789AB"
    assert len(got) - 8 == 4 * (max(torn["persisted"]) + 1)


def test_a_torn_write_tears_at_sector_boundaries_and_a_write_within_one_sector_is_not_held(fs):
    """A disk writes a 512-byte sector whole: by default a write tears only at the file's
    sector boundaries, and the trap waits for a write that spans two sectors."""
    path = os.path.join(fs.mount, "db")
    write(path, b"o" * 2048, sync=True)
    sync_dir(fs.mount)
    fs.command("trap 512 db")
    write(path, b"w" * 100, sync=False, mode="r+b")  # bytes 0..100: one sector, not held
    assert fs.command("status")["trapped"] is None
    fs.command("release")
    with open(path, "r+b", buffering=0) as fh:
        fh.seek(300)
        fh.write(b"N" * 1000)  # bytes 300..1300: three sectors' worth, not synced
    torn = fs.command("torn-write 9 3 512")["torn"]
    assert torn["sector"] == 512 and torn["offset"] == 300
    assert torn["parts"] == [[300, 212], [512, 512], [1024, 276]]
    got = Path(path).read_bytes()
    assert len(got) == 2048 and got[:300] == b"o" * 300  # the one-sector write was dropped
    for i, (start, length) in enumerate(torn["parts"]):
        want = b"N" if i in torn["persisted"] else b"o"
        assert got[start : start + length] == want * length, i


# -- on the node, through its Remote (SSH and docker nodes) ------------------------------------


def test_node_fault_mount_runs_and_heals_through_a_remote(tmp_path):
    """The node-side kind over a Remote whose commands run on this machine: mounted by a
    daemon started through the Remote (the data moved to the backing directory), commanded,
    probed and power-cut by one-shots, and a SIGKILLed one's dead mount detached by the heal
    script, which reads the node's own mount table."""
    workdir = tmp_path / "node"
    data = workdir / "t" / "data"
    data.mkdir(parents=True)
    (data / "before").write_bytes(b"kept from before")
    remote = LocalRemote(Node("nx", "127.0.0.1", str(workdir)), None)
    assert faultmount.node_problem(remote) is None
    m = NodeFaultMount.beside(remote, str(data))
    try:
        pid = m.start()
        assert pid > 0 and faultmount.is_mounted(m.mount) and m.running()
        assert (Path(m.backing) / "before").read_bytes() == b"kept from before"
        assert (Path(m.state) / "faultfs.py").exists() and (Path(m.state) / "mfusepy.py").exists()
        write(str(data / "log"), b"durable", sync=True)
        write(str(data / "log"), b" lost", sync=False)
        assert m.command("drop-unsynced")["bytes_dropped"] == 5
        assert (data / "log").read_bytes() == b"durable"
        assert m.command("stall 120")["stall_ms"] == 120
        assert m.probe()["fsync_ms"] >= 0.9 * 120
        m.command("error")
        assert m.probe() == {"errno": "EIO", "failed_at": "create"}
        m.command("heal")
        with pytest.raises(OSError, match="unknown command"):
            m.command("no-such-command")
        os.kill(pid, signal.SIGKILL)  # a crash: the mount is left dead
        deadline = time.monotonic() + 10
        while faultmount.alive_on(remote, pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert faultmount.is_mounted(m.mount) and not m.running()
        with pytest.raises(OSError, match="fault file system"):
            m.command("status")
        done = faultmount.heal_node_under(remote, str(workdir))
        assert done == [f"unmounted {m.mount}"], done
        assert not faultmount.is_mounted(m.mount)
        assert faultmount.heal_node_under(remote, str(workdir)) == []  # idempotent
    finally:
        m.stop()
    assert not faultmount.is_mounted(m.mount)


def test_node_self_test_mounts_cuts_and_removes_its_scratch(tmp_path):
    # a deep workdir: the control socket's path is longer than a Unix socket address holds
    # (108 bytes), as it was by chance under some pytest temporary directories
    workdir = tmp_path / ("deep-" + "d" * 60)
    workdir.mkdir()
    remote = LocalRemote(Node("nx", "127.0.0.1", str(workdir)), None)
    works, detail = faultmount.node_self_test(remote)
    assert works, detail
    assert detail == "mounted on the node, a power failure dropped 5 B"
    assert list(workdir.iterdir()) == []
    assert not faultmount.mounts_under(str(workdir))
