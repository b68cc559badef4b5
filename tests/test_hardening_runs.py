"""The adversarial probe's findings that need a real run (issue 22): the store's disk filling up
mid-run, an interrupt while faults are healed and the target torn down, and what an earlier
run left on the nodes being recorded (and healed) as what it was.

Real namespace clusters, real raft-kv servers, a real (small) tmpfs for the full disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.faketime import offset_path
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.targets.raft_kv.target import RaftKvTarget

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def dsjepsen(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dsjepsen", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def target_processes(cluster_name: str) -> int:
    return sum(n["processes"] for n in localnet.status(cluster_name)["nodes"])


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KiB tmpfs: a store on it fills up within a second of a run."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "dsj-small", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_under_the_store_is_one_line_and_an_unknown_verdict(pooled_cluster, small_disk):
    cluster = pooled_cluster(node_count=3)
    store = small_disk / "store"
    code, out, err = finish(
        dsjepsen(
            "test",
            "--cluster-name",
            cluster.name,
            "--node-count",
            "3",
            "--target",
            "raft-kv",
            "--store",
            str(store),
            "--rate",
            "300",
            "--time-limit",
            "20",
            "--nemesis",
            "partition-majority",
            "--nemesis-interval",
            "1",
        )  # fmt: skip
    )
    assert code == 255, err[-3000:]
    assert f"no space left on {small_disk}" in err, err[-3000:]
    assert "Logging error" not in err and "Traceback" not in err, err[-3000:]
    error_lines = [line for line in err.splitlines() if line.startswith("dsjepsen: error:")]
    assert len(error_lines) == 1, err[-3000:]
    run_dir = (store / "latest").resolve()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] == "unknown"
    assert "no space left" in results["reason"]
    # the history up to the full disk is kept and readable
    history = read_jsonl(run_dir / "history.jsonl")
    assert sum(op.is_client for op in history.ops) > 10
    assert not [p.name for p in run_dir.rglob("*") if p.name.endswith(".tmp") or "tmp" in p.suffix]
    assert not (run_dir / ".space-reserve").exists()
    # healed and torn down: no server left, no partition rule left
    assert target_processes(cluster.name) == 0
    assert all(n["iptables_rules"] == 0 for n in localnet.status(cluster.name)["nodes"])
    # a report on the full disk is one line too, and leaves no temporary file
    fill = small_disk / "fill"
    with open(fill, "wb") as f, pytest.raises(OSError):
        f.write(b"x" * (1 << 20))
    rc, _, rerr = finish(dsjepsen("report", str(run_dir)))
    assert rc == 255 and "no space left on" in rerr, rerr
    assert len(rerr.strip().splitlines()) == 1, rerr
    assert not [p for p in run_dir.iterdir() if ".tmp" in p.name]


def test_an_interrupt_during_teardown_still_ends_the_command(pooled_cluster, tmp_path):
    """Ctrl-C while tearing down: cleanup goes on to the end (nothing left behind), then the
    command stops with 130, and --test-count's later runs do not start."""
    cluster = pooled_cluster(node_count=3)
    store = tmp_path / "store"
    proc = dsjepsen(
        "test", "--cluster-name", cluster.name, "--node-count", "3", "--target", "raft-kv",
        "--store", str(store), "--time-limit", "2", "--test-count", "4",
        env={"DSJEPSEN_TEST_HOLD": "teardown:4"},
    )  # fmt: skip
    deadline = time.monotonic() + 90
    log = None
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list(store.glob("raft-kv-*/2*/dsjepsen.log"))
        if logs and "holding teardown" in logs[0].read_text():
            log = logs[0]
            break
        time.sleep(0.2)
    assert log is not None, "the run never reached its teardown"
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 130, err[-3000:]
    assert "please wait" in err
    runs = [d for d in store.glob("raft-kv-*/*") if not d.is_symlink()]
    assert len(runs) == 1, runs
    results = json.loads((runs[0] / "results.json").read_text())
    assert results["valid"] == "unknown" and results["interrupted"] is True
    assert "tearing down raft-kv" in log.read_text()
    assert target_processes(cluster.name) == 0


def test_what_an_earlier_run_left_is_recorded_as_it_was(pooled_cluster, tmp_path):
    """A dead controller left a paused server, a partition chain and a clock offset: the next
    run heals them and test.json says what each was (the server paused, state T)."""
    cluster = pooled_cluster(node_count=3)
    old = RaftKvTarget()
    old.setup(cluster)
    paused_pid = old.pid(cluster, "n2")
    old.pause(cluster, "n2")
    cluster.remote("n3").run(["iptables", "-w", "-N", "DSJ-PARTITION"], timeout=10)
    cluster.remote("n3").run(["iptables", "-w", "-A", "INPUT", "-j", "DSJ-PARTITION"], timeout=10)
    offset = Path(offset_path(cluster.node("n1").workdir))
    offset.parent.mkdir(parents=True, exist_ok=True)
    offset.write_text("+42.500000\n")

    store = tmp_path / "store"
    code, out, err = finish(
        dsjepsen(
            "test",
            "--cluster-name",
            cluster.name,
            "--node-count",
            "3",
            "--target",
            "raft-kv",
            "--store",
            str(store),
            "--time-limit",
            "2",
        )  # fmt: skip
    )
    assert code == 0, err[-3000:]
    test = json.loads(((store / "latest").resolve() / "test.json").read_text())
    faults = {e["node"]: e["faults"] for e in test["leftovers"] if "faults" in e}
    assert any("DSJ-PARTITION" in line for line in faults["n3"]), faults
    assert "clock: offset +42.500000 s reset to 0" in faults["n1"], faults
    assert f"resumed: {paused_pid}" in faults["n2"], faults
    cleared = {e["node"]: e for e in test["leftovers"] if "processes" in e}
    (proc,) = [p for p in cleared["n2"]["processes"] if p["pid"] == paused_pid]
    assert proc["state"] == "T" and proc["paused"] is True
    assert float(offset.read_text()) == 0.0


def test_cluster_heal_after_a_crash_during_a_clock_fault(pooled_cluster):
    cluster = pooled_cluster(node_count=3)
    offsets = {"n1": "-27.882000", "n3": "+67.243000"}
    for node, value in offsets.items():
        path = Path(offset_path(cluster.node(node).workdir))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    rc, out, err = finish(dsjepsen("cluster", "status", "--cluster-name", cluster.name))
    assert rc == 0, err
    assert "-27.882s" in out and "+67.243s" in out, out
    rc, out, err = finish(dsjepsen("cluster", "heal", "--cluster-name", cluster.name))
    assert rc == 0, err
    assert "n1: clock: offset -27.882000 s reset to 0" in out, out
    assert "n3: clock: offset +67.243000 s reset to 0" in out, out
    assert "(2 faults undone" in out, out
    for node in offsets:
        assert float(Path(offset_path(cluster.node(node).workdir)).read_text()) == 0.0
    rc, out, _ = finish(dsjepsen("cluster", "status", "--cluster-name", cluster.name, "--json"))
    assert all(n["clock_offset"] == 0.0 for n in json.loads(out)["nodes"])
