"""The controller dies (SIGKILL: the OOM killer, a lost SSH session) at every phase of a run;
the next run on the same cluster must still tell the truth, and `cluster heal` + `cluster
down` must leave nothing behind.

Each killed run switches on raft-kv's `stale-read` bug; each run after it asks for the
correct server. Before the clean slate, the second run found the first one's servers alive,
left them alone and tested them (and their data) instead: a verdict about the wrong system.
Here every run is a real `python -m dsjepsen test` subprocess on one named local cluster made
with `dsjepsen cluster up`, killed when its history, log or run directory shows the phase. Heal,
the final reads and check last a fraction of a second, too short to land in by watching (a kill
meant for the final reads once landed in the teardown after them), so those runs set the
harness's testing aid DSJEPSEN_TEST_HOLD, which makes the phase log that it holds and wait;
rendering the report takes about a second of its own and is caught as it is.

Nothing recorded may be lost either: after every kill the run directory holds a history
dsjepsen reads, and a run killed once its history was complete (heal, check, report) can still
be checked and reported on afterwards, to the same verdict the run itself reached.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dsjepsen.cluster import faultmount, localnet
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness import phases
from dsjepsen.harness.phases import HOLD_ENV
from dsjepsen.history import History

# about 2 minutes on a busy 2-core machine; the timeout leaves room for a much busier one
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(900)]

NODES = 3
SHORT = ["--nemesis-interval", "1", "--rate", "50", "--key-count", "3"]
#: the killed runs only need to reach their phase; the checked runs only need a verdict
KILLED_TIME = ["--time-limit", "4"]
CHECKED_TIME = ["--time-limit", "3"]
#: the runs killed once their clients stopped only need some history to read, heal and check
#: (one fault of the interval above fits in 2 s; a run with no faults needs less)
LATE_SECONDS = 2
CHECK_SECONDS = 1
#: far longer than a kill takes to come: a held phase never ends on its own in the test
HOLD_SECONDS = 120


def _dsj(*argv: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _dsj_together(*argvs: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Commands on one run directory that touch none of each other's files, run at once (two
    cores); none is left running if one hangs."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dsjepsen", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    done = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=120)
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return done


@pytest.fixture
def named_cluster() -> Iterator[str]:
    """A cluster made by `dsjepsen cluster up`; healed and taken down by the CLI at the end,
    and checked to leave nothing, also when the test fails."""
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name("k")
    up = _dsj("cluster", "up", "--cluster-name", name, "--node-count", str(NODES))
    try:
        assert up.returncode == 0, up.stderr
        yield name
    finally:
        _dsj("cluster", "heal", "--cluster-name", name)
        _dsj("cluster", "down", "--cluster-name", name)
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


def _log_between(before: str, after: str) -> Callable[[Path], bool]:
    """The log shows `before` and not yet `after`: the run died between the two."""

    def between(run_dir: Path) -> bool:
        log = _read(run_dir / "dsjepsen.log")
        return before in log and after not in log

    return between


def _mid_setup(run_dir: Path, cluster: str) -> bool:
    """Setup has started a server on some node and is still waiting for the cluster."""
    workdirs = localnet.state_root() / cluster
    started = any(workdirs.glob("n*/raft-kv/server.pid"))
    return started and not _history(run_dir)


def _results_written(run_dir: Path, cluster: str) -> bool:
    """The verdict is on disk: `dsjepsen test` renders the report next, which takes about a
    second (pandas, jinja2, the charts): the kill lands in it."""
    return (run_dir / "results.json").exists()


@dataclass(frozen=True)
class KillPoint:
    """Where a buggy run is killed: its options, the condition that shows the phase, the phase
    the harness holds (DSJEPSEN_TEST_HOLD), and what must still be untrue after the kill, which
    proves the kill landed before the phase was over."""

    extra: list[str]
    when: Callable[[Path, str], bool]
    hold: str | None = None
    unfinished: Callable[[Path], bool] = lambda run_dir: True
    time: list[str] = field(default_factory=lambda: list(KILLED_TIME))
    #: the clients had stopped: every op is complete, and the servers may be gone already
    late: bool = False


def _late_time(seconds: int = LATE_SECONDS) -> list[str]:
    """A phase after the clients' time is reached sooner with less of it."""
    return ["--time-limit", str(seconds)]


