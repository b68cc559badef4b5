"""Issue 23 on real namespace clusters: other people's Maelstrom / Gossip Glomers nodes get
Maelstrom's verdict with their own command lines (`./maelstrom` replaced by `dsjepsen
maelstrom`). The nodes are written in the tests in the style of third-party solutions (a
student's JS broadcast speaking the protocol directly, a tutorial-style echo script, a batched
3d broadcast, a 5b kafka): each finding of the issue has its test here. Short runs share the
session's 3-node cluster; the 25-node challenge makes (and removes) its own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet

NODES = Path(__file__).parent / "maelstrom_nodes"
PY = sys.executable

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def dsjepsen_maelstrom(cwd: Path, store: Path, *line: str, timeout: float = 240) -> tuple[int, str]:
    """`dsjepsen maelstrom test ...` as a user types it, run in `cwd`."""
    argv = [PY, "-m", "dsjepsen.cli", "maelstrom", "test", "--store", str(store), *line]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return res.returncode, res.stdout + res.stderr


def run_dirs(store: Path) -> list[Path]:
    """The run directories in the store, oldest first (not the `latest` link)."""
    return sorted(
        p for p in store.glob("*/*")
        if (p / "results.json").is_file() and not p.is_symlink() and not p.parent.is_symlink()
    )  # fmt: skip


def results_of(store: Path) -> list[dict]:
    return [json.loads((d / "results.json").read_text()) for d in run_dirs(store)]


@pytest.fixture
def three(pooled_cluster):
    """The session's 3-node cluster, by name; a run must leave it in place."""
    cluster = pooled_cluster(node_count=3)
    yield cluster.name
    assert localnet.read_state(cluster.name) is not None, "the run removed a cluster it found"


def relay_log(store: Path, node: str) -> list[dict]:
    [run] = run_dirs(store)
    return [
        json.loads(x) for x in (run / "nodes" / node / "messages.jsonl").read_text().splitlines()
    ]


