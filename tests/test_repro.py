"""`dsjepsen repro RUN_DIR` (issue 30): the recorded test runs again, on a fresh cluster of the
same kind, and the same anomaly is counted; a correct run's repetitions are not."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.commands.repro import recorded_test_argv
from dsjepsen.errors import ConfigError


def test_the_recorded_command_line_keeps_the_test_and_drops_the_run():
    test = {
        "argv": ["dsjepsen", "test", "--target", "raft-kv", "--cluster-name", "a1", "--json",
                 "--store=/tmp/s", "--seed", "5", "--test-count", "3", "--nemesis", "kill"],
        "seed": 5,
    }  # fmt: skip
    assert recorded_test_argv(test) == ["--target", "raft-kv", "--seed", "5", "--nemesis", "kill"]
    # a command line recorded without its seed gets the run's
    assert recorded_test_argv({"argv": ["dsjepsen", "test"], "seed": 9}) == ["--seed", "9"]
    with pytest.raises(ConfigError):
        recorded_test_argv({"argv": ["dsjepsen", "check", "x"]})


def dsjepsen(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_missing_run_directory_is_one_line_and_254(tmp_path):
    out = dsjepsen("repro", str(tmp_path / "nope"))
    assert out.returncode == 254 and "not a directory" in out.stderr
    (tmp_path / "d").mkdir()
    out = dsjepsen("repro", str(tmp_path / "d"))
    assert out.returncode == 254 and "not a readable run directory" in out.stderr
    assert dsjepsen("repro", str(tmp_path / "d"), "--times", "0").returncode == 254


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("bug", "expected_exit", "expected"), [
    ("txn-no-isolation", 1, "reproduced 2 of 2"),
    (None, 0, "reproduced 0 of 1"),
])  # fmt: skip
def test_repro_counts_the_same_anomaly(tmp_path: Path, bug, expected_exit, expected):
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    name = "rq" + os.urandom(2).hex()
    store = tmp_path / "store"
    args = ["test", "--target", "raft-kv", "--workload", "list-append", "--node-count", "3",
            "--time-limit", "6", "--cluster-name", name, "--store", str(store),
            # two keys at 400 ops/s: transactions overlap on every run (about 120 anomalies
            # each time; at 5 keys and 100 ops/s some 6 s runs had none)
            "--key-count", "2", "--rate", "400"]  # fmt: skip
    if bug:
        args += ["--bug", bug]
    try:
        first = dsjepsen(*args)
    finally:
        localnet.down(name)
    assert first.returncode == expected_exit, first.stderr[-2000:]
    run_dir = (store / "latest").resolve()
    times = "2" if bug else "1"
    out = dsjepsen("repro", str(run_dir), "--times", times, "--store", str(tmp_path / "again"))
    assert out.returncode == expected_exit, out.stdout + out.stderr[-2000:]
    assert expected in out.stdout
    rows = [json.loads(line) for line in (run_dir / "repro.jsonl").read_text().splitlines()]
    assert len(rows) == int(times) and all(r["same"] is bool(bug) for r in rows)
    # each repetition ran the recorded seed on its own cluster, and left no cluster behind
    # (its own: the other parametrization may be repeating its run on another worker now)
    seed = json.loads((run_dir / "test.json").read_text())["seed"]
    made = []
    for d in (tmp_path / "again").glob("*/2*"):
        test = json.loads((d / "test.json").read_text())
        assert test["seed"] == seed
        made.append(test["cluster"]["name"])
    assert len(set(made)) == int(times) and all(n.startswith("rp") for n in made), made
    assert not set(made) & set(localnet.list_clusters())


def test_shrink_edits_one_option_at_a_time():
    from dsjepsen.commands.shrink import candidates, option, with_option

    argv = ["--target", "raft-kv", "--nemesis", "kill,partition-leader", "--keys", "4",
            "--time-limit=20", "--node-count", "5"]  # fmt: skip
    assert option(argv, "key-count") == "4" and option(argv, "time-limit") == "20"
    assert with_option(argv, "time-limit", "10")[-2:] == ["--time-limit", "10"]
    assert "--time-limit=20" not in with_option(argv, "time-limit", "10")
    test = {"options": {"time_limit": 20.0, "rate": 100.0}, "clients": 10, "nodes": [1] * 5}
    changes = [c for c, _ in candidates(argv, test, ["nemesis", "time-limit", "node-count",
                                                     "concurrency", "key-count", "rate"])]  # fmt: skip
    assert changes == [
        "drop fault kill", "drop fault partition-leader", "no faults", "time limit 20 -> 10 s",
        "nodes 5 -> 4", "workers 10 -> 5", "keys 4 -> 2", "rate 100 -> 50",
    ]  # fmt: skip


def test_shrink_refuses_a_run_that_did_not_fail(tmp_path):
    (tmp_path / "test.json").write_text(json.dumps({"argv": ["dsjepsen", "test"], "seed": 1}))
    (tmp_path / "results.json").write_text(json.dumps({"valid": True, "checks": {}}))
    out = dsjepsen("shrink", str(tmp_path))
    assert out.returncode == 254 and "did not fail" in out.stderr
    assert dsjepsen("shrink", str(tmp_path), "--dimensions", "nodes").returncode == 254


@pytest.mark.cluster
@pytest.mark.slow
def test_shrink_drops_the_fault_and_halves_the_time_and_resumes(tmp_path: Path):
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    name = "rs" + os.urandom(2).hex()
    store = tmp_path / "store"
    try:
        first = dsjepsen("test", "--target", "raft-kv", "--workload", "list-append",
                         "--bug", "txn-no-isolation", "--nemesis", "partition-leader",
                         "--time-limit", "12", "--nemesis-interval", "5", "--node-count", "3",
                         # two keys at 300 ops/s: every try overlaps transactions (at the
                         # defaults a 6 s try sometimes saw no anomaly)
                         "--key-count", "2", "--rate", "300",
                         "--cluster-name", name, "--store", str(store))  # fmt: skip
    finally:
        localnet.down(name)
    assert first.returncode == 1, first.stderr[-2000:]
    run_dir = (store / "latest").resolve()
    out = dsjepsen("shrink", str(run_dir), "--dimensions", "nemesis,time-limit", "--tries", "3")
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    # a candidate is accepted at its first try that fails the same way (real runs differ)
    assert re.search(r"no faults: 1 of [123] tries failed the same way, accepted", out.stdout)
    last = out.stdout.strip().splitlines()
    assert last[-2].startswith("minimal: dsjepsen test ") and "--nemesis none" in last[-2]
    assert "--time-limit 6" in last[-2]
    state = json.loads((run_dir / "shrink.json").read_text())
    assert state["done"] and [s["accepted"] for s in state["steps"]] == [True, True]
    # the run's RCA and report now carry the minimal reproduction
    md = (run_dir / "rca.md").read_text()
    assert "## Minimal reproduction" in md and last[-2].removeprefix("minimal: ") in md
    assert 'id="minimal-repro"' in (run_dir / "report.html").read_text()
    # resumed: a finished search runs nothing more and says the same
    again = dsjepsen("shrink", str(run_dir), "--dimensions", "nemesis,time-limit")
    assert again.stdout.strip().splitlines()[-2] == last[-2]
    assert "accepted" not in again.stdout


@pytest.mark.cluster
def test_a_skipped_fault_window_is_not_injected_and_the_next_keeps_its_time(tmp_path: Path):
    """--nemesis-skip 2 on a 9 s run with a fault window every 4 s: the window at 2 s runs,
    the one at 6 s does not (no nemesis op at all then), and test.json keeps the option so
    repro and shrink run the same schedule."""
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    name = "rk" + os.urandom(2).hex()
    try:
        out = dsjepsen("test", "--target", "raft-kv", "--node-count", "3", "--nemesis",
                       "partition-majority", "--nemesis-interval", "2", "--time-limit", "9",
                       "--nemesis-skip", "2", "--cluster-name", name, "--store", str(tmp_path),
                       "--seed", "3")  # fmt: skip
    finally:
        localnet.down(name)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = (tmp_path / "latest").resolve()
    history = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    nemesis = [op for op in history if op["process"] == "nemesis" and op["type"] == "invoke"]
    assert [op["f"] for op in nemesis] == ["start-partition", "stop-partition"]
    assert 1.5e9 < nemesis[0]["time"] < 3.5e9 and nemesis[1]["time"] < 5.5e9
    test = json.loads((run_dir / "test.json").read_text())
    assert test["options"]["nemesis_skip"] == [2] and "--nemesis-skip" in test["options"]["argv"]
