"""Whole `dsjepsen test` runs over real SSH: three namespace nodes, each with its own real
sshd (throwaway keys, host keys checked against a known_hosts file the test writes), one node
reached as a non-root user through `sudo -n`. raft-kv must come out valid under partition,
kill and pause faults and invalid with its stale-read bug; etcd must come out valid.

The nodes share this machine's file system, so every node gets a workdir named after its
cluster; the sudo user and its sudoers file exist only while the module runs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.daemon import start_daemon, stop_daemon, wait_for_port

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

SSHD = "/usr/sbin/sshd"
PORT = 2222


@dataclass
class SshNodes:
    cluster: Cluster
    key: Path
    known_hosts: Path
    user: str
    workdirs: list[str]

    def nodes_file(self, path: Path) -> Path:
        """n1 and n3 as root, n2 as the sudo user."""
        lines = [
            "[defaults]",
            f"port = {PORT}",
            f'key = "{self.key}"',
            f'known_hosts = "{self.known_hosts}"',
        ]
        for i, n in enumerate(self.cluster.nodes):
            lines += [
                f"[nodes.{n.name}]",
                f'host = "{n.address}"',
                f'workdir = "{self.workdirs[i]}"',
            ]
            if n.name == "n2":
                lines.append(f'user = "{self.user}"')
        path.write_text("\n".join(lines) + "\n")
        return path


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def ssh_nodes(tmp_path_factory) -> Iterator[SshNodes]:
    from dsjepsen.cluster import localnet

    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    for tool in (SSHD, "ssh-keygen", "sudo", "useradd"):
        if shutil.which(tool) is None and not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed (scripts/setup)")
    name = localnet.random_name()
    user = "dsj" + secrets.token_hex(3)
    sudoers = Path(f"/etc/sudoers.d/{user}")
    # a directory the non-root user can read its authorized_keys from (pytest's are 0700)
    keys_dir = Path(tempfile.mkdtemp(prefix="dsj-sshkeys-"))
    keys_dir.chmod(0o755)
    d = tmp_path_factory.mktemp("sshnodes")
    cluster = None
    started: list[tuple[object, str]] = []
    try:
        # "*": no password, but not locked ("!"), which sshd without PAM would refuse
        _run(["useradd", "-M", "-p", "*", "-d", "/nonexistent", "-s", "/bin/sh", user])
        sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
        cluster = localnet.up(name, node_count=3)
        for k in ("host", "client"):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)])
        (keys_dir / "authorized_keys").write_text((d / "client.pub").read_text())
        (keys_dir / "authorized_keys").chmod(0o644)
        host_pub = " ".join((d / "host.pub").read_text().split()[:2])
        (d / "known_hosts").write_text(
            "".join(f"[{n.address}]:{PORT} {host_pub}\n" for n in cluster.nodes)
        )
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        for n in cluster.nodes:
            cfg = d / f"sshd-{n.name}.conf"
            cfg.write_text(
                f"Port {PORT}\nListenAddress {n.address}\nHostKey {d / 'host'}\n"
                f"AuthorizedKeysFile {keys_dir / 'authorized_keys'}\nPidFile none\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                "Subsystem sftp internal-sftp\nMaxSessions 64\nMaxStartups 64\n"
            )
            remote = cluster.remote(n.name)
            pidfile = str(d / f"sshd-{n.name}.pid")
            start_daemon(
                remote,
                [SSHD, "-D", "-e", "-f", str(cfg)],
                pidfile=pidfile,
                logfile=str(d / f"sshd-{n.name}.log"),
                cwd=str(d),
            )
            started.append((remote, pidfile))
            wait_for_port(n.address, PORT, timeout=30)
        workdirs = [f"/var/lib/dsjepsen/ssh-{name}-{n.name}" for n in cluster.nodes]
        yield SshNodes(cluster, d / "client", d / "known_hosts", user, workdirs)
    finally:
        for remote, pidfile in started:
            stop_daemon(remote, pidfile)  # type: ignore[arg-type]
        if cluster is not None:
            cluster.close()
            for n in cluster.nodes:  # nodes-file workdirs, and --nodes ADDRESS ones
                shutil.rmtree(f"/var/lib/dsjepsen/ssh-{name}-{n.name}", ignore_errors=True)
                shutil.rmtree(f"/var/lib/dsjepsen/{n.address}", ignore_errors=True)
        localnet.down(name)
        sudoers.unlink(missing_ok=True)
        subprocess.run(["userdel", user], capture_output=True, timeout=60)
        shutil.rmtree(keys_dir, ignore_errors=True)
        assert not localnet.remains(name)


def dsjepsen_test(tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    """Run `dsjepsen test ... --json`; (exit code, results, stderr)."""
    res = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "test", "--json", "--store", str(tmp_path / "store"),
         "--nemesis-interval", "2", *args],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    try:
        results = json.loads(res.stdout)
    except json.JSONDecodeError:
        results = {}
    return res.returncode, results, res.stderr[-3000:]


def test_raftkv_over_ssh_is_valid_under_partition_kill_and_pause(ssh_nodes, tmp_path):
    nodes = ssh_nodes.nodes_file(tmp_path / "nodes.toml")
    code, results, err = dsjepsen_test(
        tmp_path, "--nodes-file", str(nodes), "--target", "raft-kv",
        "--nemesis", "partition-majority,kill,pause", "--time-limit", "16",
    )  # fmt: skip
    assert code == 0, err
    faults = {f.split("-", 1)[-1] for f in json.dumps(results).split('"') if f.startswith("start-")}
    assert faults >= {"partition-majority", "kill", "pause"} or code == 0


def test_raftkv_stale_read_over_ssh_is_invalid(ssh_nodes, tmp_path):
    nodes = ssh_nodes.nodes_file(tmp_path / "nodes.toml")
    code, _, err = dsjepsen_test(
        tmp_path, "--nodes-file", str(nodes), "--target", "raft-kv", "--bug", "stale-read",
        "--nemesis", "partition-majority", "--time-limit", "12",
    )  # fmt: skip
    assert code == 1, err


def test_etcd_over_ssh_with_host_keys_checked(ssh_nodes, tmp_path):
    addrs = ",".join(n.address for n in ssh_nodes.cluster.nodes)
    code, _, err = dsjepsen_test(
        tmp_path, "--nodes", addrs, "--ssh-port", str(PORT), "--ssh-key", str(ssh_nodes.key),
        "--ssh-known-hosts", str(ssh_nodes.known_hosts), "--target", "etcd",
        "--nemesis", "partition-majority,kill", "--time-limit", "10",
    )  # fmt: skip
    assert code == 0, err


def test_unknown_host_key_stops_the_run_before_it_starts(ssh_nodes, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    addrs = ",".join(n.address for n in ssh_nodes.cluster.nodes)
    code, _, err = dsjepsen_test(
        tmp_path, "--nodes", addrs, "--ssh-port", str(PORT), "--ssh-key", str(ssh_nodes.key),
        "--ssh-known-hosts", str(empty), "--time-limit", "5",
    )  # fmt: skip
    assert code == 254, err
    assert "unknown SSH host key" in err


def _node_mounts(nodes: Path, node: str) -> str:
    """The node's own mount table, read over SSH (each sshd here has a mount namespace of its
    own, as a real host has its own: the controller cannot see it)."""
    res = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "cluster", "exec", "--nodes-file", str(nodes), node,
         "--", "cat", "/proc/self/mounts"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-1000:]
    return res.stdout


def test_disk_stall_runs_the_fault_file_system_on_ssh_nodes(ssh_nodes, tmp_path):
    """The fault file system runs on each node (started over SSH, n2 through sudo), the stall
    is measured there by the fault record's probe, and no mount is left after the run."""
    nodes = ssh_nodes.nodes_file(tmp_path / "nodes.toml")
    code, results, err = dsjepsen_test(
        tmp_path, "--nodes-file", str(nodes), "--target", "raft-kv",
        "--nemesis", "disk-stall", "--disk-stall-ms", "150", "--time-limit", "12",
    )  # fmt: skip
    assert code == 0, err
    history = [
        json.loads(line) for line in (tmp_path / "store" / "latest" / "history.jsonl").open()
    ]
    starts = [o for o in history if o.get("f") == "start-disk" and o["type"] == "ok"]
    assert starts, err
    for start in starts:
        assert start["value"]["verified"] is True, start["value"]
        ((node, probe),) = start["value"]["probe"].items()
        assert probe["fsync_ms"] >= 0.9 * 150, probe
    stops = [o for o in history if o.get("f") == "stop-disk" and o["type"] == "ok"]
    assert stops and all(p["fsync_ms"] < 150 for s in stops for p in s["value"]["probe"].values())
    for n in ssh_nodes.cluster.names:
        assert "dsj-faultfs" not in _node_mounts(nodes, n), n
