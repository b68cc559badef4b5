"""Packet faults: the exact tc / netem / iptables commands, the refusals where the kernel lacks
sch_netem, and loss (iptables statistic) and rate (tbf) measured between two namespaces."""

from __future__ import annotations

import random

import pytest

from dsjepsen.errors import ConfigError
from dsjepsen.history import Op
from dsjepsen.nemesis.base import NodeFacts
from dsjepsen.nemesis.packet import (
    FAULTS,
    NETEM_ONLY,
    PacketFaults,
    common_method,
    controller_has_netem,
    heal_node,
    netem_args,
    probe_nodes,
    statistic_rules,
    tc_commands,
)

DEFAULTS = {o.name: o.default for o in PacketFaults.options}


def _op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


def test_netem_arguments_are_jepsens_defaults() -> None:
    delay = ["delay", "50ms", "10ms", "25%", "distribution", "normal"]
    assert netem_args("packet-delay", DEFAULTS) == delay
    assert netem_args("packet-loss", DEFAULTS) == ["loss", "20%", "75%"]
    assert netem_args("packet-duplicate", DEFAULTS) == ["duplicate", "20%", "75%"]
    assert netem_args("packet-reorder", DEFAULTS) == [*delay, "reorder", "20%", "75%"]
    assert netem_args("packet-corrupt", DEFAULTS) == ["corrupt", "20%", "75%"]
    assert netem_args("packet-rate", DEFAULTS) == ["rate", "1mbit"]
    changed = {**DEFAULTS, "packet-delay": 200.0, "packet-percent": 5.0}
    assert netem_args("packet-delay", changed)[:2] == ["delay", "200ms"]
    assert netem_args("packet-loss", changed) == ["loss", "5%", "75%"]


def test_tc_commands_filter_each_peer_into_the_fault_class() -> None:
    cmds = tc_commands("eth0", ["10.0.0.2", "10.0.0.3"], ["netem", "loss", "20%", "75%"])
    assert cmds == [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1"],
        ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb",
         "rate", "1gbit", "quantum", "60000"],
        ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:2", "htb",
         "rate", "1gbit", "quantum", "60000"],
        ["tc", "qdisc", "add", "dev", "eth0", "parent", "1:2", "handle", "20:",
         "netem", "loss", "20%", "75%"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
         "u32", "match", "ip", "dst", "10.0.0.2/32", "flowid", "1:2"],
        ["tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
         "u32", "match", "ip", "dst", "10.0.0.3/32", "flowid", "1:2"],
    ]  # fmt: skip
    rules = statistic_rules(["10.0.0.2"], 0.2)
    assert "-A DSJ-PACKET -d 10.0.0.2 -m statistic --mode random --probability 0.2000 -j DROP" in (
        rules
    )
    assert "-I OUTPUT 1 -j DSJ-PACKET" in rules


def test_netem_only_faults_are_refused_without_sch_netem() -> None:
    package = PacketFaults()
    assert package.unsupported("packet-loss", object) is None
    assert package.unsupported("packet-rate", object) is None
    for name in NETEM_ONLY:
        why = package.unsupported(name, object)
        if controller_has_netem():
            assert why is None
        else:
            assert why and "sch_netem" in why and "\n" not in why
        # machines over SSH have kernels of their own: they are asked once they are open
        assert package.unsupported(name, object, NodeFacts(own_kernels=True)) is None


def test_bad_packet_options_are_one_line_config_errors() -> None:
    rate = next(o for o in PacketFaults.options if o.name == "packet-rate")
    with pytest.raises(ConfigError, match="--packet-rate: expected e.g. 1mbit"):
        rate.check("fast")
    percent = next(o for o in PacketFaults.options if o.name == "packet-percent")
    with pytest.raises(ConfigError, match="at most 100"):
        percent.check(150.0)


def _clean(cluster) -> None:
    for node in cluster.names:
        remote = cluster.remote(node)
        assert "DSJ-PACKET" not in remote.run(["iptables", "-w", "-S"], timeout=20).stdout
        assert "htb 1:" not in remote.run(["tc", "qdisc", "show"], timeout=20).stdout


