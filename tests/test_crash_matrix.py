"""The controller dies (SIGKILL: the OOM killer, a lost SSH session) at every phase of a run;
the next run on the same cluster must still tell the truth, and `cluster heal` + `cluster
down` must leave nothing behind.

Each killed run switches on raft-kv's `stale-read` bug; each run after it asks for the
correct server. Before the clean slate, the second run found the first one's servers alive,
left them alone and tested them (and their data) instead: a verdict about the wrong system.
Here every run is a real `python -m dsjepsen test` subprocess on one named local cluster made
with `dsjepsen cluster up`, killed when its history or log shows the phase.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet

# about 2 minutes on an idle 2-core machine; the timeout leaves room for a loaded one
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

NODES = 3
SHORT = ["--nemesis-interval", "1", "--rate", "50", "--keys", "3"]
#: the killed runs only need to reach their phase; the checked runs only need a verdict
KILLED_TIME = ["--time-limit", "4"]
CHECKED_TIME = ["--time-limit", "3"]


def _dsj(*argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def named_cluster() -> Iterator[str]:
    """A cluster made by `dsjepsen cluster up`; healed and taken down by the CLI at the end,
    and checked to leave nothing, also when the test fails."""
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name("k")
    up = _dsj("cluster", "up", "--name", name, "--node-count", str(NODES))
    try:
        assert up.returncode == 0, up.stderr
        yield name
    finally:
        _dsj("cluster", "heal", "--name", name)
        _dsj("cluster", "down", "--name", name)
        left = localnet.remains(name)
        if left:
            localnet.down(name)
        assert not left, f"cluster {name} left behind {left}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _history(run_dir: Path) -> list[dict]:
    ops = []
    for line in _read(run_dir / "history.jsonl").splitlines():
        with contextlib.suppress(ValueError):
            ops.append(json.loads(line))
    return ops


def _nemesis_ok(f: str) -> Callable[[Path, str], bool]:
    def seen(run_dir: Path, cluster: str) -> bool:
        return any(
            op.get("process") == "nemesis" and op.get("type") == "ok" and op.get("f") == f
            for op in _history(run_dir)
        )

    return seen


def _log_says(text: str) -> Callable[[Path, str], bool]:
    return lambda run_dir, cluster: text in _read(run_dir / "dsjepsen.log")


def _mid_setup(run_dir: Path, cluster: str) -> bool:
    """Setup has started a server on some node and is still waiting for the cluster."""
    workdirs = localnet.state_root() / cluster
    started = any(workdirs.glob("n*/raft-kv/server.pid"))
    return started and not _history(run_dir)


#: phase -> (extra options of the killed run, the condition to kill it at)
PHASES: dict[str, tuple[list[str], Callable[[Path, str], bool]]] = {
    "setup": ([], _mid_setup),
    "partition active": (["--nemesis", "partition-majority"], _nemesis_ok("start-partition")),
    "pause active": (["--nemesis", "pause"], _nemesis_ok("start-pause")),
    "final reads": (["--nemesis", "partition-one"], _log_says("final reads:")),
}


def _kill_at(
    cluster: str, store: Path, extra: list[str], when: Callable[[Path, str], bool]
) -> Path:
    """Start a buggy run and SIGKILL the controller once `when(run_dir)` holds."""
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--bug", "stale-read",
        "--cluster-name", cluster, "--store", str(store), "--seed", "7", *SHORT, *KILLED_TIME,
        *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_dir = store / "latest"
    deadline = time.monotonic() + 180
    try:
        while not (run_dir.exists() and when(run_dir.resolve(), cluster)):
            if proc.poll() is not None:
                raise AssertionError(f"run ended before the phase: {proc.stderr.read()[-500:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the phase never came")
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL
    return run_dir.resolve()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _namespace_pids(cluster: str) -> list[int]:
    return [p for i in range(1, NODES + 1) for p in localnet.netns_pids(f"dsj-{cluster}-n{i}")]


def test_a_killed_controller_never_falsifies_the_next_verdict(
    named_cluster: str, tmp_path: Path
) -> None:
    cluster = named_cluster
    for k, (phase, (extra, when)) in enumerate(PHASES.items()):
        killed = _kill_at(cluster, tmp_path / f"killed{k}", extra, when)
        left = _namespace_pids(cluster)
        if phase != "setup":  # a dead controller leaves its servers running
            assert left, phase
        store = tmp_path / f"next{k}"
        res = _dsj(
            "test", "--target", "raft-kv", "--nemesis", "partition-majority",
            "--cluster-name", cluster, "--store", str(store), "--seed", str(20 + k), *SHORT,
            *CHECKED_TIME, "--json", timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, f"after a kill during {phase}: {res.stdout[-800:]}"
        assert json.loads(res.stdout)["valid"] is True
        run_dir = (store / "latest").resolve()
        log = _read(run_dir / "dsjepsen.log")
        for pid in left:  # every server of the killed run was stopped, and said so
            assert not _alive(pid), (phase, pid)
        if left:
            assert "left by an earlier run" in log and "stale-read" in log, phase
        for node in range(1, NODES + 1):  # the new run tested the correct server only
            server_log = _read(run_dir / "nodes" / f"n{node}" / "server.log")
            assert "bugs: none" in server_log and "stale-read" not in server_log, (phase, node)
        assert killed != run_dir

    # the last word: a run killed with a fault active, then only the CLI cleans up
    _kill_at(cluster, tmp_path / "last", ["--nemesis", "pause"], _nemesis_ok("start-pause"))
    pids = _namespace_pids(cluster)
    assert pids
    heal = _dsj("cluster", "heal", "--name", cluster)
    assert heal.returncode == 0, heal.stderr
    for pid in pids:
        assert f": stopped: {pid} " in heal.stdout, heal.stdout
        assert not _alive(pid)
    assert f"{len(pids)} processes stopped" in heal.stdout
    assert _namespace_pids(cluster) == []
    down = _dsj("cluster", "down", "--name", cluster)
    assert down.returncode == 0, down.stderr
    assert localnet.remains(cluster) == []
    workdir = str(localnet.state_root() / cluster)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        assert workdir.encode() not in _read_bytes(cmdline), cmdline


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