def test_broadcast_to_topology_neighbours_only_is_valid_under_partition(
    three: str, tmp_path: Path
) -> None:
    """Finding 1: a correct node that forwards only to the neighbours `topology` names (and
    retries) lost the first message when peers' broadcasts reached nodes before their own
    topology. Maelstrom sends every node its topology before any client op."""
    shutil.copy(NODES / "broadcast_neighbours.js", tmp_path / "broadcast.js")
    code, out = dsjepsen_maelstrom(
        tmp_path, tmp_path / "store", "-w", "broadcast", "--bin", "./broadcast.js",
        "--node-count", "3", "--time-limit", "6", "--rate", "20", "--nemesis", "partition",
        "--latency", "0", "--convergence-timeout", "8", "--cluster-name", three,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    # every node acknowledged its topology before any node saw a client's request
    logs = {n: relay_log(tmp_path / "store", n) for n in ("n1", "n2", "n3")}
    topology_ok = max(e["t"] for es in logs.values() for e in es if e.get("type") == "topology_ok")
    first_request = min(
        e["t"] for es in logs.values() for e in es
        if e["dir"] == "in" and e.get("src", "").startswith("c") and e["src"] != "c0"
    )  # fmt: skip
    assert topology_ok < first_request
    [results] = results_of(tmp_path / "store")
    assert results["checks"]["broadcast"]["valid"] is True
    assert "partition-majority" in json.dumps(results["checks"]["vacuous"])


def test_bin_as_a_bare_file_name_is_the_file_here(three: str, tmp_path: Path) -> None:
    """Finding 2: `--bin echo.py` (Maelstrom's tutorial runs `--bin echo.rb`) is the file in
    the directory Maelstrom runs in, not a program on PATH; `--log-stderr` (the tutorial's
    too) shows the nodes' stderr on the console."""
    shutil.copy(NODES / "echo_tutorial.py", tmp_path / "echo.py")
    code, out = dsjepsen_maelstrom(
        tmp_path, tmp_path / "store", "-w", "echo", "--bin", "echo.py", "--node-count", "3",
        "--time-limit", "3", "--log-stderr", "--cluster-name", three,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    assert "Everything looks good!" in out
    assert "stderr: Initialized node n0" in out


def test_a_missing_interpreter_is_named_before_any_node_is_touched(
    three: str, tmp_path: Path
) -> None:
    node = tmp_path / "echo.js"
    node.write_text("#!/opt/dsjepsen-no-such-dir/bin/node\nconsole.log('hi')\n")
    node.chmod(0o755)
    code, out = dsjepsen_maelstrom(
        tmp_path, tmp_path / "store", "-w", "echo", "--bin", "./echo.js", "--node-count", "3",
        "--cluster-name", three,
    )  # fmt: skip
    assert code == 254, out
    assert out.strip().splitlines() == [
        "dsjepsen: error: --bin ./echo.js: its interpreter /opt/dsjepsen-no-such-dir/bin/node "
        "(#!/opt/dsjepsen-no-such-dir/bin/node) does not exist on this machine"
    ]
    assert not (tmp_path / "store").exists()  # no run was started


def test_a_node_for_a_newer_interpreter_shows_its_syntax_error(three: str, tmp_path: Path) -> None:
    """Finding 2: a node that needs a newer Python than the machine's dies at start; the one
    error line quotes its stderr (the SyntaxError), not only "exited"."""
    if sys.version_info >= (3, 12):
        pytest.skip("this Python accepts the syntax")
    node = tmp_path / "node.py"
    node.write_text(
        "#!/usr/bin/env python3\nimport sys\n\ntype Message = dict[str, object]\n"
        "for line in sys.stdin:\n    pass\n"
    )
    node.chmod(0o755)
    code, out = dsjepsen_maelstrom(
        tmp_path, tmp_path / "store", "-w", "echo", "--bin", "./node.py", "--node-count", "3",
        "--time-limit", "3", "--cluster-name", three,
    )  # fmt: skip
    assert code == 255, out[-2000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("dsjepsen: error: node n") and "SyntaxError" in last, last
    assert "type Message" in last


def test_nodes_are_maelstrom_ids_and_test_count_repeats(three: str, tmp_path: Path) -> None:
    """Finding 2: `--nodes n1,n2,n3` names Maelstrom's node ids (not SSH hosts), and
    `--test-count 2` runs the test twice."""
    shutil.copy(NODES / "echo_tutorial.py", tmp_path / "echo.py")
    code, out = dsjepsen_maelstrom(
        tmp_path, tmp_path / "store", "-w", "echo", "--bin", "./echo.py", "--nodes",
        "n1,n2,n3", "--time-limit", "2", "--test-count", "2", "--cluster-name", three,
    )  # fmt: skip
    assert code == 0, out[-3000:]
    runs = results_of(tmp_path / "store")
    assert len(runs) == 2
    for r in runs:
        assert sorted(r["maelstrom"]["node_ids"].values()) == ["n1", "n2", "n3"]
    inits = [e for e in relay_log_any(tmp_path / "store") if e.get("type") == "init_ok"]
    assert {e["src"] for e in inits} == {"n1", "n2", "n3"}


def relay_log_any(store: Path) -> list[dict]:
    out = []
    for d in run_dirs(store):
        for p in d.glob("nodes/*/messages.jsonl"):
            out += [json.loads(x) for x in p.read_text().splitlines()]
    return out


@pytest.mark.parametrize(("extra", "expected"), [((), 0), (("--", "--local-offsets"), 1)])
def test_kafka_correct_node_valid_and_classic_bug_invalid(
    three: str, tmp_path: Path, extra: tuple[str, ...], expected: int
) -> None:
    """Finding 4: challenge 5b's command line (3 nodes here, the pooled cluster's size); a
    node that owns each key on one node is valid, the classic mistake of numbering offsets on
    every node is invalid, with the offsets given twice named."""
    code, out = dsjepsen_maelstrom(
        NODES, tmp_path / "store", "-w", "kafka", "--bin", "kafka.py", "--node-count", "3",
        "--concurrency", "2n", "--time-limit", "5", "--rate", "300", "--cluster-name", three,
        *extra,
    )  # fmt: skip
    assert code == expected, out[-3000:]
    [results] = results_of(tmp_path / "store")
    kafka = results["checks"]["kafka"]
    assert kafka["details"]["acked"] > 100 and kafka["details"]["polls"] > 100
    if expected:
        assert "inconsistent-offsets" in kafka["details"]["error_types"]
        assert ":inconsistent-offsets" in out  # printed as Maelstrom prints error types
        report = (run_dirs(tmp_path / "store")[0] / "report.html").read_text()
        assert 'id="kafka-findings"' in report and "holds 2 different messages" in report
    else:
        assert kafka["valid"] is True and kafka["details"]["error_types"] == []


@pytest.mark.slow
def test_glomers_3d_at_25_nodes_with_its_published_command_line(tmp_path: Path) -> None:
    """Finding 3: challenge 3d's command line, unchanged, on this machine: 25 nodes (a
    Maelstrom node with its relay is costed as what it is), latency 100 ms, rate 100; the
    stable latencies are printed as Maelstrom prints them, and no message is lost outside a
    fault (the machine kept up)."""
    shutil.copy(NODES / "broadcast_batched.py", tmp_path / "maelstrom-broadcast")
    name = localnet.random_name("g")
    try:
        code, out = dsjepsen_maelstrom(
            tmp_path, tmp_path / "store", "-w", "broadcast", "--bin", "./maelstrom-broadcast",
            "--node-count", "25", "--time-limit", "20", "--rate", "100", "--latency", "100",
            "--cluster-name", name, timeout=300,
        )  # fmt: skip
    finally:
        localnet.down(name)
        assert localnet.remains(name) == []
    assert code == 0, out[-3000:]
    assert ":stable-latencies {0 " in out and ":msgs-per-op" in out
    [results] = results_of(tmp_path / "store")
    latencies = results["checks"]["broadcast"]["details"]["stable_latencies_ms"]
    assert set(latencies) == {"0", "0.5", "0.95", "0.99", "1"}
    assert 100 <= latencies["0.5"] <= latencies["1"]  # at least one 100 ms hop
    net = results["maelstrom"]["net"]
    assert net["lost"]["outside-faults"] == 0
    assert 0 < net["servers"]["msgs-per-op"] < 30  # the batched star: 3d's budget
