"""`dsjepsen test` with the CRDT workloads on real local namespace clusters: crdt-kv under
iptables partitions and SIGKILL, each bug caught by the fault that exposes it, and the
reference store standing in for a student's own server through `--target http-kv`.

Each run is short (12-15 s of load). The correct store must be valid and report its time to
converge; each buggy one invalid, naming what it lost and where.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from dsjepsen.cli import build_parser
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.config import TestConfig, config_from_args
from dsjepsen.harness.runner import Runner, RunOutcome

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CRDT_SERVER_CMD = (
    f"{shlex.quote(sys.executable)} -m dsjepsen.targets.crdt_kv.server --id {{node}} "
    "--listen 0.0.0.0:{port} --peers {peers} --data-dir {data_dir}"
)


def make_config(store: Path, *argv: str) -> TestConfig:
    full = ["test", "--store", str(store), *argv]
    return config_from_args(build_parser().parse_args(full), argv=["dsjepsen", *full])


def run_test(cluster: Cluster, store: Path, *argv: str) -> RunOutcome:
    return Runner(make_config(store, *argv), cluster).run()


def checks(out: RunOutcome) -> dict:
    return json.loads((out.run_dir / "results.json").read_text())["checks"]


def test_g_set_under_partitions_is_valid_and_reports_the_time_to_converge(
    pooled_cluster, tmp_path: Path
) -> None:
    cluster = pooled_cluster(node_count=5)
    out = run_test(
        cluster, tmp_path, "--target", "crdt-kv", "--workload", "g-set",
        "--nemesis", "partition-majority", "--time-limit", "15", "--nemesis-interval", "4",
        "--seed", "1",
    )  # fmt: skip
    assert out.valid is True, out.results.get("reason")
    c = checks(out)
    assert {"set-full", "convergence", "stats", "vacuous"} <= c.keys()
    conv = c["convergence"]["details"]
    assert (
        0 <= conv["time_to_converge_s"] < 30 and "converged on every node (5)" in (conv["summary"])
    )
    assert c["set-full"]["details"]["outcomes"]["lost"] == 0
    history = read_jsonl(out.run_dir / "history.jsonl")
    final = [op for op in history.ops[out.results["final_reads_from_index"] :] if op.is_client]
    assert {op.node for op in final} == set(cluster.names)


def test_lww_set_is_caught_naming_a_lost_element_and_the_replica_that_lost_it(
    pooled_cluster, tmp_path: Path
) -> None:
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "crdt-kv", "--bug", "lww-set", "--workload", "g-set",
        "--nemesis", "partition-majority", "--time-limit", "12", "--nemesis-interval", "3",
        "--seed", "2",
    )  # fmt: skip
    assert out.valid is False and out.exit_code == 1
    lost = checks(out)["set-full"]["anomalies"][0]
    assert lost["type"] == "lost" and lost["node"] in cluster.names
    assert "was lost" in lost["message"] and f"lost by {lost['node']}" in lost["message"]


@pytest.mark.parametrize(
    ("workload", "bug", "nemesis", "caught_by"),
    [
        ("g-counter", "sum-merge", "partition-majority", "counter"),
        ("pn-counter", "no-anti-entropy", "partition-majority", "convergence"),
        ("g-counter", "no-anti-entropy", "partition-majority", "counter"),
        ("g-set", "volatile", "kill-all", "set-full"),
    ],
)
def test_each_bug_is_caught_under_the_fault_that_exposes_it(
    pooled_cluster, tmp_path: Path, workload: str, bug: str, nemesis: str, caught_by: str
) -> None:
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "crdt-kv", "--bug", bug, "--workload", workload,
        "--nemesis", nemesis, "--time-limit", "12", "--nemesis-interval", "3", "--seed", "3",
        "--convergence-timeout", "5",
    )  # fmt: skip
    assert out.valid is False, out.results.get("reason")
    assert checks(out)[caught_by]["valid"] is False


@pytest.mark.parametrize("workload", ["g-counter", "pn-counter"])
def test_counters_are_valid_under_partitions_and_kills(
    pooled_cluster, tmp_path: Path, workload: str
) -> None:
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "crdt-kv", "--workload", workload,
        "--nemesis", "partition-majority,kill-all", "--time-limit", "14",
        "--nemesis-interval", "3", "--seed", "4",
    )  # fmt: skip
    assert out.valid is True, out.results.get("reason")


def test_a_students_crdt_store_through_http_kv(pooled_cluster, tmp_path: Path) -> None:
    """The reference store as a student's own, through --target http-kv. Needs HttpKvTarget to
    speak the set and counter fs (ContractClient) and to accept a set round trip at setup
    (contract_client.setup_round_trip); until then the run is refused before it starts."""
    cluster = pooled_cluster(node_count=3)
    common = ["--target", "http-kv", "--workload", "g-set", "--nemesis", "partition-majority",
              "--time-limit", "12", "--nemesis-interval", "3", "--seed", "5"]  # fmt: skip
    out = run_test(cluster, tmp_path, *common, "--server-cmd", CRDT_SERVER_CMD)
    assert out.valid is True, out.results.get("reason")
    out = run_test(cluster, tmp_path, *common, "--server-cmd", CRDT_SERVER_CMD + " --bug lww-set")
    assert out.valid is False and checks(out)["set-full"]["valid"] is False
