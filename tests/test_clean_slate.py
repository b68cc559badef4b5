"""Every run starts from a clean slate: what a dead controller left on the nodes (servers,
paused or not, their pidfiles and data) is found, stopped and removed before a new setup, and
a process that merely reuses a recorded pid is never touched.

Real namespace clusters and real raft-kv servers; each test makes its own cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dsjepsen.cluster.daemon import MARKER, clear_leftovers, find_leftovers, start_daemon
from dsjepsen.history import Op
from dsjepsen.targets.raft_kv.target import RaftKvTarget

pytestmark = [pytest.mark.cluster]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _write(target: RaftKvTarget, cluster, node: str, key: int, value: int) -> Op:
    client = target.client(cluster, node)
    try:
        return client.invoke(Op(0, 0, 0, "invoke", "write", value=value, key=key))
    finally:
        client.close()


def _read(target: RaftKvTarget, cluster, node: str, key: int) -> Op:
    client = target.client(cluster, node)
    try:
        return client.invoke(Op(0, 0, 0, "invoke", "read", key=key))
    finally:
        client.close()


@pytest.mark.slow
def test_setup_stops_a_dead_runs_buggy_servers_and_their_data(make_cluster):
    cluster = make_cluster(3)
    old = RaftKvTarget(bugs=["stale-read"])
    new = RaftKvTarget()
    try:
        old.setup(cluster)
        leader = old.leader(cluster)
        assert leader is not None
        assert _write(old, cluster, leader, 7, 42).type == "ok"
        old_pids = {n: old.pid(cluster, n) for n in cluster.names}
        assert all(old_pids.values())
        # the controller dies here: nobody tears `old` down; one server is even left paused
        paused = next(n for n in cluster.names if n != leader)
        old.pause(cluster, paused)

        new.setup(cluster)

        found = {f["node"]: f for f in new.leftovers}
        assert set(found) == set(cluster.names)
        for node, pid in old_pids.items():
            procs = found[node]["processes"]
            assert [p["pid"] for p in procs] == [pid], procs
            assert "--bug stale-read" in procs[0]["command"]
            assert (procs[0]["state"] == "T") == (node == paused)
            assert new.data_dir(cluster.node(node)) in found[node]["removed"]
            assert not _alive(pid)
        for node in cluster.names:
            st = new.status(cluster, node)
            assert st is not None and st.get("bugs") == [], st
            assert new.pid(cluster, node) not in old_pids.values()
        # fresh data: the old run's write is gone
        leader = new.leader(cluster)
        assert leader is not None
        got = _read(new, cluster, leader, 7)
        assert got.type == "ok" and got.value is None, got
        # the old log is kept aside, never mixed into the new run's
        log = Path(new.log_file(cluster.node("n1")))
        assert Path(f"{log}.previous").exists()
        assert "stale-read" not in log.read_text()
    finally:
        with contextlib.suppress(Exception):
            old.resume(cluster, paused)
        new.teardown(cluster)
    # a clean teardown leaves nothing for the next setup to report
    again = RaftKvTarget()
    try:
        again.setup(cluster)
        assert again.leftovers == []
    finally:
        again.teardown(cluster)


def test_a_daemon_without_pidfile_is_found_by_its_marker(make_cluster):
    cluster = make_cluster(1)
    n1 = cluster.node("n1")
    r = cluster.remote("n1")
    pidfile = f"{n1.workdir}/x/server.pid"
    assert start_daemon(
        r, ["sleep", "600"], pidfile=pidfile, logfile=f"{n1.workdir}/x/log", cwd=n1.workdir
    )
    pid = int(Path(pidfile).read_text())
    assert f"{MARKER}={pidfile}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    Path(pidfile).unlink()  # the controller died before (or after) its bookkeeping
    assert [p["pid"] for p in find_leftovers(r, n1.workdir)] == [pid]
    got = clear_leftovers(r, n1.workdir, remove=[f"{n1.workdir}/x"])
    assert [p["pid"] for p in got["processes"]] == [pid]
    assert got["removed"] == [f"{n1.workdir}/x"]
    assert not _alive(pid)
    assert not Path(f"{n1.workdir}/x").exists()
    assert find_leftovers(r, n1.workdir) == []


def test_a_reused_pid_in_a_pidfile_is_left_alone(make_cluster):
    cluster = make_cluster(1)
    n1 = cluster.node("n1")
    r = cluster.remote("n1")
    # an unrelated process (no marker, nothing of ours on its command line) that happens to
    # have the pid an old pidfile names
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        pidfile = Path(n1.workdir) / "old.pid"
        pidfile.write_text(f"{stranger.pid}\n")
        got = clear_leftovers(r, n1.workdir, pidfiles=[str(pidfile)])
        assert got["processes"] == []
        time.sleep(0.2)
        assert stranger.poll() is None
        assert not pidfile.exists()  # the stale pidfile itself is gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stranger.pid, signal.SIGKILL)
        stranger.wait(timeout=10)
