"""Catalog, composite dispatch, schedule and the honesty of fault completions.

The process nemesis is exercised here against a recording Target (its decisions: which node,
what is recorded, what happens when the leader is unknown); the real signals are exercised on
a namespace cluster in test_nemesis_cluster.py.
"""

from __future__ import annotations

import random

import pytest

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.history import Op
from dsjepsen.nemesis.catalog import build_nemesis, check_names, descriptions, fault_catalog
from dsjepsen.nemesis.schedule import FaultSchedule
from dsjepsen.targets.base import Client, Target

NEMESES = descriptions()


def family(fault: str) -> str:
    return fault_catalog()[fault].family


class RecordingTarget(Target):
    """Records calls; `leader_is` drives leader discovery; `broken` makes kill raise."""

    name = "rec"

    def __init__(self, leader_is=None, broken=False):
        self.calls: list[tuple[str, str]] = []
        self.leader_is = leader_is
        self.broken = broken

    def setup(self, cluster):
        self.calls.append(("setup", "*"))

    def teardown(self, cluster):
        self.calls.append(("teardown", "*"))

    def start(self, cluster, node):
        self.calls.append(("start", node))

    def kill(self, cluster, node):
        if self.broken:
            raise HarnessError(f"node {node}: connection lost")
        self.calls.append(("kill", node))

    def pause(self, cluster, node):
        self.calls.append(("pause", node))

    def resume(self, cluster, node):
        self.calls.append(("resume", node))

    def wipe(self, cluster, node):
        self.calls.append(("wipe", node))

    def log_files(self, cluster, node):
        return []

    def client(self, cluster, node) -> Client:
        raise NotImplementedError

    def leader(self, cluster):
        if isinstance(self.leader_is, Exception):
            raise self.leader_is
        return self.leader_is

    def pid(self, cluster, node):
        return 1000 + int(node[1:])


def cluster(n=5) -> Cluster:
    nodes = [Node(f"n{i}", f"10.9.9.{i}", f"/tmp/n{i}") for i in range(1, n + 1)]
    return Cluster(kind="local", nodes=nodes, remotes={}, name="unit")


def op(f, fault=None) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


def test_catalog_names_and_families_agree():
    catalog = fault_catalog()
    assert set(NEMESES) == set(catalog)
    assert all(d and "\n" not in d for d in NEMESES.values())
    for name, package in catalog.items():
        assert package.faults[name] == NEMESES[name]
        assert package.start_op(name) == (f"start-{package.family}", {"fault": name})
        assert package.stop_op(name) == (f"stop-{package.family}", {"fault": name})


def test_unknown_nemesis_is_a_config_error_listing_the_known():
    with pytest.raises(ConfigError) as e:
        build_nemesis(
            ["partition-majority", "partition-everything"], RecordingTarget(), random.Random(1)
        )
    msg = str(e.value)
    assert "partition-everything" in msg
    for name in NEMESES:
        assert name in msg


def test_none_and_duplicates_are_dropped():
    assert check_names(["none"]) == []
    assert check_names(["kill", "kill", "pause"]) == ["kill", "pause"]


def test_schedule_alternates_and_is_seeded():
    names = ["partition-majority", "kill", "pause-leader", "bridge"]
    a = FaultSchedule(names, 5, random.Random(3))
    b = FaultSchedule(names, 5, random.Random(3))
    seq_a = [a.next_op() for _ in range(40)]
    seq_b = [b.next_op() for _ in range(40)]
    assert seq_a == seq_b
    for start, stop in zip(seq_a[::2], seq_a[1::2], strict=True):
        assert start[0].startswith("start-") and stop[0].startswith("stop-")
        assert start[1]["fault"] == stop[1]["fault"]
        assert start[0] == f"start-{family(start[1]['fault'])}"
    assert {s[1]["fault"] for s in seq_a} == set(names)
    other = FaultSchedule(names, 5, random.Random(4))
    assert [other.next_op() for _ in range(40)] != seq_a


