"""Transactions on raft-kv (issue 27): the `POST /txn` endpoint on a real server process, the
contract client's outcomes, and real runs on namespace clusters where each transactional bug
gives the anomalies it should while the correct store stays valid under faults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.history import Op
from dsjepsen.targets.contract_client import ContractClient, setup_round_trip, txn_answer_problem
from dsjepsen.targets.raft_kv.kv import KV, validate_txn
from dsjepsen.targets.raft_kv.txn import TxnExecutor
from dsjepsen.workloads.txn import FINAL_READS_PER_TXN, ListAppendWorkload, RwRegisterWorkload
from tests.test_raftkv_server import single  # noqa: F401 - the one-node server fixture


def txn(mops: list) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f="txn", value=mops)


def test_a_transaction_applies_at_one_point_with_its_own_writes_visible():
    kv = KV()
    verdict, done = kv.apply(
        {"op": "txn", "txn": [["append", 1, 1], ["r", 1, None], ["w", 2, 5], ["r", 3, None]]}
    )
    assert verdict == "ok" and done == [
        ["append", 1, 1],
        ["r", 1, [1]],
        ["w", 2, 5],
        ["r", 3, None],
    ]
    # an append to a register refuses the whole transaction: nothing of it applies
    assert kv.apply({"op": "txn", "txn": [["append", 1, 2], ["append", 2, 1]]})[0] == "invalid"
    assert kv.data == {"1": [1], "2": 5}
    for bad in ([], "x", [["r", 1]], [["inc", 1, 1]], [["r", [1], None]]):
        with pytest.raises(ValueError):
            validate_txn(bad)


def test_the_server_and_the_client_speak_txn(single):  # noqa: F811
    p = single()
    c = ContractClient("127.0.0.1", p.port, timeout=2.0)
    try:
        done = c.invoke(txn([["append", 7, 1], ["append", 7, 2], ["r", 7, None]]))
        assert done.type == "ok" and done.value == [
            ["append", 7, 1],
            ["append", 7, 2],
            ["r", 7, [1, 2]],
        ]
        assert done.node == "n1"  # the contract's "node" is recorded
        assert c.invoke(txn([["r", 7, None], ["r", 8, None]])).value == [
            ["r", 7, [1, 2]],
            ["r", 8, None],
        ]
        status, body = c.request("POST", "/txn", {"txn": [["inc", 1, 1]]})
        assert status == 400 and "micro-op 0" in body["error"]
        assert c.request("GET", "/txn")[0] == 405
        # a definite refusal is fail; a transaction the state machine rejects changed nothing
        refused = c.invoke(txn([["w", 9, 1], ["append", 9, 2]]))
        assert refused.type == "fail" and refused.error["rejected"]
        assert c.invoke(txn([["r", 9, None]])).value == [["r", 9, None]]
        assert setup_round_trip(c) is None
    finally:
        c.close()


def test_an_answer_that_is_not_the_transaction_sent_is_never_ok():
    sent = [["append", 1, 3], ["r", 1, None]]
    assert txn_answer_problem(sent, [["append", 1, 3], ["r", 1, [3]]]) is None
    assert "expected 2" in txn_answer_problem(sent, [["append", 1, 3]])
    assert "micro-op 1" in txn_answer_problem(sent, [["append", 1, 3], ["r", 2, [3]]])
    assert "writes 4" in txn_answer_problem(sent, [["append", 1, 4], ["r", 1, [4]]])


def test_workloads_make_unique_values_and_read_every_key_at_the_end():
    w = ListAppendWorkload(seed=3, keys=3, max_txn_length=4, max_writes_per_key=5)
    seen: dict[int, list[int]] = {}
    for _ in range(400):
        spec = w.next_op()
        assert spec.f == "txn" and 1 <= len(spec.value) <= 4
        for f, k, v in spec.value:
            assert f in ("append", "r")
            if f == "append":
                seen.setdefault(k, []).append(v)
    assert all(vs == list(range(1, len(vs) + 1)) and len(vs) <= 5 for vs in seen.values())
    assert len(seen) > 3  # keys were retired and replaced
    finals = w.final_ops()
    read = [k for spec in finals for f, k, _ in spec.value]
    assert sorted(read) == sorted(w.used) and all(
        len(s.value) <= FINAL_READS_PER_TXN for s in finals
    )
    assert ListAppendWorkload(seed=3).next_op() == ListAppendWorkload(seed=3).next_op()
    r = RwRegisterWorkload(seed=3)
    assert {m[0] for _ in range(50) for m in r.next_op().value} == {"w", "r"}
    assert r.checkers()[0].name == "rw-register"


def test_an_interactive_transaction_reads_no_write_intent_when_correct():
    """The executor's bug paths are switched by name only: a node without them has no
    intents (the correct path is one proposal)."""

    class Node:
        bugs = frozenset()
        kv = KV()

    ex = TxnExecutor(Node())  # type: ignore[arg-type]
    assert ex.intents == {} and ex.local_reads(
        [["r", 1, None], ["append", 1, 2], ["r", 1, None]]
    ) == [
        None,
        None,
        [2],
    ]


# -- real runs ---------------------------------------------------------------------------------


def run(
    tmp_path: Path, *args: str, target: str = "raft-kv", nodes: int = 3, time_limit: int = 12
) -> dict:
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    name = "tx" + os.urandom(2).hex()
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", target, "--node-count", str(nodes),
        "--time-limit", str(time_limit), "--cluster-name", name, "--store", str(tmp_path),
        "--seed", "7", "--json", *args,
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    finally:
        localnet.down(name)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return json.loads(proc.stdout)


#: each bug, the workload it runs and the anomalies it must give (a subset of what it gives)
BUG_ANOMALIES = [
    ("txn-no-isolation", "list-append", {"G1c"}),
    ("txn-read-uncommitted", "rw-register", {"G1a", "G1b"}),
    ("txn-stale-snapshot", "rw-register", {"G-single-item-realtime"}),
]


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("bug", "workload", "expected"), BUG_ANOMALIES)
def test_each_transactional_bug_gives_its_anomalies(tmp_path, bug, workload, expected):
    # two keys at 300 ops/s: transactions contend on every run, so each bug shows every time
    out = run(tmp_path, "--workload", workload, "--bug", bug, "--key-count", "2", "--rate", "300")
    assert out["valid"] is False, out["reason"]
    check = out["checks"][workload]
    found = set(check["details"]["anomaly_types"])
    assert expected <= found, (expected, found)
    assert "not" in check["details"] and check["details"]["not"]


@pytest.mark.cluster
@pytest.mark.slow
def test_the_correct_store_is_strict_serializable_under_partitions(tmp_path):
    out = run(tmp_path, "--workload", "list-append", "--nemesis", "partition-leader",
              time_limit=25)  # fmt: skip
    assert out["valid"] is True, out["reason"]
    assert out["checks"]["list-append"]["valid"] is True
    assert out["stats"]["by_f"]["txn"]["ok"] > 100


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "txn_server.py"


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("flags", "valid"), [("", True), ("--unsafe", False)])
def test_a_students_txn_store_runs_through_the_http_contract(tmp_path, flags, valid):
    """The documented example server (one file, POST /txn only) through http-kv: applying each
    transaction under one lock is valid; taking the lock per micro-op is not."""
    cmd = f"python3 {EXAMPLE} --port {{port}} {flags}".strip()
    out = run(tmp_path, "--workload", "list-append", "--server-cmd", cmd, "--concurrency", "8",
              target="http-kv", nodes=1, time_limit=8)  # fmt: skip
    assert out["valid"] is valid, out["reason"]
    if not valid:
        assert {"G1c", "internal"} & set(out["checks"]["list-append"]["details"]["anomaly_types"])


def test_contradicting_transaction_lengths_are_refused_before_any_node(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--workload",
         "list-append", "--min-txn-length", "5", "--max-txn-length", "2", "--cluster-name",
         "txref", "--store", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 254
    assert proc.stderr.strip().splitlines() == [
        "dsjepsen: error: --max-txn-length (2) is below --min-txn-length (5): a transaction "
        "has at least min and at most max micro-ops"
    ]
    assert not list(tmp_path.iterdir())  # no run directory: nothing started
