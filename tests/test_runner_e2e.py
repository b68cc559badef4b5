"""`dsjepsen test` end to end on real local namespace clusters: real raft-kv and etcd
processes, real iptables partitions, real SIGKILL / SIGSTOP.

Each run is short (10-20 s of load); together they prove that a correct system passes under
faults, that known-buggy systems are caught on every seed tried, that faults really happen and
are undone, that an interrupted run cleans up and keeps its history, and that a run in which
nothing succeeded is `unknown`, never `valid`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.cli import build_parser
from dsjepsen.cluster import localnet
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.config import TestConfig, config_from_args
from dsjepsen.harness.runner import Runner, RunOutcome, _Hooks

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def make_config(store: Path, *argv: str) -> TestConfig:
    full = ["test", "--store", str(store), *argv]
    return config_from_args(build_parser().parse_args(full), argv=["dsjepsen", *full])


def run_test(cluster: Cluster, store: Path, *argv: str, hooks: _Hooks | None = None) -> RunOutcome:
    return Runner(make_config(store, *argv), cluster, hooks=hooks).run()


def node_processes(cluster: Cluster) -> dict[str, list[str]]:
    """{node: [process state letter, ...]} of every process in each node's namespace."""
    return {
        n.name: [localnet._proc_state(p) for p in localnet.netns_pids(n.extra["netns"])]
        for n in cluster.nodes
    }


def iptables_rules(cluster: Cluster) -> dict[str, list[str]]:
    out = {}
    for n in cluster.nodes:
        res = cluster.remote(n.name).run(["iptables", "-w", "-S"], timeout=10)
        out[n.name] = [ln for ln in res.stdout.splitlines() if ln.startswith(("-A", "-N"))]
    return out


def assert_run_dir(outcome: RunOutcome, cluster: Cluster) -> None:
    d = outcome.run_dir
    test = json.loads((d / "test.json").read_text())
    assert {"name", "argv", "options", "seed", "nodes", "versions", "start_time", "end_time"} <= (
        test.keys()
    )
    assert test["end_time"] and test["versions"]["dsjepsen"] and test["versions"]["target"]
    assert [n["name"] for n in test["nodes"]] == cluster.names
    results = json.loads((d / "results.json").read_text())
    assert results["valid"] == outcome.valid
    assert {"linearizable", "stats", "vacuous"} <= results["checks"].keys()
    history = read_jsonl(d / "history.jsonl")
    history.validate()
    assert (d / "dsjepsen.log").stat().st_size > 0
    for name in cluster.names:
        logs = list((d / "nodes" / name).iterdir())
        assert logs and all(p.stat().st_size > 0 for p in logs), name
    assert (d.parent.parent / "latest").resolve() == d.resolve()


def test_raft_kv_partition_majority_is_valid(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=5)
    out = run_test(
        cluster, tmp_path, "--target", "raft-kv", "--nemesis", "partition-majority",
        "--time-limit", "20", "--nemesis-interval", "5", "--seed", "1",
    )  # fmt: skip
    assert out.valid is True, out.results.get("reason")
    assert out.exit_code == 0
    assert_run_dir(out, cluster)
    history = read_jsonl(out.run_dir / "history.jsonl")
    starts = [op for op in history.nemesis_ops() if op.f == "start-partition" and op.type == "ok"]
    assert starts and all(op.value["fault"] == "partition-majority" for op in starts)
    assert "cut" in starts[0].value["description"]
    stats = out.results["stats"]["by_f"]
    assert stats["read"]["ok"] > 50 and stats["write"]["ok"] > 50
    # final reads of every key went through every node and are in the history
    final = [op for op in history.ops[out.results["final_reads_from_index"] :] if op.is_client]
    assert {op.node for op in final} == set(cluster.names)
    assert not any(iptables_rules(cluster).values()), "no partition rule may outlive the run"


# one seed: detection over 20 seeds is bench/detection.py's job (README: 20 of 20)
@pytest.mark.parametrize("seed", [11])
def test_raft_kv_stale_read_bug_is_caught(pooled_cluster, tmp_path: Path, seed: int) -> None:
    cluster = pooled_cluster(node_count=5)
    out = run_test(
        cluster, tmp_path, "--target", "raft-kv", "--bug", "stale-read",
        "--nemesis", "partition-majority", "--time-limit", "15", "--nemesis-interval", "4",
        "--seed", str(seed),
    )  # fmt: skip
    assert out.valid is False, out.results.get("reason")
    assert out.exit_code == 1
    lin = out.results["checks"]["linearizable"]
    assert lin["valid"] is False and lin["anomalies"]
    first = lin["anomalies"][0]
    assert first["type"] == "nonlinearizable" and first["op"]["f"] == "read"