def _late(
    extra: list[str], when: Callable[[Path, str], bool], unfinished: Callable[[Path], bool], *,
    hold: str | None = None, seconds: int = LATE_SECONDS,
) -> KillPoint:  # fmt: skip
    return KillPoint(extra, when, hold, unfinished, _late_time(seconds), late=True)


PHASES: dict[str, KillPoint] = {
    "setup": KillPoint([], _mid_setup),
    "partition active": KillPoint(
        ["--nemesis", "partition-majority"], _nemesis_ok("start-partition")
    ),
    "pause active": KillPoint(["--nemesis", "pause"], _nemesis_ok("start-pause")),
    # the fault file system under every node's data, its stall active: the controller that
    # mounted it is gone, the mounts stay, and the next run's clean slate must take them away
    "disk stall active": KillPoint(["--nemesis", "disk-stall"], _nemesis_ok("start-disk")),
    "heal": _late(
        ["--nemesis", "partition-one"],
        _log_says("holding heal for"),
        _log_between("time limit reached", "healed all faults after the test"),
        hold="heal",
    ),
    "final reads": KillPoint(
        ["--nemesis", "partition-one"],
        _log_says("holding final-reads for"),
        hold="final-reads",
        unfinished=_log_between("final reads:", "tearing down"),
        time=_late_time(),
    ),
    "check": _late(
        [],
        _log_says("holding check for"),
        lambda d: (
            _log_between("tearing down", "checks took")(d) and not (d / "results.json").exists()
        ),
        hold="check",
        seconds=CHECK_SECONDS,
    ),
    "report": _late(
        [],
        _results_written,
        lambda d: not (d / "report.html").exists(),
        seconds=CHECK_SECONDS,
    ),
}


def _kill_at(cluster: str, store: Path, point: KillPoint) -> Path:
    """Start a buggy run and SIGKILL the controller once `point.when(run_dir)` holds."""
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--bug", "stale-read",
        "--cluster-name", cluster, "--store", str(store), "--seed", "7", *SHORT, *point.time,
        *point.extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != HOLD_ENV}
    if point.hold:
        env[HOLD_ENV] = f"{point.hold}:{HOLD_SECONDS}"
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    run_dir = store / "latest"
    deadline = time.monotonic() + 180
    try:
        while not (run_dir.exists() and point.when(run_dir.resolve(), cluster)):
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
    run_dir = run_dir.resolve()
    assert point.unfinished(run_dir), f"the kill came after the phase ended: {run_dir}"
    return run_dir


def _assert_recorded(run_dir: Path, point: KillPoint) -> History:
    """What the killed run recorded is on disk and readable: test.json whole, the history
    parsed by dsjepsen's own reader (a line cut by the kill is the only thing it may drop), and
    after the clients stopped, every op in it complete."""
    test = json.loads((run_dir / "test.json").read_text())
    assert test["seed"] == 7 and test["options"]["options"]["bug"] == ["stale-read"]
    history = read_jsonl(run_dir / "history.jsonl")
    assert len(history.ops) == len(_history(run_dir))
    if point.late:
        assert history.warnings == [], history.warnings
        open_ops = [o for o in history.operations(include_nemesis=True) if o.complete is None]
        assert open_ops == [], open_ops[:3]
    return history


def _assert_checkable(run_dir: Path, history: History) -> None:
    """A run killed in check or report lost nothing: its final reads are in the history, and
    `dsjepsen check` and `dsjepsen report` work on what it left; where the run wrote its
    verdict, the check reaches the same one."""
    said = _read(run_dir / "dsjepsen.log").split("final reads: ", 1)[1]
    per_node = int(said.split(" ops through each of ", 1)[0])
    final = [
        op for op in history.client_ops()
        if op.type == "ok" and op.f == "read" and op.time > CHECK_SECONDS * 1e9
    ]  # fmt: skip
    for node in range(1, NODES + 1):
        assert len([op for op in final if op.node == f"n{node}"]) >= per_node, (run_dir, node)
    checked, report = _dsj_together(
        ["check", str(run_dir / "history.jsonl"), "--json"], ["report", str(run_dir)]
    )
    verdict = json.loads(checked.stdout)
    assert verdict["valid"] in (True, False), checked.stdout[-500:]
    assert checked.returncode == (0 if verdict["valid"] else 1), checked.stderr
    if (run_dir / "results.json").exists():
        ran = json.loads((run_dir / "results.json").read_text())["checks"]["linearizable"]
        assert (verdict["valid"], verdict["reason"]) == (ran["valid"], ran["reason"])
    assert report.returncode == 0, report.stderr
    assert (run_dir / "report.html").stat().st_size > 10_000
    for node in range(1, NODES + 1):  # the servers' logs were collected before the check
        assert "bugs: stale-read" in _read(run_dir / "nodes" / f"n{node}" / "server.log"), node


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _faultfs_mounts() -> list[str]:
    """Every fault file system mounted on this machine (`mount | grep faultfs`)."""
    res = subprocess.run(["mount"], capture_output=True, text=True, timeout=30, check=True)
    return [line for line in res.stdout.splitlines() if "faultfs" in line]


