"""The disk fault package on real clusters: each fault probed on the node through the fault
file system under raft-kv's data directory, power failures that lose exactly what raft-kv's
`no-fsync` never fsynced, and `cluster heal` after a controller killed during a disk fault."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dsjepsen.checkers.vacuous import check_vacuous
from dsjepsen.cluster import faultmount, localnet
from dsjepsen.faults import windows
from dsjepsen.history import History, Op
from dsjepsen.nemesis.disk import TRAP_WAIT_S, DiskControl, DiskFaults
from dsjepsen.targets.raft_kv.target import RaftKvTarget

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        faultmount.available() is not None, reason=f"no fault file system: {faultmount.available()}"
    ),
]


def _op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


@pytest.fixture
def raftkv_on_disk(pooled_cluster) -> Iterator[tuple]:
    """raft-kv on a 3-node cluster with its data on the fault file system (as the package
    arranges for a run that asks for a disk fault); torn down and unmounted after."""
    cluster = pooled_cluster(node_count=3)
    target = RaftKvTarget(election_timeout_ms=300)
    package = DiskFaults()
    assert package.unsupported("disk-stall", target) is None
    nemeses = {
        name: package.nemesis(name, target, random.Random(3), {"disk-stall-ms": 250})
        for name in ("disk-stall", "disk-error", "disk-full", "power-failure-majority")
    }
    assert isinstance(target.disk_control, DiskControl)
    try:
        target.setup(cluster)
        yield cluster, target, package, nemeses
    finally:
        for nem in nemeses.values():
            with contextlib.suppress(Exception):
                nem.heal(cluster)
        target.teardown(cluster)
        for node in cluster.nodes:
            assert not faultmount.mounts_under(node.workdir), "teardown left a mount"


def test_each_fault_is_probed_on_the_node_and_healed(raftkv_on_disk):
    cluster, target, package, nemeses = raftkv_on_disk
    for node in cluster.names:
        (mount,) = target.disk_control.of(node)
        assert faultmount.is_mounted(mount.mount)
        assert mount.mount == target.data_dir(cluster.node(node))
    expected = {"disk-stall": None, "disk-error": "EIO", "disk-full": "ENOSPC"}
    for name, err in expected.items():
        nem = nemeses[name]
        started = nem.invoke(cluster, _op("start-disk", name))
        assert started.type == "ok", started.value
        assert package.took_effect(started), started.value
        (node,) = started.value["nodes"]
        probe = started.value["probe"][node]
        if err is None:
            assert probe["fsync_ms"] >= 250 * 0.9, probe
            assert started.value["stall_ms"] == 250
        else:
            assert probe["errno"] == err, probe
        if err is None:  # writes the stalled node must persist before it can commit them
            client = target.client(cluster, target.leader(cluster) or cluster.names[0])
            try:
                for i in range(10):
                    client.invoke(Op(0, 0, 0, "invoke", "write", i, key=1))
            finally:
                client.close()
        else:  # a write every node must persist: the fail-stop store exits on the error
            other = next(n for n in cluster.names if n != node)
            client = target.client(cluster, other)
            deadline = time.monotonic() + 20
            try:  # writes (through another node) until one reaches the failed disk
                while faultmount.alive(target.pid(cluster, node) or 0):
                    assert time.monotonic() < deadline, f"{node} still runs on a failed disk"
                    client.invoke(Op(0, 0, 0, "invoke", "write", 1, key=2))
                    time.sleep(0.1)
            finally:
                client.close()
        stopped = nem.invoke(cluster, _op("stop-disk", name))
        assert stopped.type == "ok", stopped.value
        if err is not None:  # the disk is whole again, and the node back
            assert stopped.value["restarted"] == [node], stopped.value
            assert faultmount.alive(target.pid(cluster, node) or 0)
        if err is None:
            lag = stopped.value["commit_lag"]
            assert set(lag) == set(cluster.names) and min(lag.values()) == 0, lag
        after = stopped.value["probe"][node]
        assert "errno" not in after and after["fsync_ms"] < 200, after


def test_power_failure_kills_drops_and_restarts(raftkv_on_disk):
    cluster, target, package, nemeses = raftkv_on_disk
    nem = nemeses["power-failure-majority"]
    started = nem.invoke(cluster, _op("start-disk", "power-failure-majority"))
    assert started.type == "ok" and package.took_effect(started), started.value
    victims = started.value["nodes"]
    assert len(victims) == 2
    for node in victims:
        assert target.pid(cluster, node) is None, f"{node} still runs after its power failed"
        # the correct store fsyncs before it acknowledges: nothing of its log was unsynced
        assert started.value["dropped"][node]["bytes"] == 0
    stopped = nem.invoke(cluster, _op("stop-disk", "power-failure-majority"))
    assert stopped.type == "ok" and stopped.value["nodes"] == victims
    target.wait_ready(cluster)


def test_torn_write_cuts_the_power_in_the_middle_of_a_log_write(raftkv_on_disk):
    """The trap holds raft-kv's next log write, the node dies in it, the write is torn; the
    correct store then recovers (a torn tail is never-fsynced, so never acknowledged) and
    every acknowledged write is still there."""
    import threading

    cluster, target, package, _ = raftkv_on_disk
    nem = package.nemesis("torn-write", target, random.Random(5), {"torn-file": "log.*"})
    acked: list[int] = []
    stop = threading.Event()

    def writer() -> None:  # load, so that a log write comes while the trap is set
        client = target.client(cluster, target.leader(cluster) or cluster.names[0])
        try:
            i = 0
            while not stop.is_set():
                i += 1
                done = client.invoke(Op(0, 0, 0, "invoke", "write", i, key=7))
                if done.type == "ok":
                    acked.append(i)
        finally:
            client.close()

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        started = nem.invoke(cluster, _op("start-disk", "torn-write"))
    finally:
        stop.set()
        t.join(10)
    assert started.type == "ok" and package.took_effect(started), started.value
    (node,) = started.value["nodes"]
    torn = started.value["dropped"][node]["torn"]
    assert torn["held"] is True and torn["file"] == "log.jsonl", torn
    assert 0 < len(torn["persisted"]) < len(torn["parts"]) and torn["sector"] == 512
    for start, length in torn["parts"]:  # each part within one 512-byte sector of the file
        assert start // 512 == (start + length - 1) // 512, torn["parts"]
    assert "tore the write in flight to log.jsonl" in started.value["description"]
    assert target.pid(cluster, node) is None, f"{node} still runs after its power failed"
    stopped = nem.invoke(cluster, _op("stop-disk", "torn-write"))
    assert stopped.type == "ok" and stopped.value["nodes"] == [node]
    assert stopped.value["after"] == {node: {"running": True, "serving": True}}, stopped.value
    target.wait_ready(cluster)
    assert acked, "no write was acknowledged"
    client = target.client(cluster, node)
    try:  # through the torn node: the newest acknowledged write (or one after it) is read
        deadline = time.monotonic() + 20
        while True:
            got = client.invoke(Op(0, 0, 0, "invoke", "read", None, key=7))
            if got.type == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        client.close()
    assert got.type == "ok" and got.value >= acked[-1], (got, acked[-3:])


def test_torn_write_with_no_write_to_its_file_within_the_wait_says_so(raftkv_on_disk):
    """No write to the chosen file comes within the trap's wait (5 s): the power is still cut,
    and the record, its sentence (what the report shows of the fault) and the vacuous check
    all say that nothing was torn and why, instead of a silent nothing."""
    cluster, target, package, _ = raftkv_on_disk
    glob = "no-such-file*"
    nem = package.nemesis("torn-write", target, random.Random(5), {"torn-file": glob})
    t0 = time.monotonic()
    started = nem.invoke(cluster, _op("start-disk", "torn-write"))
    waited = time.monotonic() - t0
    assert started.type == "ok", started.value
    assert waited >= TRAP_WAIT_S, waited
    (node,) = started.value["nodes"]
    d = started.value["dropped"][node]
    assert d["torn"] is None and d["write_held"] is False, d
    assert d["no_write_within_s"] == TRAP_WAIT_S
    assert d["torn_skipped"] == f"no file matching {glob!r} had an un-fsynced write", d
    said = f"no write to {glob} came within {TRAP_WAIT_S:g} s; nothing torn: {d['torn_skipped']}"
    assert said in started.value["description"], started.value["description"]
    assert started.value["verified"] is False and not package.took_effect(started)
    assert target.pid(cluster, node) is None, "the power was cut all the same"
    invoked = _op("start-disk", "torn-write")
    history = History([invoked, replace(started, index=1, time=int(waited * 1e9))])
    (window,), _ = windows(history.ops)
    assert said in window.description
    verdict = check_vacuous(
        history,
        required_ok={},
        faults=["torn-write"],
        took_effect=lambda _f, op: package.took_effect(op),
    )
    assert verdict.valid == "unknown"
    assert "fault torn-write was requested but never took effect" in verdict.reason
    stopped = nem.invoke(cluster, _op("stop-disk", "torn-write"))
    assert stopped.type == "ok" and stopped.value["after"][node]["running"], stopped.value
    target.wait_ready(cluster)


# -- end to end --------------------------------------------------------------------------------


def _dsj(*argv: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def named_cluster() -> Iterator[str]:
    """A cluster made by `dsjepsen cluster up`, taken down by the CLI at the end."""
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name("dk")
    up = _dsj("cluster", "up", "--cluster-name", name, "--node-count", "3")
    try:
        assert up.returncode == 0, up.stderr
        yield name
    finally:
        _dsj("cluster", "heal", "--cluster-name", name)
        _dsj("cluster", "down", "--cluster-name", name)
        left = localnet.remains(name)
        if left:
            localnet.down(name)
        assert not left, f"cluster {name} left behind {left}"


@pytest.mark.slow
@pytest.mark.parametrize("bug", [True, False], ids=["no-fsync", "correct"])
def test_power_failure_all_finds_no_fsync_and_passes_the_correct_store(
    named_cluster: str, tmp_path: Path, bug: bool
) -> None:
    run = _dsj(
        "test", "--target", "raft-kv", *(["--bug", "no-fsync"] if bug else []),
        "--nemesis", "power-failure-all", "--nemesis-interval", "4", "--time-limit", "20",
        "--seed", "1", "--cluster-name", named_cluster, "--store", str(tmp_path),
    )  # fmt: skip
    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert results["valid"] is (not bug), (results.get("reason"), run.stderr[-1500:])
    assert run.returncode == (1 if bug else 0)
    history = [json.loads(line) for line in (tmp_path / "latest" / "history.jsonl").open()]
    starts = [o for o in history if o.get("f") == "start-disk" and o.get("type") == "ok"]
    assert starts
    per_node = [d["bytes"] for o in starts for d in o["value"]["dropped"].values()]
    if bug:  # the log is written and acknowledged, never fsynced: the power failures drop it
        assert sum(per_node) > 0, per_node
    else:
        # the correct store fsyncs before it acknowledges: a power failure drops at most the
        # record being written at that instant (once 55 B, one entry), never a backlog
        assert max(per_node) <= 2048, per_node


@pytest.mark.slow
def test_cluster_heal_after_the_controller_dies_during_a_disk_fault(
    named_cluster: str, tmp_path: Path
) -> None:
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv",
        "--nemesis", "disk-stall", "--nemesis-interval", "1", "--time-limit", "60",
        "--cluster-name", named_cluster, "--store", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = tmp_path / "latest" / "history.jsonl"
    deadline = time.monotonic() + 120
    try:
        while True:
            text = history.read_text() if history.exists() else ""
            if '"start-disk"' in text and '"ok"' in text.split('"start-disk"', 1)[1]:
                break
            assert proc.poll() is None, "the run ended before a disk fault"
            assert time.monotonic() < deadline, "no disk fault came"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    root = str(localnet.state_root() / named_cluster)
    mounts = faultmount.mounts_under(root)
    assert len(mounts) == 3, mounts  # the dead controller left every node's mount behind
    pids = [faultmount.FaultMount.beside(m).pid() for m in mounts]
    healed = _dsj("cluster", "heal", "--cluster-name", named_cluster)
    assert healed.returncode == 0, healed.stderr
    assert faultmount.mounts_under(root) == []
    for pid in pids:
        assert pid is not None and not faultmount.alive(pid), pid
    for m in mounts:  # the data is in the backing directory, whole and readable
        backing = faultmount.FaultMount.beside(m).backing
        assert (Path(backing) / "meta.json").exists()
        assert os.listdir(m) == []  # the mount point is a plain directory again


@pytest.mark.parametrize("fault", ["error", "full"])
def test_raft_kv_storage_stops_when_its_disk_fails(tmp_path: Path, fault: str) -> None:
    """EIO or ENOSPC from write or fsync: the node exits (fail-stop) instead of acknowledging
    an entry its disk refused, or retrying an fsync whose pages may be gone."""
    mount = faultmount.FaultMount.beside(str(tmp_path / "data"))
    mount.start()
    script = (
        "import sys\n"
        "from dsjepsen.targets.raft_kv.storage import Entry, Storage\n"
        f"s = Storage({mount.mount!r})\n"
        "s.append([Entry(1, {'op': 'put'})])\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "s.sync()\n"
        "print('acknowledged', flush=True)\n"
    )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        mount.command(fault)
        out, err = proc.communicate("\n", timeout=60)
        assert proc.returncode == 70, (out, err)
        assert "acknowledged" not in out
        assert "storage failed in sync" in err
    finally:
        mount.stop()
