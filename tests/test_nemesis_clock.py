"""Clock faults: offsets drawn as Jepsen draws them, libfaketime on namespace nodes (measured
inside the raft-kv process), refusal of Go targets, the SSH path against a real sshd whose
clock commands are test doubles, and the combined schedule.

The machine's own clock must never move: every test that touches clocks checks it against a
second source (the monotonic clock and /proc/uptime) before and after.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsjepsen.cluster.daemon import start_daemon, stop_daemon, wait_for_port
from dsjepsen.cluster.faketime import LIBFAKETIME, bypasses_libc
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.history import Op
from dsjepsen.nemesis.base import NodeFacts
from dsjepsen.nemesis.clock import (
    ClockFaults,
    SystemClock,
    draw_offset,
    measure,
    random_subset,
)
from dsjepsen.nemesis.schedule import FaultSchedule, check_fits

ETCD = shutil.which("etcd")


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _machine_clock() -> tuple[float, float]:
    """(wall - monotonic, wall - uptime): both stay put unless someone sets the clock."""
    return time.time() - time.monotonic(), time.time() - _uptime()


def _assert_clock_unchanged(before: tuple[float, float]) -> None:
    after = _machine_clock()
    assert abs(after[0] - before[0]) < 0.5, f"this machine's clock moved: {before} -> {after}"
    assert abs(after[1] - before[1]) < 1.5, f"this machine's clock moved: {before} -> {after}"


def _op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


def test_offsets_are_drawn_as_jepsen_does() -> None:
    rng = random.Random(7)
    draws = [draw_offset(rng) for _ in range(2000)]
    assert all(0.009 <= abs(d) <= 288.0 for d in draws)
    assert min(abs(d) for d in draws) < 0.05 and max(abs(d) for d in draws) > 100
    assert 800 < sum(d > 0 for d in draws) < 1200  # either sign, about evenly
    nodes = ["n1", "n2", "n3"]
    subsets = [random_subset(nodes, rng) for _ in range(200)]
    assert all(s and s == [n for n in nodes if n in s] for s in subsets)
    assert {len(s) for s in subsets} == {1, 2, 3}


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed")
def test_etcd_is_refused_with_one_line_before_the_run() -> None:
    from dsjepsen.targets.etcd import EtcdTarget

    assert "Go binary" in (bypasses_libc(ETCD) or "")
    why = ClockFaults().unsupported("clock-bump", EtcdTarget)
    assert why and "\n" not in why
    assert "libfaketime cannot move etcd's clock" in why and "SSH" in why


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed")
def test_etcd_is_accepted_on_machines_with_their_own_kernels() -> None:
    """Over SSH the clock is set with date on the node: what etcd's binary does is moot."""
    from dsjepsen.targets.etcd import EtcdTarget

    own = NodeFacts(own_kernels=True)
    for name in ClockFaults.faults:
        assert ClockFaults().unsupported(name, EtcdTarget, own) is None
        assert ClockFaults().unsupported(name, EtcdTarget, NodeFacts(own_kernels=False))


def test_raft_kv_and_python_are_reachable_by_libfaketime() -> None:
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    assert bypasses_libc(sys.executable) is None
    assert ClockFaults().unsupported("clock-strobe", RaftKvTarget) is None


def test_cli_refuses_clock_faults_on_etcd(tmp_path: Path) -> None:
    if ETCD is None:
        pytest.skip("etcd is not installed")
    from dsjepsen.cli import main

    assert main(["test", "--store", str(tmp_path), "--target", "etcd", "--nemesis",
                 "clock-bump", "--time-limit", "20"]) == 254  # fmt: skip


def test_combined_schedule_overlaps_packages_and_heals_network_first() -> None:
    names = "partition-leader,partition-one,clock-bump,kill"
    sched = FaultSchedule(names, 5, random.Random(3), mode="combined")
    starts = sched.next_ops()
    assert sorted(f for f, _ in starts) == ["start-clock", "start-kill", "start-partition"]
    stops = sched.next_ops()
    assert [f for f, _ in stops] == ["stop-partition", "stop-clock", "stop-kill"]
    assert [v["fault"] for _, v in stops] == [
        v["fault"] for f, v in sorted(starts, key=lambda o: ["start-partition", "start-clock",
                                                              "start-kill"].index(o[0]))
    ]  # fmt: skip
    # each package draws its own rounds: both partition shapes run within two windows
    second = sched.next_ops()
    parts = {v["fault"] for f, v in starts + second if f == "start-partition"}
    assert parts == {"partition-leader", "partition-one"}
    # a window is open: the runner's final heal ends all of it
    final = sched.stop_ops()
    assert final and final[0][0] == "stop-partition" and sched.stop_ops() == []
    check_fits(names, 10, 20, mode="combined")  # one window is enough
    with pytest.raises(Exception, match="combined faults need 2 x 10s"):
        check_fits(names, 10, 15, mode="combined")


