"""One conformance suite for every Remote backend: local (namespace), ssh (a real sshd in a
namespace) and docker (a container of dsjepsen's node image on an engine the suite starts when
none runs; skipped, with the engine's own error line, only where dockerd cannot start)."""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.cluster.control.base import Node, RemoteError, RemoteTimeout
from dsjepsen.cluster.control.docker import DockerRemote
from dsjepsen.cluster.daemon import (
    daemon_running,
    fetch_files,
    signal_daemon,
    start_daemon,
    stop_daemon,
)

pytestmark = pytest.mark.cluster

HOSTILE = [
    "two words",
    "it's",
    '"double"',
    "$(touch /tmp/dsj-pwned)",
    "`touch /tmp/dsj-pwned`",
    "; touch /tmp/dsj-pwned",
    "a && b || c | d > /tmp/dsj-pwned",
    "line1\nline2\n",
    "tab\there",
    "*",
    "$HOME ${PATH}",
    "back\\slash",
    "",
    "-n",
    "ünïcødé",
]
ARGV_JSON = "import json,sys; print(json.dumps(sys.argv[1:]))"


@pytest.fixture(scope="module")
def docker_container(docker_image):
    from dsjepsen.cluster import docker_cluster

    name = "dsj-c" + secrets.token_hex(3)
    try:
        (container,) = docker_cluster.up(name, 1, image=docker_image)
        yield container
    finally:
        docker_cluster.down(name)
        assert not docker_cluster.remains(name)


@pytest.fixture(params=["local", "ssh", "docker"])
def target(request, tmp_path):
    """(remote, a writable remote directory, the python on the remote side)."""
    if request.param == "local":
        cluster = request.getfixturevalue("shared_cluster")
        node = cluster.node("n2")
        return cluster.remote("n2"), node.workdir, sys.executable
    if request.param == "ssh":
        server = request.getfixturevalue("ssh_server")
        remote = server.remote()
        request.addfinalizer(remote.close)
        return remote, server.node.workdir, sys.executable
    container = request.getfixturevalue("docker_container")
    remote = DockerRemote(Node(container, container, "/var/lib/dsjepsen/c"))
    remote.run(["mkdir", "-p", "/var/lib/dsjepsen/c"])
    return remote, "/var/lib/dsjepsen/c", "python3"


def test_exit_code_stdout_stderr(target):
    remote, _, _ = target
    res = remote.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (res.exit, res.stdout, res.stderr) == (3, "out\n", "err\n")
    ok = remote.run(["echo", "hello"])
    assert (ok.exit, ok.stdout, ok.stderr) == (0, "hello\n", "")


def test_nonzero_exit_raises_naming_node_and_command(target):
    remote, _, _ = target
    with pytest.raises(RemoteError) as e:
        remote.run(["sh", "-c", "echo boom >&2; exit 7", "marker-arg"])
    msg = str(e.value)
    assert f"node {remote.node.name}" in msg
    assert "exit 7" in msg and "boom" in msg and "marker-arg" in msg
    assert e.value.result is not None and e.value.result.exit == 7
    assert e.value.exit_code == 255


def test_timeout_raises_within_its_limit(target):
    remote, _, _ = target
    t0 = time.monotonic()
    with pytest.raises(RemoteTimeout) as e:
        remote.run(["sleep", "30"], timeout=1.0, check=False)
    elapsed = time.monotonic() - t0
    assert elapsed < 10.0, f"timeout took {elapsed:.1f}s"
    assert "timed out after 1s" in str(e.value) and "sleep 30" in str(e.value)
    # the channel still works afterwards
    assert remote.run(["echo", "alive"]).stdout == "alive\n"


