"""raft-kv `--bug lease-read`: safe while clocks agree, stale reads once the isolated leader's
clock is behind its followers'.

The first test drives the faults by hand, so its outcome is certain: the leader's clock set
30 s behind (libfaketime, as the clock nemesis does), the leader isolated, a write through the
majority's new leader, then a read through the old one, which still believes its lease. The
same steps with true clocks give no stale read. The slow tests run whole `dsjepsen test` runs.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from dsjepsen.cluster.faketime import LIBFAKETIME
from dsjepsen.history import Op
from dsjepsen.nemesis.clock import ClockFaults
from dsjepsen.nemesis.partition import PartitionFaults

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not os.path.exists(LIBFAKETIME), reason="libfaketime is not installed"),
]


def _op(process: int | str, f: str, key: str | None = None, value=None) -> Op:
    return Op(index=0, time=0, process=process, type="invoke", f=f, key=key, value=value)


def _stale_read_after_isolating_leader(cluster, leader_offset: float) -> tuple[str, Op]:
    """(leader, the read through the isolated old leader after a newer write elsewhere)."""
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    target = RaftKvTarget(bugs=["lease-read"])
    clock = ClockFaults().nemesis("clock-reset", target, random.Random(1), {})
    partition = PartitionFaults().nemesis("partition-leader", target, random.Random(1), {})
    clock.heal(cluster)
    target.setup(cluster)
    try:
        leader = target.leader(cluster)
        assert leader is not None
        old = target.client(cluster, leader)
        assert old.invoke(_op(0, "write", "k", 1)).type == "ok"
        assert old.invoke(_op(0, "read", "k")).value == 1
        clock.state.apply(cluster, {leader: leader_offset})  # type: ignore[attr-defined]
        time.sleep(0.3)  # a few heartbeats: the followers' stamps now run ahead of its clock
        cut = partition.invoke(cluster, _op("nemesis", "start-partition",
                                            value={"fault": "partition-leader"}))  # fmt: skip
        assert cut.type == "ok" and cut.value["isolated"] == leader
        others = [n for n in cluster.names if n != leader]
        deadline = time.monotonic() + 15
        new = target.client(cluster, others[0])
        while True:  # the majority elects a leader of its own and takes a newer write
            if new.invoke(_op(1, "write", "k", 2)).type == "ok":
                break
            assert time.monotonic() < deadline, "the majority elected no leader"
            time.sleep(0.2)
        read = target.client(cluster, leader).invoke(_op(2, "read", "k"))
        return leader, read
    finally:
        partition.heal(cluster)
        clock.heal(cluster)
        target.teardown(cluster)


def test_isolated_leader_behind_its_followers_serves_a_stale_read(make_cluster) -> None:
    _leader, read = _stale_read_after_isolating_leader(make_cluster(node_count=3), -30.0)
    assert read.type == "ok" and read.value == 1  # acknowledged write 2 came before it


def test_with_true_clocks_the_isolated_leader_refuses_the_read(make_cluster) -> None:
    _leader, read = _stale_read_after_isolating_leader(make_cluster(node_count=3), 0.0)
    assert read.type != "ok" or read.value == 2


def _run(tmp_path: Path, seed: int, nemesis: str) -> tuple[int, list[dict]]:
    """The detection recipe's options (bench/detection.py lease-read): faults combined, so
    every partition of the leader comes with a bump, whichever node leads then (one at a time,
    a CI run once bumped n1's clock back while n3 and n2 were the leaders cut off: valid)."""
    from dsjepsen.cli import main

    rc = main(["test", "--store", str(tmp_path), "--target", "raft-kv", "--bug", "lease-read",
               "--node-count", "3", "--nemesis", nemesis, "--nemesis-mode", "combined",
               "--seed", str(seed), "--time-limit", "30", "--nemesis-interval", "5"])  # fmt: skip
    history = next(tmp_path.glob("*/latest/history.jsonl"))
    ops = [json.loads(line) for line in history.read_text().splitlines()]
    return rc, [o for o in ops if o["process"] == "nemesis" and o["type"] != "invoke"]


@pytest.mark.slow
# one seed: detection over 20 seeds is bench/detection.py's job (README: 20 of 20)
@pytest.mark.parametrize("seed", [3])
def test_lease_read_is_valid_under_partitions_alone(tmp_path: Path, seed: int) -> None:
    rc, nemesis = _run(tmp_path, seed, "partition-leader")
    assert rc == 0
    assert any(o["f"] == "start-partition" and o["type"] == "ok" for o in nemesis)


@pytest.mark.slow
# one seed: detection over 20 seeds is bench/detection.py's job (README: 20 of 20)
@pytest.mark.parametrize("seed", [3])
def test_lease_read_is_invalid_under_partitions_and_clock_bumps(tmp_path: Path, seed: int) -> None:
    rc, nemesis = _run(tmp_path, seed, "partition-leader,clock-bump")
    bumps = [o for o in nemesis if o["f"] == "start-clock" and o["type"] == "ok"]
    assert bumps and all("clock_offsets" in o["value"] for o in bumps)
    assert all(o["value"]["measured_offsets"] for o in bumps)
    assert rc == 1
