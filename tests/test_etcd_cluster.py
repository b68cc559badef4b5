"""Real etcd 3.4 on a 3-node namespace cluster: client semantics, leader discovery, what a
partitioned minority node answers, and process faults (kill / pause) doing what they say."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable

import pytest

from dsjepsen.cluster import daemon
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.history import Op
from dsjepsen.nemesis import grudge as g
from dsjepsen.nemesis import netfilter
from dsjepsen.nemesis.catalog import build_nemesis
from dsjepsen.targets.etcd import EtcdTarget

pytestmark = pytest.mark.cluster

if shutil.which("etcd") is None:
    pytest.skip("etcd is not installed (apt-get install etcd-server)", allow_module_level=True)


@pytest.fixture
def etcd(pooled_cluster):
    cluster = pooled_cluster(node_count=3)
    target = EtcdTarget()
    try:
        target.setup(cluster)
        yield cluster, target
    finally:
        netfilter.heal_cluster(cluster)
        for n in cluster.names:
            target.resume(cluster, n)
        target.teardown(cluster)


def op(f: str, key: int, value=None, process: int = 0) -> Op:
    return Op(index=0, time=0, process=process, type="invoke", f=f, value=value, key=key)


def nem_op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


def eventually(what: str, fn: Callable[[], object], timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout:g}s (last: {last!r})")


def proc_state(cluster: Cluster, node: str, pid: int) -> str | None:
    """The State letter of /proc/<pid>/status on the node, None when the process is gone."""
    res = cluster.remote(node).run(["cat", f"/proc/{pid}/status"], timeout=10, check=False)
    for line in res.stdout.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return None


def test_client_semantics_and_leader(etcd):
    cluster, target = etcd
    assert target.version.startswith("3.")
    clients = {n: target.client(cluster, n) for n in cluster.names}
    c1 = clients["n1"]
    r = c1.invoke(op("read", 1))
    assert (r.type, r.value) == ("ok", None)
    absent_cas = c1.invoke(op("cas", 1, [0, 1]))
    assert absent_cas.type == "fail" and "absent" in absent_cas.error
    assert c1.invoke(op("write", 1, 5)).type == "ok"
    for n, c in clients.items():  # linearizable reads: every node sees the write at once
        r = c.invoke(op("read", 1))
        assert (r.type, r.value) == ("ok", 5), n
    wrong = clients["n2"].invoke(op("cas", 1, [4, 6]))
    assert wrong.type == "fail" and "5" in wrong.error
    assert clients["n3"].invoke(op("cas", 1, [5, 6])).type == "ok"
    assert c1.invoke(op("read", 1)).value == 6
    assert c1.invoke(op("read", 2)).value is None  # keys are independent
    leader = target.leader(cluster)
    assert leader in cluster.names
    assert target.pid(cluster, leader) is not None
    assert target.log_files(cluster, "n1") == [f"{cluster.node('n1').workdir}/etcd.log"]
    for c in clients.values():
        c.close()


def test_minority_node_linearizable_read_fails_serializable_read_is_stale(etcd):
    cluster, target = etcd
    leader = eventually("a leader", lambda: target.leader(cluster))
    lonely = next(n for n in cluster.names if n != leader)
    lin = target.client(cluster, lonely)
    ser = EtcdTarget(serializable_reads=True).client(cluster, lonely)
    via_leader = target.client(cluster, leader)
    assert via_leader.invoke(op("write", 7, 1)).type == "ok"
    eventually("the write on the follower", lambda: ser.invoke(op("read", 7)).value == 1)

    netfilter.apply_grudge(cluster, g.isolate(cluster.names, lonely))
    # the majority side goes on: the leader was not cut off from the other follower
    eventually("a write on the majority", lambda: via_leader.invoke(op("write", 7, 2)).type == "ok")
    r = lin.invoke(op("read", 7))
    assert r.type == "fail", r  # a read that cannot reach a quorum must not return data
    stale = ser.invoke(op("read", 7))
    assert (stale.type, stale.value) == ("ok", 1)  # the known stale read of serializable reads
    w = lin.invoke(op("write", 8, 9))
    assert w.type == "info", w  # no quorum: unknown outcome, never ok

    netfilter.heal_cluster(cluster)
    eventually("the minority catching up", lambda: ser.invoke(op("read", 7)).value == 2)
    eventually("a linearizable read after healing", lambda: lin.invoke(op("read", 7)).value == 2)


def test_partition_leader_isolates_the_etcd_leader(etcd):
    cluster, target = etcd
    old = eventually("a leader", lambda: target.leader(cluster))
    nem = build_nemesis(["partition-leader"], target, random.Random(1))
    try:
        done = nem.invoke(cluster, nem_op("start-partition", "partition-leader"))
        assert done.type == "ok" and done.value["leader"] == old
        assert done.value["isolated"] == old and "fallback" not in done.value
        assert set(done.value["grudge"][old]) == set(cluster.names) - {old}
        new = eventually(
            "a new leader on the majority side",
            lambda: (lambda ldr: ldr if ldr not in (None, old) else None)(target.leader(cluster)),
        )
        assert new != old
        stop = nem.invoke(cluster, nem_op("stop-partition", "partition-leader"))
        assert stop.type == "ok"
    finally:
        nem.heal(cluster)


def test_kill_removes_the_process_and_stop_restarts_it(etcd):
    cluster, target = etcd
    nem = build_nemesis(["kill-leader"], target, random.Random(2))
    try:
        leader = eventually("a leader", lambda: target.leader(cluster))
        pid = target.pid(cluster, leader)
        done = nem.invoke(cluster, nem_op("start-kill", "kill-leader"))
        assert done.type == "ok", done
        assert done.value["nodes"] == [leader] and done.value["pid"] == pid
        assert done.value["signal"] == "SIGKILL"
        assert proc_state(cluster, leader, pid) in (None, "Z")
        assert not daemon.daemon_running(
            cluster.remote(leader), target.pid_file(cluster.node(leader))
        )
        c = target.client(cluster, leader)
        assert c.invoke(op("read", 1)).type == "fail"  # connection refused: definite
        stop = nem.invoke(cluster, nem_op("stop-kill", "kill-leader"))
        assert stop.type == "ok" and stop.value["nodes"] == [leader]
        new_pid = target.pid(cluster, leader)
        assert new_pid and new_pid != pid and stop.value["pids"] == {leader: new_pid}
        assert proc_state(cluster, leader, new_pid) not in (None, "Z", "T")
        eventually("reads on the restarted node", lambda: c.invoke(op("read", 1)).type == "ok")
    finally:
        nem.heal(cluster)


def test_pause_stops_the_process_and_stop_resumes_it(etcd):
    cluster, target = etcd
    nem = build_nemesis(["pause"], target, random.Random(3))
    try:
        done = nem.invoke(cluster, nem_op("start-pause", "pause"))
        assert done.type == "ok", done
        (node,) = done.value["nodes"]
        pid = done.value["pid"]
        assert done.value["signal"] == "SIGSTOP" and pid == target.pid(cluster, node)
        assert proc_state(cluster, node, pid) == "T"
        c = target.client(cluster, node)
        w = c.invoke(op("write", 3, 1))
        assert w.type == "info" and w.error == "timeout"  # sent, never answered
        stop = nem.invoke(cluster, nem_op("stop-pause", "pause"))
        assert stop.type == "ok" and stop.value["nodes"] == [node]
        assert stop.value["signal"] == "SIGCONT"
        assert proc_state(cluster, node, pid) in ("S", "R")
        c2 = target.client(cluster, node)
        eventually("reads after resuming", lambda: c2.invoke(op("read", 3)).type == "ok")
        # heal after a crash: a fresh nemesis CONTs every node, and it is idempotent
        assert target.pause(cluster, node) is None
        assert proc_state(cluster, node, pid) == "T"
        fresh = build_nemesis(["pause"], target, random.Random(4))
        fresh.heal(cluster)
        fresh.heal(cluster)
        assert proc_state(cluster, node, pid) in ("S", "R")
    finally:
        nem.heal(cluster)


def test_kill_leader_records_failure_when_no_leader(etcd):
    cluster, target = etcd
    # pause every node: nobody can answer a status request, so the leader is unknown
    for n in cluster.names:
        target.pause(cluster, n)
    try:
        nem = build_nemesis(["kill-leader"], target, random.Random(5))
        done = nem.invoke(cluster, nem_op("start-kill", "kill-leader"))
        assert done.type == "fail" and done.value["nodes"] == []
        assert "no leader" in done.error
        for n in cluster.names:
            pid = target.pid(cluster, n)
            assert proc_state(cluster, n, pid) == "T"  # nothing was killed
    finally:
        for n in cluster.names:
            target.resume(cluster, n)