def test_put_and_get_a_file_and_a_directory(target, tmp_path):
    remote, workdir, _ = target
    tag = secrets.token_hex(4)
    src = tmp_path / "src.bin"
    payload = bytes(range(256)) * 50 + b"\nend"
    src.write_bytes(payload)
    dest = f"{workdir}/conf-{tag}/sub/file.bin"
    remote.run(["mkdir", "-p", f"{workdir}/conf-{tag}/sub"])
    remote.put(str(src), dest)
    assert remote.run(["wc", "-c", dest]).stdout.split()[0] == str(len(payload))
    back = tmp_path / "back.bin"
    remote.get(dest, str(back))
    assert back.read_bytes() == payload

    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "x.txt").write_text("x")
    (tree / "y.txt").write_text("y")
    remote.put(str(tree), f"{workdir}/conf-{tag}/tree")
    listing = remote.run(["find", f"{workdir}/conf-{tag}/tree", "-type", "f"]).stdout.split()
    assert sorted(Path(p).name for p in listing) == ["x.txt", "y.txt"]
    remote.get(f"{workdir}/conf-{tag}/tree", str(tmp_path / "tree-back"))
    assert (tmp_path / "tree-back" / "a" / "x.txt").read_text() == "x"
    with pytest.raises(RemoteError, match=remote.node.name):
        remote.get(f"{workdir}/conf-{tag}/no-such-file", str(tmp_path / "nothing"))
    remote.run(["rm", "-rf", f"{workdir}/conf-{tag}"])


def test_hostile_strings_arrive_unchanged(target):
    remote, workdir, python = target
    remote.run(["rm", "-f", "/tmp/dsj-pwned"])
    res = remote.run([python, "-c", ARGV_JSON, *HOSTILE])
    assert json.loads(res.stdout) == HOSTILE
    # environment values, stdin and the working directory take the same path
    env = {"DSJ_A": HOSTILE[3], "DSJ_B": "multi\nline 'q' \"dq\""}
    res = remote.run(
        [python, "-c", "import os,sys; print(os.environ['DSJ_A']); print(os.environ['DSJ_B'])"],
        env=env,
    )
    assert res.stdout == f"{env['DSJ_A']}\n{env['DSJ_B']}\n"
    text = "".join(HOSTILE) + "\nlast line without newline"
    assert remote.run(["cat"], input=text).stdout == text
    odd_dir = f"{workdir}/dir with 'quote' and $(x)"
    remote.run(["mkdir", "-p", odd_dir])
    assert remote.run(["pwd"], cwd=odd_dir).stdout.strip() == odd_dir
    remote.run(["rm", "-rf", odd_dir])
    assert remote.run(["test", "-e", "/tmp/dsj-pwned"], check=False).exit == 1


def test_daemon_helpers(target, tmp_path):
    remote, workdir, python = target
    d = f"{workdir}/daemon-{secrets.token_hex(3)}"
    pidfile, log = f"{d}/run/x.pid", f"{d}/log/x.log"
    code = "import os,time; print('up', os.environ['DSJ_V'], flush=True); time.sleep(600)"
    assert start_daemon(
        remote, [python, "-c", code], pidfile=pidfile, logfile=log, cwd=d, env={"DSJ_V": "v 1"}
    )
    assert daemon_running(remote, pidfile)
    assert signal_daemon(remote, pidfile, "STOP")
    assert signal_daemon(remote, pidfile, "CONT")
    deadline = time.monotonic() + 20
    while "up" not in remote.run(["cat", log]).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    got = fetch_files(remote, [log, f"{d}/missing.log"], tmp_path / "logs")
    assert got == [tmp_path / "logs" / "x.log"]
    assert got[0].read_text() == "up v 1\n"
    stop_daemon(remote, pidfile, grace=2)
    assert not daemon_running(remote, pidfile)
    # a command that dies at once is reported with its log
    with pytest.raises(RemoteError, match="exited at once"):
        start_daemon(remote, ["sh", "-c", "echo nope; exit 1"], pidfile=pidfile, logfile=log, cwd=d)
    remote.run(["rm", "-rf", d])