@pytest.mark.cluster
def test_raft_kv_under_libfaketime_reads_the_offset_then_true_time(make_cluster) -> None:
    if not os.path.exists(LIBFAKETIME):
        pytest.skip(f"libfaketime is not installed ({LIBFAKETIME})")
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    before = _machine_clock()
    cluster = make_cluster(node_count=2)
    target = RaftKvTarget()
    bump = ClockFaults().nemesis("clock-bump", target, random.Random(11), {})
    bump.heal(cluster)
    target.setup(cluster)
    try:
        comp = bump.invoke(cluster, _op("start-clock", "clock-bump"))
        assert comp.type == "ok" and comp.value["verified"], comp.value
        offsets = comp.value["clock_offsets"]
        assert any(abs(o) > 0.005 for o in offsets.values())
        for node in cluster.names:  # inside the server process, through its /status
            seen = target.status(cluster, node)["clock"] - time.time()
            assert abs(seen - offsets[node]) < 0.3, (node, seen, offsets)
            assert abs(comp.value["measured_offsets"][node] - offsets[node]) < 0.3
        assert ClockFaults().took_effect(comp)
        bump.heal(cluster)
        for node in cluster.names:
            assert abs(target.status(cluster, node)["clock"] - time.time()) < 0.3
    finally:
        target.teardown(cluster)
    _assert_clock_unchanged(before)


# -- the SSH path, against a real sshd whose date / timedatectl / systemctl are doubles ----------

DOUBLE = """#!/bin/sh
echo "$(basename "$0") $*" >>"{log}"
if [ "$(basename "$0")" = date ]; then
  case "$1" in +*) exec /usr/bin/date "$@" ;; esac
fi
exit 0
"""


@pytest.fixture(scope="module")
def sshd_with_doubles(shared_cluster, tmp_path_factory) -> Iterator[tuple]:
    """sshd on n2 whose sessions get PATH=<doubles>:/usr/bin:/bin (SetEnv): date, timedatectl
    and systemctl there only record their arguments, on that node's sessions only."""
    from dsjepsen.cluster.control.ssh import SshConfig, SshRemote

    if not os.path.exists("/usr/sbin/sshd") or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server (sshd, ssh-keygen) is not installed")
    d = tmp_path_factory.mktemp("sshd-clock")
    bindir = d / "bin"
    bindir.mkdir()
    log = d / "commands.log"
    for name in ("date", "timedatectl", "systemctl"):
        (bindir / name).write_text(DOUBLE.format(log=log))
        (bindir / name).chmod(0o755)
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True, timeout=60)  # fmt: skip
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    node = shared_cluster.node("n2")
    port = 2224
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress {node.address}\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        f"StrictModes no\nSetEnv PATH={bindir}:/usr/bin:/bin\n"
    )
    host_pub = " ".join((d / "host.pub").read_text().split()[:2])
    (d / "known_hosts").write_text(f"[{node.address}]:{port} {host_pub}\n")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    remote = shared_cluster.remote("n2")
    pidfile = str(d / "sshd.pid")
    start_daemon(remote, ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                 pidfile=pidfile, logfile=str(d / "sshd.log"), cwd=str(d))  # fmt: skip
    try:
        wait_for_port(node.address, port, timeout=30)
        config = SshConfig(user="root", port=port, key_file=str(d / "client"),
                           known_hosts=str(d / "known_hosts"), connect_timeout=10.0,
                           allow_agent=False)  # fmt: skip
        ssh = SshRemote(node, config)
        yield ssh, log, bindir
        ssh.close()
    finally:
        stop_daemon(remote, pidfile)


