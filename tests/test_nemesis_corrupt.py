"""The file corruption faults on a real cluster: bits flipped in, and bytes cut off, raft-kv's
data files through the node's remote while it is stopped, each change recorded and seen on
disk; what the store does after the restart is recorded too (raft-kv refuses a corrupted log,
and cuts a truncated tail)."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import pytest

from dsjepsen.history import Op
from dsjepsen.nemesis.corrupt import FileFaults
from dsjepsen.targets.maelstrom.target import MaelstromTarget
from dsjepsen.targets.raft_kv.target import RaftKvTarget

pytestmark = pytest.mark.cluster


def _op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


@pytest.fixture
def raftkv(pooled_cluster) -> Iterator[tuple]:
    cluster = pooled_cluster(node_count=3)
    target = RaftKvTarget(election_timeout_ms=300)
    try:
        target.setup(cluster)
        client = target.client(cluster, target.leader(cluster) or cluster.names[0])
        try:  # a log worth corrupting
            for i in range(30):
                client.invoke(Op(0, 0, 0, "invoke", "write", i, key=1))
        finally:
            client.close()
        yield cluster, target
    finally:
        target.teardown(cluster)


def test_bitflip_flips_exactly_the_recorded_bits_and_raft_kv_refuses_the_log(raftkv):
    cluster, target = raftkv
    package = FileFaults()
    nem = package.nemesis("file-bitflip", target, random.Random(4), {"corrupt-file": "log.*"})
    node_files = {}
    for node in cluster.names:  # what each log held before
        path = os.path.join(target.data_dir(cluster.node(node)), "log.jsonl")
        node_files[node] = path
    before = {n: open(p, "rb").read() for n, p in node_files.items()}  # noqa: SIM115
    started = nem.invoke(cluster, _op("start-file", "file-bitflip"))
    assert started.type == "ok" and package.took_effect(started), started.value
    (node,) = started.value["nodes"]  # a minority of 3
    rec = started.value["corrupted"][node]
    assert rec["file"] == "log.jsonl" and len(rec["flips"]) == 1
    (flip,) = rec["flips"]
    assert flip["new"] == flip["old"] ^ (1 << flip["bit"])
    assert target.pid(cluster, node) is None or not os.path.exists(
        f"/proc/{target.pid(cluster, node)}"
    )
    after = open(node_files[node], "rb").read()  # noqa: SIM115
    old = before[node][: len(after)]  # the node may have written more before it was killed
    diff = [i for i in range(len(after)) if i < len(old) and after[i] != old[i]]
    assert diff == [flip["offset"]], (diff, flip)
    stopped = nem.invoke(cluster, _op("stop-file", "file-bitflip"))
    assert stopped.type == "ok" and stopped.value["nodes"] == [node]
    seen = stopped.value["after"][node]
    if flip["offset"] == rec["size"] - 1:  # the last newline: a torn tail, cut (1 in ~2000)
        assert seen["serving"], seen
    else:
        assert not seen["running"], (seen, rec)
        assert "refusing to start" in seen["log_tail"] and "fails its checksum" in seen["log_tail"]
        assert f"{node} exited" in stopped.value["description"]
    # the same minority again at the next start (the majority keeps every file whole)
    again = nem.invoke(cluster, _op("start-file", "file-bitflip"))
    assert again.value["nodes"] == [node], again.value
    nem.heal(cluster)


def test_truncate_cuts_the_recorded_bytes_and_raft_kv_cuts_its_tail(raftkv):
    cluster, target = raftkv
    package = FileFaults()
    nem = package.nemesis(
        "file-truncate",
        target,
        random.Random(2),
        {"corrupt-file": "log.jsonl", "truncate-max-bytes": 100},
    )
    started = nem.invoke(cluster, _op("start-file", "file-truncate"))
    assert started.type == "ok" and package.took_effect(started), started.value
    (node,) = started.value["nodes"]
    rec = started.value["corrupted"][node]
    assert 1 <= rec["dropped"] <= 100 and rec["truncated_to"] == rec["size"] - rec["dropped"]
    path = os.path.join(target.data_dir(cluster.node(node)), "log.jsonl")
    assert os.path.getsize(path) == rec["truncated_to"]
    stopped = nem.invoke(cluster, _op("stop-file", "file-truncate"))
    assert stopped.type == "ok" and stopped.value["after"][node]["serving"], stopped.value
    target.wait_ready(cluster)


def test_refused_for_a_target_without_data_and_on_one_node(pooled_cluster):
    package = FileFaults()
    why = package.unsupported("file-bitflip", MaelstromTarget)
    assert why is not None and "no data directory" in why
    assert package.unsupported("file-bitflip", RaftKvTarget) is None
    assert package.min_nodes("file-truncate") == 2
    cluster = pooled_cluster(node_count=3)
    with contextlib.suppress(Exception):
        nem = package.nemesis("file-bitflip", RaftKvTarget(), random.Random(1), {})
        assert nem.invoke(cluster, _op("stop-file", "file-bitflip")).type == "ok"  # nothing to undo
