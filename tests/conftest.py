"""Shared fixtures. `make_cluster` builds real local namespace clusters for a test and always
tears them down (and checks that nothing is left) afterwards, also when the test fails."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.cluster.control.ssh import SshConfig, SshRemote
from dsjepsen.cluster.daemon import start_daemon, stop_daemon, wait_for_port

# ---------------------------------------------------------------- running in parallel

#: fixtures that reach the one docker engine of this machine (a session fixture starts it
#: when none runs, and stops it at the end of the session that started it)
DOCKER_FIXTURES = frozenset({"docker_engine", "docker_image", "make_docker_cluster"})
#: test files about the docker backend as a whole, engine or not
DOCKER_FILES = frozenset({"test_control_docker.py", "test_docker_runs.py", "test_docker_image.py"})


#: A test that starts real clusters asserts what a real run did, and a real run on two shared
#: cores is at the mercy of timing: an election that takes a second longer, a kill that lands
#: after the phase it aimed at. Such a test is tried once more when it fails; the summary lists
#: it as RERUN (pyproject's `-r fER`), so a test that needed it is seen and made sturdier. A
#: test that fails twice fails the suite. Pure-logic tests are never retried.
RERUNS = 1


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite runs on two workers (pyproject's addopts: most of its time is spent waiting
    on real clusters, not computing). Tests stay with the others of their file (they share
    module fixtures and clusters), and every test that needs the docker engine goes to one
    worker, so that one session starts it, uses it and stops it. Tests marked `cluster` get
    one retry (RERUNS)."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        docker = DOCKER_FIXTURES & set(getattr(item, "fixturenames", ()))
        group = "docker" if docker or item.path.name in DOCKER_FILES else item.path.name
        item.add_marker(pytest.mark.xdist_group(group))
    for item in items:
        if item.get_closest_marker("cluster") and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=RERUNS, reruns_delay=2))


# the helpers live in localnet so that test modules import them whether or not tests/ is a
# package (importing conftest directly breaks when it is)
cluster_unsupported = localnet.unsupported_reason
unique_cluster_name = localnet.random_name


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(node_count=3, subnet=None) -> Cluster`: a fresh, uniquely named local
    cluster; every one made is taken down and verified gone when the test ends."""
    reason = cluster_unsupported()
    if reason:
        pytest.skip(reason)
    made: list[tuple[str, Cluster | None]] = []

    def make(node_count: int = 3, subnet: str | None = None) -> Cluster:
        name = unique_cluster_name()
        made.append((name, None))
        cluster = localnet.up(name, node_count=node_count, subnet=subnet)
        made[-1] = (name, cluster)
        return cluster

    yield make

    problems = []
    for name, cluster in made:
        if cluster is not None:
            cluster.close()
        try:
            localnet.down(name)
        except Exception as e:  # noqa: BLE001 - report every cluster, then fail
            problems.append(f"{name}: {e}")
        left = localnet.remains(name)
        if left:
            problems.append(f"{name}: left behind {left}")
    if problems:
        pytest.fail("cluster teardown: " + "; ".join(problems))


@pytest.fixture(scope="session")
def _cluster_pool() -> Iterator[dict[int, Cluster]]:
    """The clusters `pooled_cluster` lends, one per size, made on first use and taken down
    (and verified gone) when the session ends."""
    pool: dict[int, Cluster] = {}
    yield pool
    problems = []
    for cluster in pool.values():
        cluster.close()
        try:
            localnet.down(cluster.name)
        except Exception as e:  # noqa: BLE001 - report every cluster, then fail
            problems.append(f"{cluster.name}: {e}")
        left = localnet.remains(cluster.name)
        if left:
            problems.append(f"{cluster.name}: left behind {left}")
    if problems:
        pytest.fail("cluster pool teardown: " + "; ".join(problems))


@pytest.fixture
def pooled_cluster(_cluster_pool: dict[int, Cluster]) -> Iterator[Callable[..., Cluster]]:
    """`pooled_cluster(node_count=3) -> Cluster`: a local cluster of that size shared with
    other tests of the session (creating one costs seconds; tests that only run targets and
    faults on it do not need their own). After the test it is healed as `dsjepsen cluster heal`
    does (firewalls and qdiscs reset, every process in its namespaces stopped), so the next
    test finds it as new; targets clear their own data at setup (the clean slate)."""
    reason = cluster_unsupported()
    if reason:
        pytest.skip(reason)
    lent: list[Cluster] = []

    def get(node_count: int = 3) -> Cluster:
        if node_count not in _cluster_pool:
            _cluster_pool[node_count] = localnet.up(unique_cluster_name(), node_count=node_count)
        lent.append(_cluster_pool[node_count])
        return _cluster_pool[node_count]

    yield get
    for cluster in lent:
        localnet.heal(cluster.name, stop_processes=True)


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[Cluster]:
    """One 2-node local cluster for a whole test module (cheaper than one per test); taken
    down and verified gone after the module."""
    reason = cluster_unsupported()
    if reason:
        pytest.skip(reason)
    name = unique_cluster_name()
    try:
        cluster = localnet.up(name, node_count=2)
        yield cluster
        cluster.close()
    finally:
        localnet.down(name)
        left = localnet.remains(name)
        assert not left, f"cluster {name} left behind {left}"


