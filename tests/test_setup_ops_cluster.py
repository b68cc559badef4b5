"""`Workload.setup_ops` in real runs: raft-kv on a local namespace cluster.

No target speaks bank yet, so the register workload is given a setup op of its own vocabulary
(a write of key 0) for these tests: the path under test is the harness's (run before the
workers and the nemesis, recorded like any op, one that does not end ok stops the run with
verdict unknown and the target torn down), and the target and cluster are real.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsjepsen.cli import build_parser
from dsjepsen.cluster import localnet
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.errors import HarnessError
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.config import config_from_args
from dsjepsen.harness.runner import Runner, _Hooks
from dsjepsen.workloads.base import OpSpec
from dsjepsen.workloads.register import RegisterWorkload

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = "bk" + os.urandom(2).hex()
    try:
        c = localnet.up(name, node_count=3)
        yield c
        c.close()
    finally:
        localnet.down(name)
        assert not localnet.remains(name), f"cluster {name} left behind"


@pytest.fixture
def setup_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        RegisterWorkload, "setup_ops", lambda self: [OpSpec("write", 0, 4242)], raising=True
    )


def run(cluster: Cluster, store: Path, hooks: _Hooks | None = None, *extra: str) -> Runner:
    argv = ["test", "--store", str(store), "--target", "raft-kv", "--time-limit", "6",
            "--nemesis", "partition-majority", "--nemesis-interval", "2", "--seed", "5", *extra]  # fmt: skip
    cfg = config_from_args(build_parser().parse_args(argv), argv=["dsjepsen", *argv])
    return Runner(cfg, cluster, hooks=hooks)


def the_run_dir(store: Path) -> Path:
    [d] = [p for p in store.glob("*/2*") if p.is_dir()]
    return d


def test_setup_ops_come_first_in_the_history(
    cluster: Cluster, tmp_path: Path, setup_write: None
) -> None:
    out = run(cluster, tmp_path).run()
    assert out.valid is True, out.results.get("reason")
    ops = read_jsonl(out.run_dir / "history.jsonl").ops
    first, second = ops[0], ops[1]
    assert (first.type, first.f, first.key, first.value, first.node) == (
        "invoke",
        "write",
        0,
        4242,
        "n1",
    )
    assert (second.type, second.f, second.process) == ("ok", "write", first.process)
    # a process of its own, before any worker's op and any fault
    assert all(o.process != first.process for o in ops[2:])
    assert first.time >= 0 and all(o.time >= second.time for o in ops[2:])
    assert not any(o.process == "nemesis" for o in ops[:2])


def test_a_setup_op_that_fails_ends_the_run_unknown_and_torn_down(
    cluster: Cluster, tmp_path: Path, setup_write: None
) -> None:
    def kill_everything(runner: Runner) -> None:
        for node in runner.cluster.names:
            runner.target.kill(runner.cluster, node)

    runner = run(cluster, tmp_path, _Hooks(after_setup=[kill_everything]))
    with pytest.raises(HarnessError, match=r"setup op write through n1 ended (fail|info)"):
        runner.run()
    d = the_run_dir(tmp_path)
    results = json.loads((d / "results.json").read_text())
    assert results["valid"] == "unknown"
    assert "setup op write through n1 ended" in results["reason"]
    ops = read_jsonl(d / "history.jsonl").ops
    assert [o.f for o in ops] == ["write", "write"] and ops[1].type in ("fail", "info")
    # torn down as usual: no process of the run is left in the cluster's namespaces
    assert runner.ctx is not None and runner.ctx.torn_down
    for n in cluster.nodes:
        assert not localnet.netns_pids(n.extra["netns"]), n.name