@pytest.mark.cluster
def test_each_node_is_asked_what_it_supports_and_refusals_name_it(make_cluster) -> None:
    cluster = make_cluster(node_count=2)
    probes = probe_nodes(cluster)
    assert list(probes) == cluster.names
    netem = controller_has_netem()
    for probe in probes.values():
        shown = {f: probe.support(f).shown() for f in FAULTS}
        if netem:
            assert set(shown.values()) == {"works (tc netem)"}, shown
            continue
        assert shown["packet-loss"] == "works (iptables statistic)"
        assert shown["packet-rate"] == "works (tc tbf)"
        for fault in NETEM_ONLY:
            assert shown[fault].startswith("refused: no sch_netem module (tc: "), shown
    assert common_method("packet-loss", probes) == ("netem" if netem else "statistic")
    assert common_method("packet-rate", probes) == ("netem" if netem else "tbf")
    _clean(cluster)
    for node in cluster.names:  # the throwaway link and chain are gone
        remote = cluster.remote(node)
        assert "dsjpr" not in remote.run(["ip", "-o", "link"], timeout=20).stdout
        assert "DSJ-PROBE" not in remote.run(["iptables", "-w", "-S"], timeout=20).stdout
    # with the cluster open, the package judges on the nodes' answers and names the node
    facts = NodeFacts(own_kernels=False, cluster=cluster)
    package = PacketFaults()
    assert package.unsupported("packet-loss", object, facts) is None
    assert package.unsupported("packet-rate", object, facts) is None
    why = package.unsupported("packet-delay", object, facts)
    if netem:
        assert why is None
    else:
        first = cluster.names[0]
        assert why and "\n" not in why
        assert why.startswith(f"packet-delay cannot run on node {first}: no sch_netem module")


@pytest.mark.cluster
@pytest.mark.slow
def test_loss_and_rate_are_measured_between_namespaces(make_cluster) -> None:
    cluster = make_cluster(node_count=2)
    package = PacketFaults()
    try:
        loss = package.nemesis("packet-loss", None, random.Random(1), {})
        comp = loss.invoke(cluster, _op("start-packet", "packet-loss"))
        value = comp.value
        expected = "netem" if controller_has_netem() else "statistic"
        assert comp.type == "ok" and value["method"] == expected, value
        # 20 % each way: about 36 % of round trips are lost
        assert 0.15 <= value["measured"]["loss"] <= 0.6, value["measured"]
        assert value["took_effect"] and package.took_effect(comp)
        stop = loss.invoke(cluster, _op("stop-packet", "packet-loss"))
        assert stop.type == "ok" and set(stop.value["nodes"]) == set(cluster.names)
        _clean(cluster)

        rate = package.nemesis("packet-rate", None, random.Random(2), {})
        comp = rate.invoke(cluster, _op("start-packet", "packet-rate"))
        measured = comp.value["measured"]
        assert comp.type == "ok" and comp.value["took_effect"], comp.value
        assert 0.3e6 <= measured["rate_bps"] <= 1.6e6, measured  # 1 mbit, not the veth's Gbit
        rate.heal(cluster)
        rate.heal(cluster)  # idempotent
        _clean(cluster)
    finally:
        for node in cluster.names:
            heal_node(cluster.remote(node), "eth0")


@pytest.mark.cluster
def test_netem_faults_run_where_the_kernel_has_netem(make_cluster) -> None:
    if not controller_has_netem():
        pytest.skip("this kernel has no sch_netem (modprobe sch_netem fails): netem faults "
                    "are refused here; loss and rate use iptables statistic and tbf")  # fmt: skip
    cluster = make_cluster(node_count=2)
    package = PacketFaults()
    delay = package.nemesis("packet-delay", None, random.Random(1), {})
    try:
        comp = delay.invoke(cluster, _op("start-packet", "packet-delay"))
        assert comp.type == "ok" and comp.value["method"] == "netem"
        assert comp.value["measured"]["rtt_ms_median"] >= 50, comp.value["measured"]
    finally:
        delay.heal(cluster)
    _clean(cluster)