@pytest.mark.cluster
def test_ssh_path_stops_sync_sets_and_restores_the_clock(sshd_with_doubles) -> None:
    ssh, log, bindir = sshd_with_doubles
    before = _machine_clock()
    # the doubles must be what this node's sessions run, or nothing below may run at all
    found = ssh.run(
        ["sh", "-c", "for c in date timedatectl systemctl; do command -v $c; done"], timeout=20
    ).stdout
    assert found.split() == [f"{bindir}/date", f"{bindir}/timedatectl", f"{bindir}/systemctl"]
    log.write_text("")
    # the guard: this node runs on the controller's kernel, so the real path refuses it
    with pytest.raises(HarnessError, match="controller's own kernel"):
        SystemClock(ssh).set(5.0)
    assert "date -u -s" not in log.read_text()

    clock = SystemClock(ssh, allow_shared_kernel=True)
    t0 = time.time()
    clock.set(12.5)
    clock.set(-3.0)
    clock.reset()
    t1 = time.time()
    lines = log.read_text().splitlines()
    assert lines[0] == "timedatectl set-ntp false"
    assert lines[1].startswith("systemctl stop chrony.service chronyd.service ntp.service")
    sets = [float(line.split("@")[1]) for line in lines if line.startswith("date -u -s @")]
    assert len(sets) == 3 and lines.count("timedatectl set-ntp false") == 1
    assert t0 + 12.5 - 0.1 <= sets[0] <= t1 + 12.5 + 0.1
    assert t0 - 3.0 - 0.1 <= sets[1] <= t1 - 3.0 + 0.1
    assert t0 - 0.1 <= sets[2] <= t1 + 0.1
    assert lines[-1] == "timedatectl set-ntp true"
    offset, rtt = measure(ssh, clock.date_argv())
    assert abs(offset) < 0.5 + rtt  # the double's date +%s.%N reads the real (unchanged) clock
    _assert_clock_unchanged(before)


@pytest.mark.cluster
def test_an_ssh_node_on_this_kernel_refuses_etcd_when_the_nemesis_is_built(
    sshd_with_doubles,
) -> None:
    """The options said SSH (own kernels), but this node answers with this machine's boot id:
    building the nemesis, before setup, refuses etcd with the same line, and raft-kv (which
    libfaketime reaches) is built."""
    if ETCD is None:
        pytest.skip("etcd is not installed")
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.nemesis.catalog import build_nemesis, node_facts
    from dsjepsen.targets.etcd import EtcdTarget
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    ssh, log, _bindir = sshd_with_doubles
    cluster = Cluster(kind="ssh", nodes=[ssh.node], remotes={ssh.node.name: ssh})
    facts = node_facts(cluster)
    assert facts.own_kernels is False and facts.cluster is cluster
    log.write_text("")
    with pytest.raises(ConfigError, match="libfaketime cannot move etcd's clock") as e:
        build_nemesis(["clock-bump"], EtcdTarget(), random.Random(1), cluster=cluster)
    assert str(e.value).startswith("--nemesis clock-bump: ") and "\n" not in str(e.value)
    if os.path.exists(LIBFAKETIME):
        built = build_nemesis(["clock-bump"], RaftKvTarget(), random.Random(1), cluster=cluster)
        assert list(built.members) == ["clock-bump"]
    assert log.read_text() == ""  # judging ran no clock command on the node


@pytest.mark.cluster
def test_strobe_flips_and_skew_differs_then_both_undo(make_cluster) -> None:
    if not os.path.exists(LIBFAKETIME):
        pytest.skip(f"libfaketime is not installed ({LIBFAKETIME})")
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    before = _machine_clock()
    cluster = make_cluster(node_count=2)
    target = RaftKvTarget()  # not started: `date` under the same environment is the probe
    package = ClockFaults()
    strobe = package.nemesis("clock-strobe", target, random.Random(5), {})
    skew = package.nemesis("clock-skew", target, random.Random(6), {})
    try:
        comp = strobe.invoke(cluster, _op("start-clock", "clock-strobe"))
        assert comp.type == "ok" and comp.value["verified"], comp.value
        delta = comp.value["strobe"]["delta"]
        for node in comp.value["strobe"]["nodes"]:
            seen = comp.value["strobe_samples"][node]
            assert any(abs(x - delta) < 0.2 for x in seen), seen
            assert any(abs(x) < 0.2 for x in seen), seen
        assert package.took_effect(comp)
        stop = strobe.invoke(cluster, _op("stop-clock", "clock-strobe"))
        assert stop.type == "ok" and all(
            abs(v) < 0.2 for v in stop.value["measured_offsets"].values()
        )
        comp = skew.invoke(cluster, _op("start-clock", "clock-skew"))
        offsets = comp.value["clock_offsets"]
        assert comp.value["verified"] and len(set(offsets.values())) == len(cluster.names)
        stop = skew.invoke(cluster, _op("stop-clock", "clock-skew"))
        assert all(abs(v) < 0.2 for v in stop.value["measured_offsets"].values())
    finally:
        strobe.heal(cluster)
    for node in cluster.names:  # no strobe loop left behind
        pidfile = f"{cluster.node(node).workdir.rstrip('/')}/dsj-clock/strobe.pid"
        assert cluster.remote(node).run(["test", "-e", pidfile], timeout=10, check=False).exit
    _assert_clock_unchanged(before)