def test_etcd_partition_majority_is_valid(pooled_cluster, tmp_path: Path) -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "etcd", "--nemesis", "partition-majority",
        "--time-limit", "20", "--nemesis-interval", "5", "--seed", "1",
    )  # fmt: skip
    assert out.valid is True, out.results.get("reason")
    assert_run_dir(out, cluster)


def test_etcd_serializable_reads_are_caught(pooled_cluster, tmp_path: Path) -> None:
    if shutil.which("etcd") is None:
        pytest.skip("etcd is not installed (apt-get install etcd-server)")
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "etcd", "--serializable-reads",
        "--nemesis", "partition-majority", "--time-limit", "20", "--nemesis-interval", "5",
        "--seed", "2",
    )  # fmt: skip
    assert out.valid is False, out.results.get("reason")
    assert out.results["checks"]["linearizable"]["anomalies"][0]["op"]["f"] == "read"


def _seed_drawing_both(names: list[str]) -> int:
    """A seed whose fault schedule starts each of `names` in its first two faults."""
    from dsjepsen.nemesis.schedule import FaultSchedule

    for seed in range(1000):
        s = FaultSchedule(names, 1.0, random.Random(f"{seed}:schedule"))
        first = [s.next_op() for _ in range(4)][0::2]
        if {op[1]["fault"] for op in first} == set(names):
            return seed
    raise AssertionError("no seed draws both faults")


def test_kill_and_pause_happen_and_are_undone(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=3)
    seed = _seed_drawing_both(["kill", "pause"])
    samples: list[tuple[float, dict[str, list[str]]]] = []
    stop = threading.Event()
    t0: list[float] = []

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - t0[0], node_processes(cluster)))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)

    def start_sampling(runner: Runner) -> None:
        t0.append(time.monotonic())
        sampler.start()

    # --leave-running: teardown would kill every process while the sampler still runs, and a
    # fault stopped at the time limit would then look as if it were never undone; the
    # pooled_cluster fixture removes the processes afterwards
    out = run_test(
        cluster, tmp_path, "--target", "raft-kv", "--nemesis", "kill,pause",
        "--time-limit", "16", "--nemesis-interval", "3", "--seed", str(seed),
        "--leave-running", hooks=_Hooks(after_setup=[start_sampling]),
    )  # fmt: skip
    # a fault stopped at the time limit is undone moments before run_test returns: keep
    # sampling the (still running) target a little longer so that "after" is observed
    time.sleep(1.5)
    stop.set()
    sampler.join(5)
    assert out.valid is True, out.results.get("reason")
    history = read_jsonl(out.run_dir / "history.jsonl")
    windows = []  # (fault, node, start s, stop s) from the nemesis completions
    open_: dict[str, Any] = {}
    for op in history.nemesis_ops():
        if op.type != "ok":
            continue
        t = op.time / 1e9  # history time 0 is (within ms) the sampler's time 0
        if op.f.startswith("start"):
            open_[op.value["fault"]] = (op.value["nodes"][0], t)
        elif op.value.get("fault") in open_:
            node, ts = open_.pop(op.value["fault"])
            windows.append((op.value["fault"], node, ts, t))
    assert {w[0] for w in windows} == {"kill", "pause"}, windows
    for fault, node, ts, te in windows:
        during = [s[node] for t, s in samples if ts + 0.1 < t < te - 0.1]
        after = [s[node] for t, s in samples if t > te + 0.5]
        if fault == "kill":
            assert any(not procs for procs in during), f"{node} still has a process while killed"
        else:
            assert any("T" in procs for procs in during), f"no stopped process on {node}"
        assert after and any(procs and "T" not in procs for procs in after), (
            f"{fault} on {node} was not undone"
        )
    assert not any("T" in procs for procs in node_processes(cluster).values())


def test_run_without_successful_ops_is_unknown(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=3)

    def kill_everything(runner: Runner) -> None:
        for node in runner.cluster.names:
            runner.target.kill(runner.cluster, node)

    out = run_test(
        cluster, tmp_path, "--target", "raft-kv", "--time-limit", "5",
        "--recovery-timeout", "2", "--seed", "3",
        hooks=_Hooks(after_setup=[kill_everything]),
    )  # fmt: skip
    assert out.valid == "unknown", out.results
    assert out.exit_code == 2
    assert out.results["checks"]["vacuous"]["valid"] == "unknown"
    assert "read op(s) succeeded" in out.results["reason"]
    assert out.results["stats"]["total"]["ok"] == 0
    assert out.results["stats"]["total"]["count"] > 10  # it did try


