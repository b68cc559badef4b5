"""Partitions on a real namespace cluster: the grudge is what the network really does.

Every node runs a tiny TCP listener; from every node we try to connect to every other one.
A pair must connect exactly when neither side's grudge names the other, and after healing
every pair connects again and no node has a DSJ-PARTITION chain left.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from dsjepsen.cluster import daemon
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.history import Op
from dsjepsen.nemesis import netfilter
from dsjepsen.nemesis.catalog import build_nemesis, took_effect
from dsjepsen.targets.base import Target

pytestmark = pytest.mark.cluster

PORT = 7107

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
"""

# Connects to every address at once; a dropped SYN shows up as a timeout.
PROBE = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
port, addrs = int(sys.argv[1]), sys.argv[2:]
def one(a):
    try:
        socket.create_connection((a, port), timeout=3.0).close()
        return True
    except OSError:
        return False
with ThreadPoolExecutor(len(addrs)) as p:
    print(json.dumps(dict(zip(addrs, p.map(one, addrs)))))
"""


class NoLeaderTarget(Target):
    """Partitions never touch the target except to ask for the leader; this one has none."""

    name = "none"

    def setup(self, cluster): ...
    def teardown(self, cluster): ...
    def start(self, cluster, node): ...
    def kill(self, cluster, node): ...
    def pause(self, cluster, node): ...
    def resume(self, cluster, node): ...
    def wipe(self, cluster, node): ...
    def log_files(self, cluster, node):
        return []

    def client(self, cluster, node):
        raise NotImplementedError


@pytest.fixture
def listening(pooled_cluster):
    """A 5-node cluster with a TCP listener on every node."""
    cluster = pooled_cluster(node_count=5)
    for n in cluster.nodes:
        daemon.start_daemon(
            cluster.remote(n.name),
            ["python3", "-c", SERVER, n.address, str(PORT)],
            pidfile=f"{n.workdir}/listener.pid",
            logfile=f"{n.workdir}/listener.log",
            cwd=n.workdir,
        )
    for n in cluster.nodes:
        daemon.wait_for_port(n.address, PORT, timeout=30)
    try:
        yield cluster
    finally:
        netfilter.heal_cluster(cluster)
        for n in cluster.nodes:
            daemon.stop_daemon(cluster.remote(n.name), f"{n.workdir}/listener.pid")


def reachability(cluster: Cluster) -> dict[str, set[str]]:
    """For each node, the other nodes it can open a TCP connection to."""
    addr = {n.name: n.address for n in cluster.nodes}
    by_addr = {a: n for n, a in addr.items()}

    def probe(src: str) -> set[str]:
        others = [addr[d] for d in cluster.names if d != src]
        res = cluster.remote(src).run(["python3", "-c", PROBE, str(PORT), *others], timeout=30)
        return {by_addr[a] for a, ok in json.loads(res.stdout).items() if ok}

    with ThreadPoolExecutor(len(cluster.names)) as pool:
        return dict(zip(cluster.names, pool.map(probe, cluster.names), strict=True))


def expected(grudge: dict[str, list[str]], nodes: list[str]) -> dict[str, set[str]]:
    return {
        a: {b for b in nodes if b != a and b not in grudge[a] and a not in grudge[b]} for a in nodes
    }


def nem_op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


def no_chain_anywhere(cluster: Cluster) -> bool:
    return not any(netfilter.chain_present(cluster.remote(n)) for n in cluster.names)


@pytest.mark.parametrize(
    "fault", ["partition-majority", "partition-majorities-ring", "partition-one", "bridge"]
)
def test_partition_cuts_exactly_the_grudge_and_heals(listening, fault):
    cluster = listening
    everyone = {a: set(cluster.names) - {a} for a in cluster.names}
    assert reachability(cluster) == everyone
    nem = build_nemesis([fault], NoLeaderTarget(), random.Random(11))
    try:
        done = nem.invoke(cluster, nem_op("start-partition", fault))
        assert done.type == "ok", done
        grudge = done.value["grudge"]
        assert sorted(grudge) == cluster.names
        seen = reachability(cluster)
        assert seen == expected(grudge, cluster.names), done.value["description"]
        assert seen != everyone  # the fault did something
        assert done.value["nodes"] == [n for n in cluster.names if grudge[n]]
        assert took_effect(fault, done)  # what the vacuous-run check will count
        stopped = nem.invoke(cluster, nem_op("stop-partition", fault))
        assert stopped.type == "ok"
        assert not took_effect(fault, stopped)
        assert stopped.value["nodes"] == done.value["nodes"]
        assert reachability(cluster) == everyone
        assert no_chain_anywhere(cluster)
    finally:
        nem.heal(cluster)


def test_partition_leader_without_leader_falls_back_and_says_so(listening):
    cluster = listening
    nem = build_nemesis(["partition-leader"], NoLeaderTarget(), random.Random(3))
    try:
        done = nem.invoke(cluster, nem_op("start-partition", "partition-leader"))
        assert done.type == "ok"
        iso = done.value["isolated"]
        assert done.value["leader"] is None and "no leader" in done.value["fallback"]
        assert "instead" in done.value["description"]
        assert reachability(cluster)[iso] == set()
    finally:
        nem.heal(cluster)


def test_heal_is_crash_safe_idempotent_and_leaves_foreign_rules(listening):
    cluster = listening
    n1 = cluster.remote("n1")
    foreign = ["-s", "192.0.2.77", "-j", "DROP"]
    n1.run(["iptables", "-w", "-A", "INPUT", *foreign], timeout=20)
    first = build_nemesis(["partition-majority"], NoLeaderTarget(), random.Random(5))
    assert first.invoke(cluster, nem_op("start-partition", "partition-majority")).type == "ok"
    # a second start replaces the rules instead of stacking them
    assert first.invoke(cluster, nem_op("start-partition", "partition-majority")).type == "ok"
    jumps = [
        line
        for n in cluster.names
        for line in cluster.remote(n)
        .run(["iptables", "-w", "-S", "INPUT"], timeout=20)
        .stdout.splitlines()
        if netfilter.CHAIN in line
    ]
    assert len(jumps) <= len(cluster.names)
    # a brand-new nemesis (as after a harness crash) knows nothing, and still heals it all
    fresh = build_nemesis(["partition-one", "bridge"], NoLeaderTarget(), random.Random(6))
    fresh.heal(cluster)
    assert no_chain_anywhere(cluster)
    fresh.heal(cluster)
    stop = fresh.invoke(cluster, nem_op("stop-partition", "bridge"))
    assert stop.type == "ok" and stop.value["nodes"] == []
    rules = n1.run(["iptables", "-w", "-S", "INPUT"], timeout=20).stdout
    assert "192.0.2.77" in rules
    n1.run(["iptables", "-w", "-D", "INPUT", *foreign], timeout=20)
    assert reachability(cluster) == {a: set(cluster.names) - {a} for a in cluster.names}