def _namespace_pids(cluster: str) -> list[int]:
    return [p for i in range(1, NODES + 1) for p in localnet.netns_pids(f"dsj-{cluster}-n{i}")]


def test_a_killed_controller_never_falsifies_the_next_verdict(
    named_cluster: str, tmp_path: Path
) -> None:
    cluster = named_cluster
    root = str(localnet.state_root() / cluster)
    for k, (phase, point) in enumerate(PHASES.items()):
        killed = _kill_at(cluster, tmp_path / f"killed{k}", point)
        history = _assert_recorded(killed, point)
        left = _namespace_pids(cluster)
        if phase in ("check", "report"):  # the run had torn its servers down before checking
            assert not left, phase
            _assert_checkable(killed, history)
        elif phase != "setup":  # a dead controller leaves its servers running
            assert left, phase
        if phase == "disk stall active":  # and its fault file systems mounted
            assert len(faultmount.mounts_under(root)) == NODES, faultmount.mounts_under(root)
        store = tmp_path / f"next{k}"
        res = _dsj(
            "test", "--target", "raft-kv", "--nemesis", "partition-majority",
            "--cluster-name", cluster, "--store", str(store), "--seed", str(20 + k), *SHORT,
            *CHECKED_TIME, "--json", timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, f"after a kill during {phase}: {res.stderr[-1500:]}"
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
            if phase != "setup":  # and kept the killed run's server log on the node
                kept = localnet.state_root() / cluster / f"n{node}" / "raft-kv" / "server.log"
                assert "bugs: stale-read" in _read(kept.with_name("server.log.previous")), node
        assert killed != run_dir
        # nothing of a disk fault outlives the run that cleared it (`mount | grep faultfs`)
        assert _faultfs_mounts() == [], (phase, _faultfs_mounts())
        if phase == "disk stall active":
            # (a fault file system that takes its TERM unmounts itself on the way out)
            assert log.count("cleared stopped fault file system pid") == NODES, phase

    # the last word: a run killed with a fault active, then only the CLI cleans up
    _kill_at(cluster, tmp_path / "last", PHASES["pause active"])
    pids = _namespace_pids(cluster)
    assert pids
    heal = _dsj("cluster", "heal", "--cluster-name", cluster)
    assert heal.returncode == 0, heal.stderr
    for pid in pids:
        assert f": stopped: {pid} " in heal.stdout, heal.stdout
        assert not _alive(pid)
    assert f"{len(pids)} processes stopped" in heal.stdout
    assert _namespace_pids(cluster) == []
    down = _dsj("cluster", "down", "--cluster-name", cluster)
    assert down.returncode == 0, down.stderr
    assert localnet.remains(cluster) == []
    workdir = str(localnet.state_root() / cluster)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        assert workdir.encode() not in _read_bytes(cmdline), cmdline


def test_the_hold_waits_only_in_the_phase_it_names(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The testing aid the matrix relies on: it holds the named phase, says so, and ignores
    what is not a number of seconds it can wait, rather than failing a run over it."""
    caplog.set_level(logging.DEBUG, logger="dsjepsen")
    monkeypatch.setenv(HOLD_ENV, "check:0.3")
    started = time.monotonic()
    phases.hold("heal")
    assert time.monotonic() - started < 0.1 and not caplog.records
    phases.hold("check")
    assert time.monotonic() - started >= 0.3
    assert f"{HOLD_ENV}: holding check for 0.3s" in caplog.text
    for bad in ("check:nan", "check:-1", "check:soon", "check:", "check:inf"):
        monkeypatch.setenv(HOLD_ENV, bad)
        caplog.clear()
        started = time.monotonic()
        phases.hold("check")
        assert time.monotonic() - started < 0.1, bad
        assert f"{HOLD_ENV} ignored" in caplog.text, bad


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