def test_requested_fault_that_never_happens_is_unknown(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=2)
    # a bridge needs three nodes: on two its every start fails, so it never takes effect
    out = run_test(
        cluster, tmp_path, "--target", "raft-kv", "--nemesis", "bridge",
        "--time-limit", "5", "--nemesis-interval", "2", "--seed", "4",
    )  # fmt: skip
    assert out.valid == "unknown"
    assert "fault bridge was requested but never took effect" in out.results["reason"]


def _cli_cluster_args(cluster: Cluster) -> list[str]:
    """How `dsjepsen test` is told to use this local cluster."""
    return ["--cluster-name", cluster.name, "--node-count", str(len(cluster.nodes))]


@pytest.mark.parametrize(
    ("sig", "leave_running"),
    [(signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGINT", "SIGTERM-leave-running"],
)
def test_interrupted_run_heals_tears_down_and_keeps_history(
    pooled_cluster, tmp_path: Path, sig: signal.Signals, leave_running: bool
) -> None:
    cluster = pooled_cluster(node_count=3)
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv",
        "--nemesis", "partition-majority,pause", "--nemesis-interval", "2",
        "--time-limit", "60", "--store", str(tmp_path), "--seed", "5",
        *_cli_cluster_args(cluster), *(["--leave-running"] if leave_running else []),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        history_file = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            found = list(tmp_path.glob("*/*/history.jsonl"))
            if found and sum(1 for line in found[0].open() if '"nemesis"' in line) >= 2:
                history_file = found[0]
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        assert history_file is not None, "no fault started within 90 s"
        # let a fault be in effect, then interrupt half-way
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert not any(iptables_rules(cluster).values()), iptables_rules(cluster)
    procs = node_processes(cluster)
    if leave_running:  # still running, and none of them left paused
        assert all(procs.values()) and not any("T" in p for p in procs.values()), procs
    else:
        assert not any(procs.values()), f"processes left behind after teardown: {procs}"
    history = read_jsonl(history_file)
    history.validate()
    assert len(history) > 10
    # the fault in effect at the interrupt was ended by a recorded stop op
    nemesis = [op for op in history.nemesis_ops() if op.type != "invoke"]
    assert nemesis[0].f.startswith("start") and nemesis[-1].f.startswith("stop"), nemesis
    results = json.loads((history_file.parent / "results.json").read_text())
    assert results["valid"] == "unknown" and "interrupted" in results["reason"]
    assert json.loads((history_file.parent / "test.json").read_text())["end_time"]


def test_harness_error_mid_run_tears_down_and_says_unknown(pooled_cluster, tmp_path: Path) -> None:
    from dsjepsen.errors import HarnessError

    cluster = pooled_cluster(node_count=3)

    def explode(runner: Runner) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(HarnessError, match="disk on fire"):
        run_test(
            cluster, tmp_path, "--target", "raft-kv", "--time-limit", "5", "--seed", "6",
            hooks=_Hooks(after_setup=[explode]),
        )  # fmt: skip
    run_dir = (tmp_path / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] == "unknown" and "disk on fire" in results["reason"]
    assert "disk on fire" in (run_dir / "dsjepsen.log").read_text()
    assert not any(node_processes(cluster).values()), "the target must be torn down"


def test_sticky_follower_is_sequentially_consistent_but_not_linearizable(
    pooled_cluster, tmp_path: Path
) -> None:
    """The textbook pair: reads from the client's own node (stale in a cut-off minority) are
    sequentially consistent, and the very same history is not linearizable."""
    from dsjepsen.api import check

    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "raft-kv", "--read-mode", "sticky-follower",
        "--consistency", "sequential", "--nemesis", "partition-majority",
        "--time-limit", "12", "--nemesis-interval", "3", "--key-count", "2", "--seed", "3",
    )  # fmt: skip
    assert out.valid is True, out.results.get("reason")
    text = json.dumps(out.results)
    assert "sequential" in text
    history = read_jsonl(out.run_dir / "history.jsonl")
    lin = check(history)
    assert lin.valid is False, lin.reason