@dataclass
class SshServer:
    """A throwaway OpenSSH server inside a namespace node, and what a client needs for it."""

    node: Node
    port: int
    key: Path  # authorized client private key
    other_key: Path  # a key the server does not know
    known_hosts: Path  # lists the server's host key
    empty_known_hosts: Path
    pidfile: str

    def config(self, **kw) -> SshConfig:
        base = dict(
            user="root",
            port=self.port,
            key_file=str(self.key),
            known_hosts=str(self.known_hosts),
            connect_timeout=10.0,
            allow_agent=False,
        )
        base.update(kw)
        return SshConfig(**base)

    def remote(self, **kw) -> SshRemote:
        return SshRemote(self.node, self.config(**kw))


SSHD = "/usr/sbin/sshd"


@pytest.fixture(scope="module")
def ssh_server(shared_cluster: Cluster, tmp_path_factory) -> Iterator[SshServer]:
    """Real sshd (-D, throwaway host and client keys) listening on n1's address, port 2222."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server (sshd, ssh-keygen) is not installed")
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client", "other"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"dsj-{key}", "-f", str(d / key)],
            check=True,
            timeout=60,
        )
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    node = shared_cluster.node("n1")
    port = 2222
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress {node.address}\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile none\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nLogLevel VERBOSE\nMaxSessions 50\nMaxStartups 50\n"
    )
    host_pub = " ".join((d / "host.pub").read_text().split()[:2])
    (d / "known_hosts").write_text(f"[{node.address}]:{port} {host_pub}\n")
    (d / "empty_known_hosts").write_text("")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    remote = shared_cluster.remote("n1")
    pidfile = str(d / "sshd.pid")
    start_daemon(
        remote,
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
        pidfile=pidfile,
        logfile=str(d / "sshd.log"),
        cwd=str(d),
    )
    wait_for_port(node.address, port, timeout=30)
    try:
        yield SshServer(
            node=node,
            port=port,
            key=d / "client",
            other_key=d / "other",
            known_hosts=d / "known_hosts",
            empty_known_hosts=d / "empty_known_hosts",
            pidfile=pidfile,
        )
    finally:
        stop_daemon(remote, pidfile)


# ---------------------------------------------------------------- docker


@dataclass
class DockerEngine:
    """A docker engine that answers; `started` when this test session started it."""

    started: bool
    log: Path | None = None


def _daemon_error(log: Path) -> str:
    """The daemon's own reason for not starting: its last error or fatal line."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    for line in reversed(lines):
        if "level=fatal" in line or "level=error" in line or line.startswith("failed"):
            return line.strip()[:300]
    return (lines[-1].strip()[:300] if lines else "no output") + f" (log {log})"


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory) -> Iterator[DockerEngine]:
    """A running docker engine: the one already running, else dockerd (Debian's docker.io)
    started here and stopped again after the session. It runs with `--iptables=false
    --bridge=none` so that it changes nothing in the host's firewall (other tests' clusters
    share it) and makes no default bridge: dsjepsen's containers use networks of their own.
    Skipped only where scripts/setup was not run (no docker CLI or dockerd) or without root;
    an installed engine that cannot start fails every docker test with the daemon's own error
    line, so that a machine where the backend is broken never passes as one where it works."""
    from dsjepsen.cluster.control.docker import docker_engine_answers

    if shutil.which("docker") is None:
        pytest.skip("docker backend not exercised: docker CLI not installed (scripts/setup)")
    if docker_engine_answers(timeout=20) is None:
        yield DockerEngine(started=False)
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.path.exists(dockerd):
        pytest.skip("docker backend not exercised: dockerd not installed (scripts/setup)")
    if os.geteuid() != 0:
        pytest.skip("docker backend not exercised: starting dockerd needs root")
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [dockerd, "--iptables=false", "--ip6tables=false", "--bridge=none"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    reason = docker_engine_answers(timeout=10)
    while reason is not None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        reason = docker_engine_answers(timeout=10)
    if reason is not None:
        _stop(proc)
        pytest.fail(f"docker engine could not start here: {_daemon_error(log)}")
    try:
        yield DockerEngine(started=True, log=log)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="session")
def docker_image(docker_engine: DockerEngine) -> str:
    """The dsjepsen node image (built from Debian's packages once, cached in
    /var/cache/dsjepsen, imported into the engine when it lacks it). A fresh machine builds it
    here; tests/test_docker_image.py builds one from nothing every run, whatever is cached."""
    from dsjepsen.cluster import docker_cluster

    return docker_cluster.ensure_image()


@pytest.fixture
def make_docker_cluster(docker_image: str) -> Iterator[Callable[..., list[str]]]:
    """`make_docker_cluster(count=3, disk_faults=False) -> [container names]`: a uniquely named
    cluster of containers on a network of its own (with disk_faults, able to mount the disk
    faults' file system), removed and verified gone after the test."""
    from dsjepsen.cluster import docker_cluster

    made: list[str] = []

    def make(count: int = 3, disk_faults: bool = False) -> list[str]:
        name = "dsj-t" + secrets.token_hex(3)
        made.append(name)
        return docker_cluster.up(name, count, image=docker_image, disk_faults=disk_faults)

    yield make
    problems = []
    for name in made:
        try:
            docker_cluster.down(name)
        except Exception as e:  # noqa: BLE001 - report every cluster, then fail
            problems.append(f"{name}: {e}")
        left = docker_cluster.remains(name)
        if left:
            problems.append(f"{name}: left behind {left}")
    if problems:
        pytest.fail("docker cluster teardown: " + "; ".join(problems))
