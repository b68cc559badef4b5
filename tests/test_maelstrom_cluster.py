"""`dsjepsen maelstrom test` end to end on real local namespace clusters with real faults:
each correct node valid, each buggy one invalid under the fault that exposes it, broken nodes
one clear line. The runs share one 3-node cluster of the session (`pooled_cluster`), healed
after each test; the session verifies it is gone at the end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet

NODES = Path(__file__).parent / "maelstrom_nodes"
PY = sys.executable

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def maelstrom(pooled_cluster):
    """`maelstrom(tmp_path, workload, bin, *extra) -> (exit code, output, results.json or {})`:
    one `dsjepsen maelstrom test` on the session's shared 3-node cluster, which the run must
    leave in place (it did not create it) and the fixture heals afterwards."""
    cluster = pooled_cluster(node_count=3)

    def run(tmp_path: Path, workload: str, bin: str, *extra: str) -> tuple[int, str, dict]:
        tmp_path.mkdir(parents=True, exist_ok=True)
        argv = [PY, "-m", "dsjepsen.cli", "maelstrom", "test", "-w", workload, "--bin", bin,
                "--node-count", "3", "--time-limit", "8", "--rate", "20", "--concurrency", "2n",
                "--convergence-timeout", "5", "--cluster-name", cluster.name,
                "--store", str(tmp_path / "store"), *extra]  # fmt: skip
        res = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        assert localnet.read_state(cluster.name) is not None, "the run removed a cluster it found"
        found = sorted((tmp_path / "store").glob("*/*/results.json"))
        results = json.loads(found[-1].read_text()) if found else {}
        return res.returncode, res.stdout + res.stderr, results

    return run


@pytest.mark.parametrize(
    ("workload", "node", "expected"),
    [
        ("broadcast", "broadcast.py", 0),
        ("broadcast", "broadcast.py --no-retry", 1),
        ("g-counter", "counter.py", 0),
        ("g-counter", "counter.py --double-count", 1),
        ("lin-kv", "lin_kv.py", 0),
        ("lin-kv", "lin_kv.py --local", 1),
    ],
)
def test_nodes_under_partition(
    maelstrom, tmp_path: Path, workload: str, node: str, expected: int
) -> None:
    code, out, results = maelstrom(
        tmp_path, workload, f"{PY} {NODES / node}", "--nemesis", "partition"
    )
    assert code == expected, out[-3000:]
    net = results["maelstrom"]["net"]
    assert net["clients"]["send-count"] > 0
    assert "partition-majority" in json.dumps(results["checks"]["vacuous"])
    if workload != "lin-kv":  # lin-kv nodes talk to the service, not to each other
        assert net["servers"]["send-count"] > 0 and net["servers"]["msgs-per-op"] > 0
    assert (":valid? true" if expected == 0 else "Analysis invalid!") in out


def test_perl_echo_and_gset_and_pn_counter_valid(maelstrom, tmp_path: Path) -> None:
    code, out, results = maelstrom(tmp_path, "echo", f"perl {NODES / 'echo.pl'}")
    assert code == 0, out[-3000:]
    assert results["checks"]["echo"]["valid"] is True
    for workload, node in (("g-set", "gset.py"), ("pn-counter", "counter.py")):
        code, out, _ = maelstrom(
            tmp_path / workload, workload, f"{PY} {NODES / node}", "--nemesis", "partition"
        )
        assert code == 0, out[-3000:]


def test_killed_node_restarts_and_is_initialised_again(maelstrom, tmp_path: Path) -> None:
    code, out, results = maelstrom(
        tmp_path, "lin-kv", f"{PY} {NODES / 'lin_kv.py'}", "--nemesis", "kill"
    )
    assert code == 0, out[-3000:]
    assert results["maelstrom"]["service_calls"]["lin-kv"] > 0
    assert "restarted maelstrom" in out


def test_availability_gate_and_malformed_output(maelstrom, tmp_path: Path) -> None:
    code, out, results = maelstrom(
        tmp_path, "echo", f"{PY} {NODES / 'malformed.py'}", "--availability", "total"
    )
    assert code == 0, out[-3000:]
    m = results["maelstrom"]
    assert m["malformed"] >= 4 * 3 - 1, m  # each node printed four bad lines
    assert "malformed output (not JSON)" in out
    assert results["checks"]["availability"]["details"]["availability"] == 1.0


@pytest.mark.parametrize(
    ("node", "says"),
    [("crash_at_start.py", "cannot open /nonexistent/config"), ("silent.py", "no init_ok")],
)
def test_broken_nodes_are_one_line(maelstrom, tmp_path: Path, node: str, says: str) -> None:
    code, out, _ = maelstrom(tmp_path, "echo", f"{PY} {NODES / node}")
    assert code == 255, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("dsjepsen: error:") and says in last and "node n1" in last, last
    assert "exited" in last or says == "no init_ok"
