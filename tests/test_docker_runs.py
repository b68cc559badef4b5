"""Whole `dsjepsen test` runs over real docker containers (dsjepsen's own node image on a
network of their own, an engine the suite starts when none runs): raft-kv valid under
partition, kill and pause, invalid with its stale-read bug; `dsjepsen docker up|down`; and
healing what a killed run left in the containers."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.cluster import docker_cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.cluster.control.docker import DockerBackend, DockerRemote
from dsjepsen.cluster.daemon import daemon_running, start_daemon
from dsjepsen.cluster.nodes import build_cluster, heal_nodes, specs_from_list

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def dsjepsen(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *args],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
    )  # fmt: skip


def test_raftkv_in_containers_valid_then_stale_read_invalid(make_docker_cluster, tmp_path):
    names = ",".join(make_docker_cluster(3))
    common = ["test", "--docker", "--nodes", names, "--target", "raft-kv", "--json",
              "--store", str(tmp_path / "store"), "--nemesis-interval", "2"]  # fmt: skip
    valid = dsjepsen(
        tmp_path, *common, "--nemesis", "partition-majority,kill,pause", "--time-limit", "16"
    )
    assert valid.returncode == 0, valid.stderr[-3000:]
    assert json.loads(valid.stdout)
    invalid = dsjepsen(
        tmp_path, *common, "--bug", "stale-read", "--nemesis", "partition-majority",
        "--time-limit", "12",
    )  # fmt: skip
    assert invalid.returncode == 1, invalid.stderr[-3000:]


def test_docker_up_and_down_commands(docker_image, tmp_path):
    name = "dsj-u" + secrets.token_hex(3)
    try:
        up = dsjepsen(
            tmp_path,
            "docker",
            "up",
            "--node-count",
            "2",
            "--cluster-name",
            name,
            "--image",
            docker_image,
        )
        assert up.returncode == 0, up.stderr
        assert f"--docker --nodes {name}-n1,{name}-n2" in up.stdout
        assert docker_cluster.running(name) == [f"{name}-n1", f"{name}-n2"]
        again = dsjepsen(
            tmp_path,
            "docker",
            "up",
            "--node-count",
            "3",
            "--cluster-name",
            name,
            "--image",
            docker_image,
        )
        assert again.returncode == 254 and "exists with 2 containers" in again.stderr
        # the nodes answer through the --docker backend, by name, with their own addresses
        ex = dsjepsen(tmp_path, "cluster", "exec", "--docker", "--nodes", f"{name}-n1",
                      f"{name}-n1", "--", "ip", "-4", "-o", "addr", "show", "eth0")  # fmt: skip
        assert ex.returncode == 0 and "inet " in ex.stdout, ex.stderr
    finally:
        down = dsjepsen(tmp_path, "docker", "down", "--cluster-name", name)
    assert down.returncode == 0, down.stderr
    assert "removed container" in down.stdout and not docker_cluster.remains(name)
    bad = dsjepsen(tmp_path, "docker", "up", "--node-count", "2", "--cluster-name=-x")
    assert bad.returncode == 254 and len(bad.stderr.strip().splitlines()) == 1


def test_heal_removes_what_a_killed_run_left(make_docker_cluster):
    """A partition chain with its jump, a paused daemon: what a run killed mid-fault leaves."""
    names = make_docker_cluster(2)
    cluster = build_cluster(specs_from_list(",".join(names), DockerBackend()))
    r = cluster.remote(names[0])
    node = cluster.node(names[0])
    pidfile = f"{node.workdir}/x/pid"
    start_daemon(
        r, ["sleep", "600"], pidfile=pidfile, logfile=f"{node.workdir}/x/log", cwd=node.workdir
    )
    r.run(["sh", "-c", 'kill -STOP "$(cat "$0")"', pidfile])
    r.run(["iptables", "-w", "-N", "DSJ-PARTITION"])
    r.run(["iptables", "-w", "-A", "DSJ-PARTITION", "-s", "10.0.0.1", "-j", "DROP"])
    r.run(["iptables", "-w", "-A", "INPUT", "-j", "DSJ-PARTITION"])
    # an unrelated process and rule of the container's owner stay
    r.run(["iptables", "-w", "-A", "INPUT", "-s", "10.0.0.2", "-j", "ACCEPT"])
    done = heal_nodes(cluster)
    assert any("resumed" in line for line in done[names[0]]), done
    assert any("chain DSJ-PARTITION" in line for line in done[names[0]]), done
    rules = r.run(["iptables", "-w", "-S"]).stdout
    assert "DSJ-" not in rules and "-A INPUT -s 10.0.0.2/32 -j ACCEPT" in rules
    state = r.run(["sh", "-c", 'grep ^State: /proc/$(cat "$0")/status', pidfile]).stdout
    assert "T (stopped)" not in state
    assert heal_nodes(cluster) == {n: [] for n in names}  # a second heal finds nothing
    stopped = heal_nodes(cluster, stop_processes=True)
    assert any("killed" in line for line in stopped[names[0]])
    assert not daemon_running(r, pidfile)
    assert DockerRemote(Node(names[1], "", "/")).run(["true"]).exit == 0
    cluster.close()


def test_cluster_heal_command_over_docker(make_docker_cluster, tmp_path):
    """`dsjepsen cluster heal --docker --nodes ...`: a killed run's partition chain and its
    still running (paused) target are gone afterwards."""
    names = make_docker_cluster(2)
    r = DockerRemote(Node(names[1], "", "/"))
    workdir = f"/var/lib/dsjepsen/{names[1]}"  # what --docker --nodes gives the node
    pidfile = f"{workdir}/x/pid"
    start_daemon(r, ["sleep", "600"], pidfile=pidfile, logfile=f"{workdir}/x/log", cwd="/")
    r.run(["sh", "-c", 'kill -STOP "$(cat "$0")"', pidfile])
    r.run(["iptables", "-w", "-N", "DSJ-PARTITION"])
    r.run(["iptables", "-w", "-A", "INPUT", "-j", "DSJ-PARTITION"])
    healed = dsjepsen(tmp_path, "cluster", "heal", "--docker", "--nodes", ",".join(names))
    assert healed.returncode == 0, healed.stderr
    assert f"{names[1]}: iptables filter: chain DSJ-PARTITION" in healed.stdout
    assert f"{names[1]}: killed" in healed.stdout
    assert "DSJ-" not in r.run(["iptables", "-w", "-S"]).stdout
    assert not daemon_running(r, pidfile)


def _mounts(container: str) -> str:
    """The container's own mount table (its mount namespace is not the controller's)."""
    return docker_cluster.docker_cmd(
        "docker", "exec", "--", container, "cat", "/proc/self/mounts"
    ).stdout


def _history(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "latest" / "history.jsonl").open()]


def test_disk_faults_run_the_fault_file_system_in_the_containers(make_docker_cluster, tmp_path):
    """Containers made for disk faults mount the fault file system inside themselves: a power
    failure drops on the node what raft-kv had not fsynced (nothing: it fsyncs first), a run
    killed during a stall leaves its mounts, which `cluster heal` takes away; containers made
    without --disk-faults are refused before the run, naming the node."""
    names = make_docker_cluster(3, disk_faults=True)
    common = ["test", "--docker", "--nodes", ",".join(names), "--target", "raft-kv", "--json",
              "--nemesis-interval", "2"]  # fmt: skip
    store = tmp_path / "store"
    run = dsjepsen(tmp_path, *common, "--store", str(store), "--nemesis",
                   "power-failure-majority", "--time-limit", "12")  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    starts = [o for o in _history(store) if o.get("f") == "start-disk" and o["type"] == "ok"]
    assert starts, run.stderr[-2000:]
    for start in starts:
        assert len(start["value"]["nodes"]) == 2 and start["value"]["signal"] == "SIGKILL"
        assert set(start["value"]["dropped"]) == set(start["value"]["nodes"]), start["value"]
    for c in names:
        assert "dsj-faultfs" not in _mounts(c), c

    killed = tmp_path / "killed"
    argv = [sys.executable, "-m", "dsjepsen", *common, "--store", str(killed), "--nemesis",
            "disk-stall", "--nemesis-interval", "1", "--time-limit", "60"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while not any(
            o.get("f") == "start-disk" and o["type"] == "ok"
            for o in (_history(killed) if (killed / "latest" / "history.jsonl").exists() else [])
        ):
            assert proc.poll() is None and time.monotonic() < deadline, "no disk fault came"
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert all("dsj-faultfs" in _mounts(c) for c in names)  # the dead controller left them
    healed = dsjepsen(tmp_path, "cluster", "heal", "--docker", "--nodes", ",".join(names))
    assert healed.returncode == 0, healed.stderr
    assert "unmounted" in healed.stdout and "stopped fault file system" not in healed.stderr
    for c in names:
        assert "dsj-faultfs" not in _mounts(c), (c, healed.stdout)

    (plain,) = make_docker_cluster(1)
    refused = dsjepsen(tmp_path, "test", "--docker", "--nodes", plain, "--target", "raft-kv",
                       "--nemesis", "disk-stall", "--nemesis-interval", "1", "--time-limit", "5",
                       "--store", str(tmp_path / "refused"))  # fmt: skip
    assert refused.returncode == 254, refused.stderr[-2000:]
    assert f"node {plain}:" in refused.stderr and "--disk-faults" in refused.stderr

    # doctor says it per node, tried on each: mounted and power-cut there, or why not
    doctor = dsjepsen(tmp_path, "doctor", "--json", "--docker", "--nodes", f"{names[0]},{plain}")
    said = {c["node"]: c for c in json.loads(doctor.stdout) if c["name"].startswith("disk faults")}
    assert said[names[0]]["ok"] is True, said
    assert "a power failure dropped 5 B" in said[names[0]]["detail"]
    assert said[plain]["ok"] is False and "/dev/fuse is missing" in said[plain]["detail"], said
    for c in (names[0], plain):
        assert "dsj-faultfs" not in _mounts(c)
