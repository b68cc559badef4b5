"""The local namespace cluster, for real: namespaces, bridge, addresses, TCP, cleanup, heal."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.daemon import (
    daemon_running,
    signal_daemon,
    start_daemon,
    stop_daemon,
    wait_for_port,
)
from dsjepsen.errors import ConfigError

pytestmark = pytest.mark.cluster

# a one-connection-at-a-time TCP echo server that also says which host it runs on
ECHO = (
    "import socket,sys\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen()\n"
    "while True:\n"
    "    c,_=s.accept(); d=c.recv(100); c.sendall(b'echo:'+d); c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)\n"
    "c.sendall(b'hi'); print(c.recv(100).decode())\n"
)


def _start_echo(cluster, node, port=7000):
    n = cluster.node(node)
    r = cluster.remote(node)
    start_daemon(
        r,
        [sys.executable, "-c", ECHO, str(port)],
        pidfile=f"{n.workdir}/echo.pid",
        logfile=f"{n.workdir}/echo.log",
        cwd=n.workdir,
    )
    wait_for_port(n.address, port, timeout=30)


def _controller_echo(address, port=7000):
    with socket.create_connection((address, port), timeout=10) as s:
        s.sendall(b"ctl")
        return s.recv(100)


def test_three_nodes_reach_each_other_and_the_controller(make_cluster):
    cluster = make_cluster(3)
    assert cluster.kind == "local"
    assert cluster.names == ["n1", "n2", "n3"]
    net = ipaddress.ip_network(cluster.meta["subnet"])
    assert net.subnet_of(localnet.POOL)
    assert len({n.address for n in cluster.nodes}) == 3
    for n in cluster.nodes:
        assert ipaddress.ip_address(n.address) in net
        out = cluster.remote(n.name).run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        assert n.address in out.stdout
        # no route out of the bridge: the node cannot reach the host's own network
        routes = cluster.remote(n.name).run(["ip", "-4", "route"]).stdout
        assert "default" not in routes

    _start_echo(cluster, "n1")
    assert _controller_echo(cluster.node("n1").address) == b"echo:ctl"
    for other in ("n2", "n3"):
        res = cluster.remote(other).run(
            [sys.executable, "-c", CLIENT, cluster.node("n1").address, "7000"], timeout=30
        )
        assert res.stdout.strip() == "echo:hi"
    # the server really runs inside n1's namespace: n2's loopback does not have it
    res = cluster.remote("n2").run(
        [sys.executable, "-c", CLIENT, "127.0.0.1", "7000"], timeout=30, check=False
    )
    assert res.exit != 0 and "refused" in res.stderr.lower()


def test_up_is_idempotent_and_down_leaves_nothing(make_cluster):
    cluster = make_cluster(5)
    name = cluster.name
    assert cluster.names == [f"n{i}" for i in range(1, 6)]
    _start_echo(cluster, "n5")
    again = localnet.up(name, node_count=5)
    assert [n.address for n in again.nodes] == [n.address for n in cluster.nodes]
    # the running server survived the second `up`
    assert _controller_echo(cluster.node("n5").address) == b"echo:ctl"
    reopened = localnet.open_cluster(name)
    assert reopened.names == cluster.names
    with pytest.raises(ConfigError, match="already exists with 5 nodes"):
        localnet.up(name, node_count=3)

    pid = int(Path(f"{cluster.node('n5').workdir}/echo.pid").read_text())
    localnet.down(name)
    assert localnet.remains(name) == []
    assert not [ns for ns in localnet.list_netns() if ns.startswith(f"dsj-{name}-")]
    assert not [ln for ln in localnet.list_links() if ln.startswith(f"dsj-{name}-")]
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True).stdout
    assert f"dsj-{name}" not in rules
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(pid)
    # down is idempotent
    localnet.down(name)
    with pytest.raises(ConfigError, match="no local cluster"):
        localnet.open_cluster(name)


def _wait_state(pid: int, states: str, timeout: float = 10.0) -> bool:
    """Signals are delivered asynchronously: poll until the process shows one of states."""
    deadline = time.monotonic() + timeout
    while localnet._proc_state(pid) not in states:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def test_daemon_lifecycle(make_cluster):
    cluster = make_cluster(1)
    n = cluster.node("n1")
    r = cluster.remote("n1")
    pidfile, logfile = f"{n.workdir}/d.pid", f"{n.workdir}/logs/d.log"
    script = "import os,sys,time\nprint('env', os.environ['DSJ_X'], os.getcwd(), flush=True)\ntime.sleep(600)"
    assert start_daemon(
        r,
        [sys.executable, "-c", script],
        pidfile=pidfile,
        logfile=logfile,
        cwd=n.workdir,
        env={"DSJ_X": "a b $(x)"},
    )
    assert daemon_running(r, pidfile)
    assert not start_daemon(
        r, [sys.executable, "-c", script], pidfile=pidfile, logfile=logfile, cwd=n.workdir
    )
    pid = int(Path(pidfile).read_text())
    deadline = time.monotonic() + 20
    while "env" not in Path(logfile).read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Path(logfile).read_text().strip() == f"env a b $(x) {n.workdir}"
    assert signal_daemon(r, pidfile, "STOP")
    assert _wait_state(pid, "T")
    assert signal_daemon(r, pidfile, "CONT")
    assert _wait_state(pid, "SR")
    assert signal_daemon(r, pidfile, "STOP")
    stop_daemon(r, pidfile, grace=2)  # a paused daemon is stopped too
    assert not daemon_running(r, pidfile)
    assert not _pid_alive(pid)
    assert not signal_daemon(r, pidfile, "KILL")


def test_heal_after_a_crash(make_cluster):
    cluster = make_cluster(2)
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    r1 = cluster.remote("n1")
    _start_echo(cluster, "n2")
    # what a crashed nemesis leaves behind: a partition chain and a paused process
    r1.run(["iptables", "-w", "-N", "DSJ-PART"])
    r1.run(["iptables", "-w", "-A", "DSJ-PART", "-s", n2.address, "-j", "DROP"])
    r1.run(["iptables", "-w", "-A", "INPUT", "-j", "DSJ-PART"])
    r1.run(
        [
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
            "tbf",
            "rate",
            "1mbit",
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ]
    )
    start_daemon(
        r1,
        ["sleep", "600"],
        pidfile=f"{n1.workdir}/s.pid",
        logfile=f"{n1.workdir}/s.log",
        cwd=n1.workdir,
    )
    assert signal_daemon(r1, f"{n1.workdir}/s.pid", "STOP")
    pid = int(Path(f"{n1.workdir}/s.pid").read_text())
    assert _wait_state(pid, "T")
    res = r1.run([sys.executable, "-c", CLIENT, n2.address, "7000"], timeout=30, check=False)
    assert res.exit != 0  # the partition is real

    out = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "cluster", "heal", "--cluster-name", cluster.name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "DSJ-PART" in out.stdout and f"n1: stopped: {pid} sleep 600" in out.stdout
    # every process a crashed run left in a node is stopped, the paused one included
    assert not _pid_alive(pid)
    assert localnet.netns_pids(n1.extra["netns"]) == localnet.netns_pids(n2.extra["netns"]) == []
    assert "DSJ" not in r1.run(["iptables", "-w", "-S"]).stdout
    assert "tbf" not in r1.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
    _start_echo(cluster, "n2")
    res = r1.run([sys.executable, "-c", CLIENT, n2.address, "7000"], timeout=30)
    assert res.stdout.strip() == "echo:hi"
    # a run's own heal (no stop_processes) keeps the target running; heal is idempotent
    assert localnet.heal(cluster.name) == {
        "n1": {"iptables": [], "qdiscs": [], "clock": [], "resumed": []},
        "n2": {"iptables": [], "qdiscs": [], "clock": [], "resumed": []},
    }
    res = r1.run([sys.executable, "-c", CLIENT, n2.address, "7000"], timeout=30)
    assert res.stdout.strip() == "echo:hi"


def test_bad_names_and_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="invalid cluster name"):
        localnet.up("toolongname")
    with pytest.raises(ConfigError, match="invalid cluster name"):
        localnet.up("a-b")
    with pytest.raises(ConfigError, match="node count"):
        localnet.up(localnet.random_name(), node_count=0)


def test_subnet_override_and_clash(make_cluster):
    cluster = make_cluster(2, subnet="10.213.250.0/24")
    assert cluster.node("n1").address == "10.213.250.11"
    assert cluster.meta["controller_address"] == "10.213.250.1"
    name = localnet.random_name()
    with pytest.raises(ConfigError, match="overlaps"):
        localnet.up(name, node_count=2, subnet="10.213.250.0/25")
    assert localnet.remains(name) == []
