"""Redis with Sentinel failover (`--redis-failover sentinel`), end to end on a namespace
cluster: Jepsen's 2013 Redis result reproduced, and the same deployment valid when nothing
fails.

With the primary (n1) cut off from the four other nodes, the Sentinels there promote a
replica; meanwhile n1 still answers every client that reaches it, as the old primary, and at
the heal it becomes a replica of the new one and drops what it took. The g-set workload shows
those adds as lost elements, each acknowledged by n1 (the completion names the node the
client's Sentinel sent it to).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, *args: str, expect: int) -> tuple[dict, Path]:
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/setup installs it)")
    name = "rf" + os.urandom(2).hex()
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "redis", "--redis-failover",
        "sentinel", "--workload", "g-set", "--node-count", "5", "--cluster-name", name,
        "--store", str(tmp_path), "--json", *args,
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    finally:
        localnet.down(name)
    assert proc.returncode == expect, proc.stderr[-3000:]
    return json.loads(proc.stdout), (tmp_path / "latest").resolve()


@pytest.mark.cluster
@pytest.mark.slow
def test_sentinel_failover_loses_writes_the_cut_off_primary_acknowledged(tmp_path: Path) -> None:
    out, run_dir = run(
        tmp_path, "--nemesis", "partition-leader", "--nemesis-interval", "6",
        "--time-limit", "14", "--seed", "1", expect=1,
    )  # fmt: skip
    lost = [a for a in out["checks"]["set-full"]["anomalies"] if a["type"] == "lost"]
    assert lost, out["reason"]
    # every lost element was acknowledged (ok), by the primary that was cut off
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    start = next(
        o for o in history if o["process"] == "nemesis" and o["f"] == "start-partition"
        and o["type"] == "ok"
    )  # fmt: skip
    assert start["value"]["isolated"] == start["value"]["leader"] == "n1"
    for a in lost:  # by n1 itself, or by n1 for a client bound to another node
        assert a["add"]["type"] == "ok", a["message"]
        assert (a["add"]["acked_by"] or a["add"]["node"]) == "n1", a["message"]
        if a["add"]["acked_by"]:
            assert a["node"] == "n1" and a["message"].endswith("lost by n1."), a["message"]
    assert any(a["add"]["acked_by"] == "n1" for a in lost)
    # the Sentinels did fail over, and said so in their logs (collected with the run)
    logs = "".join(
        (run_dir / "nodes" / f"n{i}" / "sentinel.log").read_text(errors="replace")
        for i in range(2, 6)
    )
    assert "+switch-master dsj" in logs
    # the RCA names the node that acknowledged the lost adds
    assert "acknowledged by n1, completed ok" in (run_dir / "rca.md").read_text()


@pytest.mark.cluster
def test_sentinel_deployment_without_faults_is_valid(tmp_path: Path) -> None:
    out, run_dir = run(tmp_path, "--time-limit", "6", "--seed", "2", expect=0)
    assert out["valid"] is True, out["reason"]
    assert out["checks"]["set-full"]["details"]["lost_count"] == 0
    # every add went through the Sentinel's primary, n1, and the completions say so
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    adds = [o for o in history if o["f"] == "add" and o["type"] == "ok"]
    assert adds and {o["node"] for o in adds} == {"n1"}


def test_sentinel_with_redlock_is_refused_before_a_cluster_exists(tmp_path: Path) -> None:
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "redis", "--workload", "lock",
        "--redis-lock", "redlock", "--redis-failover", "sentinel", "--store", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 254
    assert "--redis-failover sentinel cannot go with --redis-lock redlock" in proc.stderr
    assert not list(tmp_path.iterdir())