def test_schedule_stop_op_and_empty_schedule():
    s = FaultSchedule(["kill"], 1, random.Random(0))
    assert s.stop_op() is None
    assert s.next_op() == ("start-kill", {"fault": "kill"})
    assert s.stop_op() == ("stop-kill", {"fault": "kill"})
    assert s.next_op() == ("start-kill", {"fault": "kill"})
    empty = FaultSchedule(["none"], 1, random.Random(0))
    assert not empty.enabled and empty.next_op() is None


def test_kill_records_node_signal_pid_and_stop_restarts_it():
    t = RecordingTarget()
    c = cluster()
    nem = build_nemesis(["kill"], t, random.Random(9))
    done = nem.invoke(c, op("start-kill", "kill"))
    assert done.type == "ok"
    (node,) = done.value["nodes"]
    assert done.value["signal"] == "SIGKILL" and done.value["pid"] == 1000 + int(node[1:])
    assert done.value["fault"] == "kill" and node in done.value["description"]
    assert t.calls == [("kill", node)]
    stopped = nem.invoke(c, op("stop-kill", "kill"))
    assert stopped.type == "ok" and stopped.value["nodes"] == [node]
    assert stopped.value["pids"] == {node: 1000 + int(node[1:])}
    assert stopped.value["description"] == f"restarted rec on {node} (pid {1000 + int(node[1:])})"
    assert t.calls[-1] == ("start", node)
    again = nem.invoke(c, op("stop-kill", "kill"))
    assert again.type == "ok" and again.value["nodes"] == []
    assert t.calls[-1] == ("start", node) and len(t.calls) == 2


def test_kill_leader_with_unknown_leader_claims_nothing():
    for leader in (None, HarnessError("no reply"), "n99"):
        t = RecordingTarget(leader_is=leader)
        nem = build_nemesis(["kill-leader"], t, random.Random(1))
        done = nem.invoke(cluster(), op("start-kill", "kill-leader"))
        assert done.type == "fail"
        assert done.value["nodes"] == [] and done.error
        assert t.calls == []


def test_pause_leader_pauses_the_leader_and_heal_conts_everyone():
    t = RecordingTarget(leader_is="n3")
    c = cluster()
    nem = build_nemesis(["pause-leader"], t, random.Random(1))
    done = nem.invoke(c, op("start-pause", "pause-leader"))
    assert done.type == "ok" and done.value["nodes"] == ["n3"]
    assert done.value["leader"] == "n3" and done.value["signal"] == "SIGSTOP"
    nem.heal(c)
    resumed = [n for f, n in t.calls if f == "resume"]
    assert resumed[0] == "n3" and sorted(resumed[1:]) == c.names
    nem.heal(c)  # idempotent


def test_failed_signal_is_info_and_is_undone_on_heal():
    t = RecordingTarget(broken=True)
    c = cluster()
    nem = build_nemesis(["kill"], t, random.Random(2))
    done = nem.invoke(c, op("start-kill", "kill"))
    assert done.type == "info" and "connection lost" in done.error
    (node,) = done.value["nodes"]
    nem.heal(c)
    assert t.calls == [("start", node)]


def test_composite_dispatches_on_fault_name_and_refuses_strangers():
    t = RecordingTarget()
    c = cluster()
    nem = build_nemesis(["kill", "pause"], t, random.Random(5))
    assert set(nem.fs) == {"start-kill", "stop-kill", "start-pause", "stop-pause"}
    assert nem.invoke(c, op("start-pause", "pause")).type == "ok"
    assert t.calls[-1][0] == "pause"
    # an op without a fault name goes to the member that answers its f
    bare = Op(index=0, time=0, process="nemesis", type="invoke", f="start-kill")
    assert nem.invoke(c, bare).type == "ok" and t.calls[-1][0] == "kill"
    refused = nem.invoke(c, op("start-partition", "partition-one"))
    assert refused.type == "fail" and "partition-one" in refused.error


def test_partition_on_too_small_cluster_is_fail_not_ok():
    nem = build_nemesis(["bridge"], RecordingTarget(), random.Random(0))
    done = nem.invoke(cluster(2), op("start-partition", "bridge"))
    assert done.type == "fail" and "at least 3 nodes" in done.error
