"""Who owns the local cluster: a `dsjepsen test` that had to create it removes it at the end
(nothing left behind), while a cluster the user brought up beforehand is left for the next
test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet

pytestmark = [pytest.mark.cluster]


def _dsjepsen_test(store: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--cluster-name",
        name, "--node-count", "3", "--time-limit", "3", "--rate", "30", "--seed", "5",
        "--store", str(store), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)


def test_cluster_created_on_demand_is_removed_after_the_test(tmp_path: Path) -> None:
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name()
    try:
        proc = _dsjepsen_test(tmp_path, name)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"removed the local cluster {name}" in proc.stderr
        assert localnet.read_state(name) is None
        assert localnet.remains(name) == []
    finally:
        localnet.down(name)


def test_existing_cluster_is_left_up(make_cluster, tmp_path: Path) -> None:
    cluster = make_cluster(node_count=3)
    proc = _dsjepsen_test(tmp_path, cluster.name)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "removed the local cluster" not in proc.stderr
    assert localnet.status(cluster.name)["exists"]
