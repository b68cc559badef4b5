"""Figures for the local cluster and the Remote backends: up/down time by node count and
per-command latency (local netns exec; SSH to a real sshd in a namespace, on the reused
connection's command agent and, for comparison, as one exec channel per command, which runs
the login user's ~/.bashrc every time; docker likewise, when an engine answers). Prints, asserts
nothing; the SSH goal is under 20 ms per command on a reused connection. Needs root.
Usage: python3 bench/cluster_ops.py [--ssh-only]"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsjepsen.cluster import localnet
from dsjepsen.cluster.control.ssh import SshConfig, SshRemote
from dsjepsen.cluster.daemon import start_daemon, stop_daemon, wait_for_port


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def latency(remote, n=30) -> str:
    samples = []
    for _ in range(n):
        dt, _ = timed(lambda: remote.run(["true"]))
        samples.append(dt * 1000)
    return f"median {statistics.median(samples):.1f} ms, max {max(samples):.1f} ms over {n}"


def main() -> None:
    if "--ssh-only" not in sys.argv:
        cluster_times()
    ssh_latency()
    docker_latency()


def cluster_times() -> None:
    for count in (3, 5, 9):
        name = "b" + secrets.token_hex(3)
        up, _ = timed(localnet.up, name, node_count=count)
        again, _ = timed(localnet.up, name, node_count=count)
        heal, _ = timed(localnet.heal, name)
        down, _ = timed(localnet.down, name)
        print(
            f"{count} nodes: up {up:.2f}s, idempotent up {again:.2f}s, heal {heal:.2f}s, "
            f"down {down:.2f}s"
        )


def ssh_latency() -> None:
    name = "b" + secrets.token_hex(3)
    cluster = localnet.up(name, node_count=1)
    try:
        node = cluster.node("n1")
        print(f"local run(['true']): {latency(cluster.remote('n1'))}")
        d = Path(tempfile.mkdtemp())
        for k in ("host", "client"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)], check=True
            )
        (d / "ak").write_text((d / "client.pub").read_text())
        (d / "cfg").write_text(
            f"Port 2222\nListenAddress {node.address}\nHostKey {d / 'host'}\nAuthorizedKeysFile {d / 'ak'}\n"
            "PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
            "Subsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)
        r = cluster.remote("n1")
        start_daemon(
            r,
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "cfg")],
            pidfile=str(d / "pid"),
            logfile=str(d / "log"),
            cwd=str(d),
        )
        wait_for_port(node.address, 2222)
        ssh = SshRemote(
            node,
            SshConfig(
                port=2222, key_file=str(d / "client"), insecure_host_keys=True, allow_agent=False
            ),
        )
        first, _ = timed(lambda: ssh.run(["true"]))
        print(f"ssh first command (connect + auth): {first * 1000:.0f} ms")
        print(f"ssh run(['true']) on the reused connection (command agent): {latency(ssh)}")
        plain = SshRemote(node, ssh.config)
        plain._no_agent = True  # the old way: one exec channel (and login-shell rc) per command
        plain.run(["true"])
        print(f"ssh run(['true']), one exec channel per command: {latency(plain, n=10)}")
        plain.close()
        ssh.close()
        stop_daemon(r, str(d / "pid"))
    finally:
        localnet.down(name)


def docker_latency() -> None:
    from dsjepsen.cluster import docker_cluster
    from dsjepsen.cluster.control.base import Node
    from dsjepsen.cluster.control.docker import DockerRemote, docker_engine_answers

    reason = docker_engine_answers()
    if reason:
        print(f"docker: not measured ({reason})")
        return
    name = "dsj-b" + secrets.token_hex(3)
    try:
        up, names = timed(docker_cluster.up, name, 3)
        print(f"docker 3 containers: up {up:.2f}s (image present or imported)")
        remote = DockerRemote(Node(names[0], "", "/"))
        remote.run(["true"])
        print(
            f"docker run(['true']) on a kept docker exec session (command agent): {latency(remote)}"
        )
        remote.close()
        plain = DockerRemote(Node(names[0], "", "/"))
        plain._no_agent = True  # one docker exec per command
        print(f"docker run(['true']), one docker exec per command: {latency(plain, n=10)}")
    finally:
        down, _ = timed(docker_cluster.down, name)
        print(f"docker down {down:.2f}s")


if __name__ == "__main__":
    main()
