"""`dsjepsen doctor` tells the truth: its verdicts match independent probes of this machine,
it leaves no namespace behind, and it exits 0 exactly when the local cluster can run; its
per-node list of packet faults is what the nodes themselves answer (local cluster and SSH)."""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.commands import doctor
from dsjepsen.nemesis.packet import NETEM_ONLY


def _doctor(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", "doctor", *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _netem_works() -> bool:
    """An independent probe: a netem qdisc on a veth inside a throwaway namespace."""
    ns = f"dsj-tdoc-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "link",
                "add",
                "a0",
                "type",
                "veth",
                "peer",
                "name",
                "a1",
            ],
            check=True,
            timeout=30,
        )
        res = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                "a0",
                "root",
                "netem",
                "delay",
                "5ms",
            ],
            capture_output=True,
            timeout=30,
        )
        return res.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], timeout=30)


@pytest.mark.cluster
def test_doctor_matches_this_machine():
    if localnet.unsupported_reason():
        pytest.skip(localnet.unsupported_reason())
    res = _doctor("--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert res.returncode == 0, res.stderr  # root, ip netns, veth, iptables all work here
    for name in ("root / CAP_NET_ADMIN", "ip netns", "veth + bridge", "iptables"):
        assert checks[name]["ok"] and checks[name]["required"]
    assert checks["tc netem"]["ok"] == _netem_works()
    if not checks["tc netem"]["ok"]:
        assert "no sch_netem" in checks["tc netem"]["detail"]
        assert "delay" in checks["tc netem"]["disables"]
    docker = (
        subprocess.run(["docker", "info"], capture_output=True, timeout=60)
        if _has("docker")
        else None
    )
    assert checks["docker engine"]["ok"] == (docker is not None and docker.returncode == 0)
    assert checks["etcd"]["ok"] == _has("etcd")
    postgres = bool(glob.glob("/usr/lib/postgresql/*/bin/postgres")) or _has("postgres")
    assert checks["postgres"]["ok"] == postgres
    if postgres:
        assert "PostgreSQL" in checks["postgres"]["detail"]
    assert not [ns for ns in localnet.list_netns() if ns.startswith("dsj-doctor-")]
    # the disk faults' file system: mounted, power-cut and unmounted for real
    disk = checks["fault file system"]
    assert disk["ok"] == (_has("fusermount3") and os.path.exists("/dev/fuse")), disk
    if disk["ok"]:
        assert "dropped 5 B" in disk["detail"]
    else:
        assert "disk faults" in disk["disables"]
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    assert not [ln for ln in mounts if "/dsj-faultfs-" in ln], "doctor left its mount behind"

    table = _doctor()
    assert table.returncode == 0
    assert "the default local cluster can run here" in table.stdout
    for name, c in checks.items():
        if c["node"] is not None:  # the per-node packet faults are a grid of their own
            continue
        line = next(ln for ln in table.stdout.splitlines() if ln.startswith(name))
        status = re.split(r"\s{2,}", line)[1]
        assert status == ("ok" if c["ok"] else "missing"), line
        if not c["ok"]:
            assert c["disables"] in line


def _has(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


def test_without_net_admin_doctor_fails_and_up_says_why(monkeypatch, capsys):
    monkeypatch.setattr(localnet, "has_net_admin", lambda: False)
    checks = doctor.run_checks()
    root = next(c for c in checks if c.name == "root / CAP_NET_ADMIN")
    assert not root.ok and root.required
    assert not doctor.can_run_local(checks)
    assert "MISSING*" in doctor.render(checks)
    from dsjepsen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"needs root \(CAP_NET_ADMIN\)"):
        localnet.up("tnoroot", node_count=1)


def _packet_entries(res: subprocess.CompletedProcess) -> dict[tuple[str, str], dict]:
    assert res.returncode == 0, res.stderr
    return {(c["node"], c["name"].split(" on ")[0]): c for c in json.loads(res.stdout) if c["node"]}


def _assert_this_kernels_answer(entries: dict[tuple[str, str], dict], nodes: list[str]) -> None:
    """loss and rate work (netem, else iptables statistic and tbf); the netem four work
    exactly when an independent netem probe does, and are refused naming the module if not."""
    netem = _netem_works()
    assert {n for n, _ in entries} == set(nodes)
    for node in nodes:
        loss, rate = entries[node, "packet-loss"], entries[node, "packet-rate"]
        assert loss["ok"] and rate["ok"]
        assert loss["detail"] == ("works (tc netem)" if netem else "works (iptables statistic)")
        assert rate["detail"] == ("works (tc netem)" if netem else "works (tc tbf)")
        for fault in NETEM_ONLY:
            c = entries[node, fault]
            assert c["ok"] == netem, c
            if not netem:
                assert c["detail"].startswith("refused: no sch_netem module (tc: "), c


def _assert_nothing_left(cluster) -> None:
    for node in cluster.names:
        remote = cluster.remote(node)
        assert "dsjpr" not in remote.run(["ip", "-o", "link"], timeout=20).stdout
        assert "DSJ-PROBE" not in remote.run(["iptables", "-w", "-S"], timeout=20).stdout


@pytest.mark.cluster
def test_packet_faults_per_node_of_the_local_cluster_and_over_ssh(shared_cluster, ssh_server):
    name = shared_cluster.name
    entries = _packet_entries(_doctor("--json", "--cluster-name", name))
    _assert_this_kernels_answer(entries, shared_cluster.names)
    _assert_nothing_left(shared_cluster)

    text = _doctor("--cluster-name", name).stdout
    assert f"packet faults on local cluster {name}:" in text
    netem = entries[shared_cluster.names[0], "packet-delay"]["ok"]
    for node in shared_cluster.names:
        row = next(ln.split() for ln in text.splitlines() if ln.startswith(f"{node} "))
        want = ["tc netem"] * 6 if netem else [
            "refused", "iptables statistic", "refused", "refused", "refused", "tc tbf"]  # fmt: skip
        assert " ".join(row[1:]) == " ".join(want), row  # methods have spaces: the whole row
    if not netem:
        refused = next(ln for ln in text.splitlines() if ln.startswith("refused on "))
        assert refused.startswith(f"refused on {', '.join(shared_cluster.names)}: ")
        assert "packet-delay, packet-duplicate, packet-reorder, packet-corrupt: no sch_netem" in (
            refused
        )

    # a node reached over SSH answers for itself, through the same probe
    address = ssh_server.node.address
    ssh = _doctor(
        "--json", "--nodes", address, "--ssh-port", str(ssh_server.port),
        "--ssh-key", str(ssh_server.key), "--ssh-known-hosts", str(ssh_server.known_hosts),
    )  # fmt: skip
    _assert_this_kernels_answer(_packet_entries(ssh), [address])
    _assert_nothing_left(shared_cluster)


def test_unreachable_nodes_are_one_line_and_the_machine_checks_stand():
    args = doctor_args("--nodes", "127.0.0.1", "--ssh-port", "1", "--ssh-timeout", "2")
    listed = doctor.packet_faults(args, None)
    assert listed.error and "\n" not in listed.error and not listed.probes
    assert listed.checks()[0].ok is False
    assert "not listed: " in listed.render()


def doctor_args(*argv: str):
    from dsjepsen.cli import build_parser

    return build_parser().parse_args(["doctor", *argv])