def _alive(remote, pid: int) -> bool:
    """Alive and not a zombie (a killed process not yet reaped still answers kill -0)."""
    res = remote.run(["sh", "-c", 'grep "^State:" /proc/$0/status', str(pid)], check=False)
    return res.exit == 0 and "Z" not in res.stdout.split(":", 1)[1]


def test_timeout_kills_the_remote_command_and_its_children(target):
    remote, workdir, _ = target
    mark = f"{workdir}/pids-{secrets.token_hex(3)}"
    script = 'echo $$ >"$0"; sleep 300 & echo $! >>"$0"; wait'
    with pytest.raises(RemoteTimeout):
        remote.run(["sh", "-c", script, mark], timeout=2.0)
    pids = [int(p) for p in remote.run(["cat", mark]).stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(_alive(remote, p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(remote, p)], "a timed-out command outlived its timeout"
    remote.run(["rm", "-f", mark])


def test_large_file_round_trip(target, tmp_path):
    remote, workdir, _ = target
    src = tmp_path / "big.bin"
    src.write_bytes(secrets.token_bytes(1 << 20) * 24)  # 24 MiB
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = f"{workdir}/big-{secrets.token_hex(3)}.bin"
    t0 = time.monotonic()
    remote.put(str(src), dest, timeout=120)
    assert remote.run(["sha256sum", dest]).stdout.split()[0] == digest
    remote.get(dest, str(tmp_path / "back.bin"), timeout=120)
    elapsed = time.monotonic() - t0
    assert hashlib.sha256((tmp_path / "back.bin").read_bytes()).hexdigest() == digest
    assert elapsed < 90, f"24 MiB there and back took {elapsed:.1f}s"
    # output of any size comes back whole, too
    res = remote.run(["sh", "-c", "head -c 3145728 /dev/zero | tr '\\0' x"])
    assert res.stdout == "x" * (3 << 20)
    remote.run(["rm", "-f", dest])


def test_signals_reach_the_daemon_and_its_children_only(target):
    """STOP/CONT/KILL go to the daemon's process group: its child stops with it, a second
    daemon started the same way is untouched."""
    remote, workdir, _ = target
    d = f"{workdir}/sig-{secrets.token_hex(3)}"
    code = 'sleep 600 & echo "child $!"; wait'
    for name in ("a", "b"):
        start_daemon(
            remote, ["sh", "-c", code], pidfile=f"{d}/{name}.pid", logfile=f"{d}/{name}.log", cwd=d
        )

    def child(name: str) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = remote.run(["cat", f"{d}/{name}.log"], check=False).stdout
            if "child" in out:
                return int(out.split()[1])
            time.sleep(0.1)
        raise AssertionError("daemon did not start its child")

    def state(pid: int) -> str:
        res = remote.run(["sh", "-c", 'grep "^State:" /proc/$0/status', str(pid)], check=False)
        return res.stdout.split()[1] if res.exit == 0 else "gone"

    pa, pb = (int(remote.run(["cat", f"{d}/{n}.pid"]).stdout) for n in ("a", "b"))
    ca, cb = child("a"), child("b")
    try:
        assert signal_daemon(remote, f"{d}/a.pid", "STOP")
        assert (state(pa), state(ca)) == ("T", "T")
        assert state(pb) in ("S", "R") and state(cb) in ("S", "R")
        assert signal_daemon(remote, f"{d}/a.pid", "CONT")
        assert state(pa) in ("S", "R") and state(ca) in ("S", "R")
        assert signal_daemon(remote, f"{d}/a.pid", "KILL")
        deadline = time.monotonic() + 10
        while not all(not _alive(remote, p) for p in (pa, ca)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(remote, pa) and not _alive(remote, ca)
        assert _alive(remote, pb) and _alive(remote, cb)
    finally:
        for n in ("a", "b"):
            stop_daemon(remote, f"{d}/{n}.pid", grace=1)
        remote.run(["rm", "-rf", d])
