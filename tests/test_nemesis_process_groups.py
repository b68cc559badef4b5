"""Process faults on groups of nodes: kill / pause a minority, a majority, or every node.

Sizes follow Jepsen's `jepsen.nemesis.combined/db-nodes`: majority = ⌊n/2⌋ + 1, minority =
majority - 1 = ⌊n/2⌋ (exactly half when n is even), all = n. The unit tests check the sizes,
the seeded choice and the honesty of the records against a recording Target; the cluster
tests check that the processes really die (or stop) on a real namespace cluster running
raft-kv and come back; the end-to-end tests run `kill-all` on raft-kv with and without its
`no-fsync` bug: both stay valid, because no-fsync writes its log before it acknowledges and a
killed process's writes survive in the page cache (only a power failure loses them:
tests/test_nemesis_disk.py).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.errors import HarnessError
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.history import Op
from dsjepsen.nemesis.catalog import build_nemesis, descriptions, fault_catalog
from dsjepsen.nemesis.process import SCOPES, choose, group_size, majority, share
from dsjepsen.nemesis.schedule import FaultSchedule
from dsjepsen.targets.base import Client, Target

GROUP_FAULTS = [f"{a}-{s}" for a in ("kill", "pause") for s in ("minority", "majority", "all")]


class RecordingTarget(Target):
    """Records calls (thread-safe: groups are signalled in parallel); `fail_on` makes kill
    raise on those nodes; `barrier` makes every kill wait for the others."""

    name = "rec"

    def __init__(self, fail_on=(), barrier: threading.Barrier | None = None):
        self.calls: list[tuple[str, str]] = []
        self.fail_on = set(fail_on)
        self.barrier = barrier
        self.restarts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _rec(self, what: str, node: str) -> None:
        with self._lock:
            self.calls.append((what, node))

    def setup(self, cluster): ...
    def teardown(self, cluster): ...

    def start(self, cluster, node):
        with self._lock:
            self.restarts[node] = self.restarts.get(node, 0) + 1
        self._rec("start", node)

    def kill(self, cluster, node):
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        if node in self.fail_on:
            raise HarnessError(f"node {node}: connection lost")
        self._rec("kill", node)

    def pause(self, cluster, node):
        self._rec("pause", node)

    def resume(self, cluster, node):
        self._rec("resume", node)

    def wipe(self, cluster, node): ...

    def log_files(self, cluster, node):
        return []

    def client(self, cluster, node) -> Client:
        raise NotImplementedError

    def pid(self, cluster, node):
        # a new pid after every restart, so records can be told apart
        return 1000 * (1 + self.restarts.get(node, 0)) + int(node[1:])

    def of(self, what: str) -> list[str]:
        return sorted(n for f, n in self.calls if f == what)


def cluster(n: int) -> Cluster:
    nodes = [Node(f"n{i}", f"10.9.9.{i}", f"/tmp/n{i}") for i in range(1, n + 1)]
    return Cluster(kind="local", nodes=nodes, remotes={}, name="unit")


def nem_op(f: str, fault: str) -> Op:
    return Op(index=0, time=0, process="nemesis", type="invoke", f=f, value={"fault": fault})


def family_ops(fault: str) -> tuple[str, str]:
    package = fault_catalog()[fault]
    return package.start_op(fault)[0], package.stop_op(fault)[0]


# -- sizes and choice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "minority", "majority_"),
    [(1, 0, 1), (2, 1, 2), (3, 1, 2), (4, 2, 3), (5, 2, 3), (6, 3, 4), (7, 3, 4), (9, 4, 5)],
)
def test_group_sizes_are_jepsens(n: int, minority: int, majority_: int) -> None:
    assert majority(n) == majority_
    assert group_size("majority", n) == majority_ and 2 * majority_ > n
    assert group_size("minority", n) == minority == majority_ - 1
    assert group_size("all", n) == n
    assert group_size("one", n) == group_size("leader", n) == 1
    # odd clusters: the largest strict minority; even ones: exactly half, as Jepsen counts it
    if n % 2:
        assert minority == (n - 1) // 2 and 2 * minority < n
    else:
        assert 2 * minority == n


def test_share_never_overclaims() -> None:
    assert share(2, 5) == "a minority, 2 of 5 nodes"
    assert share(2, 4) == "half, 2 of 4 nodes"
    assert share(3, 5) == "a majority, 3 of 5 nodes"
    assert share(3, 3) == "all 3 nodes"


@pytest.mark.parametrize("scope", ["one", "minority", "majority", "all"])
@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_choose_takes_the_right_number_in_cluster_order_and_is_seeded(scope: str, n: int):
    nodes = [f"n{i}" for i in range(1, n + 1)]
    draws = [choose(scope, nodes, nodes, random.Random(seed)) for seed in range(60)]
    for picked in draws:
        assert len(picked) == group_size(scope, n) == len(set(picked))
        assert picked == [x for x in nodes if x in picked]  # cluster order
    assert draws == [choose(scope, nodes, nodes, random.Random(seed)) for seed in range(60)]
    if scope != "all":  # different seeds reach different victims
        assert len({tuple(p) for p in draws}) > 1
    else:
        assert all(p == nodes for p in draws)


def test_choose_only_picks_free_nodes_and_refuses_when_too_few() -> None:
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    for seed in range(30):
        assert set(choose("majority", nodes, ["n1", "n3", "n4"], random.Random(seed))) == {
            "n1",
            "n3",
            "n4",
        }
    with pytest.raises(ValueError, match="majority needs 3 of 5 nodes, but n2, n4, n5 are"):
        choose("majority", nodes, ["n1", "n3"], random.Random(0))
    with pytest.raises(ValueError, match="no node"):
        choose("minority", ["n1"], ["n1"], random.Random(0))


# -- the nemesis, against a recording target ------------------------------------------------------


def test_catalog_lists_every_group_fault_with_its_family() -> None:
    nemeses = descriptions()
    for fault in GROUP_FAULTS:
        assert fault in nemeses and nemeses[fault]
        assert fault_catalog()[fault].family == fault.split("-")[0]
    assert {f.split("-", 1)[1] for f in GROUP_FAULTS} <= set(SCOPES)
    s = FaultSchedule(["kill-all"], 1, random.Random(0))
    assert s.next_op() == ("start-kill", {"fault": "kill-all"})
    assert s.next_op() == ("stop-kill", {"fault": "kill-all"})


@pytest.mark.parametrize("fault", GROUP_FAULTS)
@pytest.mark.parametrize("n", [3, 4, 5])
def test_group_fault_records_what_it_did_and_stop_undoes_all_of_it(fault: str, n: int) -> None:
    t = RecordingTarget()
    c = cluster(n)
    start, stop = family_ops(fault)
    action, scope = fault.split("-")
    nem = build_nemesis([fault], t, random.Random(7))
    done = nem.invoke(c, nem_op(start, fault))
    assert done.type == "ok", done
    v = done.value
    victims = v["nodes"]
    assert len(victims) == group_size(scope, n) and victims == [x for x in c.names if x in victims]
    assert v["fault"] == fault
    assert v["signal"] == ("SIGKILL" if action == "kill" else "SIGSTOP")
    assert v["pids"] == {x: 1000 + int(x[1:]) for x in victims}
    assert "pid" not in v  # a group has no single pid
    for x in victims:
        assert f"{x} (pid {1000 + int(x[1:])})" in v["description"]
    assert share(len(victims), n) in v["description"]
    assert t.of(action) == victims and len(t.calls) == len(victims)
    t.calls.clear()
    stopped = nem.invoke(c, nem_op(stop, fault))
    assert stopped.type == "ok", stopped
    assert stopped.value["nodes"] == victims
    undo = "start" if action == "kill" else "resume"
    assert t.of(undo) == victims and len(t.calls) == len(victims)
    if action == "kill":  # the record names the new processes
        assert stopped.value["pids"] == {x: 2000 + int(x[1:]) for x in victims}
        assert "signal" not in stopped.value
    else:
        assert stopped.value["signal"] == "SIGCONT"
    # a second stop, and heals, have nothing of ours left to undo
    t.calls.clear()
    again = nem.invoke(c, nem_op(stop, fault))
    assert again.type == "ok" and again.value["nodes"] == [] and t.calls == []
    nem.heal(c)
    nem.heal(c)
    if action == "kill":
        assert t.calls == []
    else:  # heal CONTs every node, harmlessly, in case a crashed harness left one stopped
        assert sorted(t.calls) == sorted([("resume", x) for x in c.names] * 2)


def test_a_group_is_signalled_at_once_not_one_node_after_another() -> None:
    # every kill waits at a barrier for all the others: done sequentially, the first would
    # time out (BrokenBarrierError) and the fault would be info instead of ok
    t = RecordingTarget(barrier=threading.Barrier(5))
    nem = build_nemesis(["kill-all"], t, random.Random(1))
    done = nem.invoke(cluster(5), nem_op("start-kill", "kill-all"))
    assert done.type == "ok", done
    assert t.of("kill") == ["n1", "n2", "n3", "n4", "n5"]


def test_same_seed_same_victims_different_seed_other_victims() -> None:
    def victims(seed: int) -> list[list[str]]:
        nem = build_nemesis(["kill-majority"], RecordingTarget(), random.Random(seed))
        c = cluster(5)
        out = []
        for _ in range(8):
            out.append(nem.invoke(c, nem_op("start-kill", "kill-majority")).value["nodes"])
            nem.invoke(c, nem_op("stop-kill", "kill-majority"))
        return out

    assert victims(3) == victims(3)
    assert any(victims(s) != victims(3) for s in (4, 5, 6))


def test_partial_failure_is_info_names_the_node_and_heal_restarts_every_victim() -> None:
    t = RecordingTarget(fail_on={"n2"})
    c = cluster(3)
    nem = build_nemesis(["kill-all"], t, random.Random(0))
    done = nem.invoke(c, nem_op("start-kill", "kill-all"))
    assert done.type == "info"
    assert "node n2: connection lost" in done.error
    assert done.value["nodes"] == ["n1", "n2", "n3"]  # n2 may have died anyway
    assert done.value["signalled"] == ["n1", "n3"]
    assert "outcome unknown" in done.value["description"]
    nem.heal(c)
    assert t.of("start") == ["n1", "n2", "n3"]
    t.calls.clear()
    nem.heal(c)  # idempotent: nothing is remembered any more
    assert t.calls == []


def test_no_fault_is_claimed_when_not_enough_nodes_are_free() -> None:
    t = RecordingTarget()
    c = cluster(3)
    nem = build_nemesis(["kill-majority"], t, random.Random(0))
    first = nem.invoke(c, nem_op("start-kill", "kill-majority"))
    assert first.type == "ok" and len(first.value["nodes"]) == 2
    calls = list(t.calls)
    second = nem.invoke(c, nem_op("start-kill", "kill-majority"))  # no stop in between
    assert second.type == "fail" and second.value["nodes"] == []
    assert "already faulted" in second.error
    assert t.calls == calls  # nothing was signalled
    one = build_nemesis(["kill-minority", "pause-minority"], t, random.Random(0))
    for fault in ("kill-minority", "pause-minority"):
        res = one.invoke(cluster(1), nem_op(family_ops(fault)[0], fault))
        assert res.type == "fail" and "no node" in res.error
    assert t.calls == calls


def test_single_node_faults_keep_their_one_pid_record() -> None:
    t = RecordingTarget()
    nem = build_nemesis(["kill"], t, random.Random(9))
    done = nem.invoke(cluster(5), nem_op("start-kill", "kill"))
    (node,) = done.value["nodes"]
    assert done.value["pid"] == 1000 + int(node[1:])
    assert done.value["pids"] == {node: done.value["pid"]}


# -- real processes on a namespace cluster --------------------------------------------------------


def _processes(cluster: Cluster) -> dict[str, list[str]]:
    """{node: [state letter of each process in its namespace]}."""
    return {
        n.name: [localnet._proc_state(p) for p in localnet.netns_pids(n.extra["netns"])]
        for n in cluster.nodes
    }


def _eventually(what: str, fn: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = fn()
        except Exception:  # noqa: BLE001 - a node still starting may refuse; try again
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


def _client_op(f: str, key: int, value: object = None) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f=f, key=key, value=value)


@pytest.mark.cluster
@pytest.mark.parametrize("fault", ["kill-majority", "kill-all", "pause-majority"])
def test_group_fault_on_real_raft_kv(pooled_cluster, fault: str) -> None:
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    cluster = pooled_cluster(node_count=3)
    target = RaftKvTarget()
    target.setup(cluster)
    start, stop = family_ops(fault)
    nem = build_nemesis([fault], target, random.Random(4))
    try:
        before = {n: target.pid(cluster, n) for n in cluster.names}
        assert all(before.values()) and all(_processes(cluster).values())
        done = nem.invoke(cluster, nem_op(start, fault))
        assert done.type == "ok", done
        victims = done.value["nodes"]
        assert len(victims) == (3 if fault == "kill-all" else 2)
        assert done.value["pids"] == {n: before[n] for n in victims}
        procs = _processes(cluster)
        for n in cluster.names:
            if n not in victims:
                assert procs[n] and "T" not in procs[n], (n, procs)
            elif fault.startswith("kill"):
                assert procs[n] == [], f"{n} still has processes {procs[n]} after {fault}"
                refused = target.client(cluster, n).invoke(_client_op("read", 1))
                assert refused.type == "fail"
            else:
                assert procs[n] and all(s == "T" for s in procs[n]), (n, procs)
        stopped = nem.invoke(cluster, nem_op(stop, fault))
        assert stopped.type == "ok", stopped
        assert stopped.value["nodes"] == victims
        after = {n: target.pid(cluster, n) for n in cluster.names}
        if fault.startswith("kill"):
            assert stopped.value["pids"] == {n: after[n] for n in victims}
            assert all(after[n] and after[n] != before[n] for n in victims)
        else:
            assert after == before
        procs = _processes(cluster)
        assert all(procs[n] and "T" not in procs[n] for n in cluster.names), procs
        # the cluster serves again, through every node
        _eventually(
            "a write through the leader",
            lambda: (
                target.client(cluster, target.leader(cluster))
                .invoke(_client_op("write", 7, 42))
                .type
                == "ok"
            ),
        )
        for n in cluster.names:
            client = target.client(cluster, n)

            def read_42(client: Client = client) -> bool:
                res = client.invoke(_client_op("read", 7))
                return res.type == "ok" and res.value == 42

            _eventually(f"a read of the write through {n}", read_42)
        nem.heal(cluster)
        nem.heal(cluster)  # idempotent, and it touched nothing that runs
        assert {n: target.pid(cluster, n) for n in cluster.names} == after
    finally:
        try:
            nem.heal(cluster)
        finally:
            target.teardown(cluster)


# -- end to end: the no-fsync bug -----------------------------------------------------------------


def _dsjepsen_test(cluster: Cluster, store: Path, *argv: str) -> tuple[int, dict, Path]:
    """Run `dsjepsen test` on this local cluster; (exit code, results.json, run dir)."""
    full = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv",
        "--cluster-name", cluster.name, "--node-count", str(len(cluster.nodes)),
        "--store", str(store), *argv,
    ]  # fmt: skip
    proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # a hung run must not outlive the test (the fixture then
            proc.kill()  # takes the cluster down)
            proc.wait()
    run_dir = (store / "latest").resolve()
    assert (run_dir / "results.json").exists(), f"exit {proc.returncode}: {err[-2000:]}"
    return proc.returncode, json.loads((run_dir / "results.json").read_text()), run_dir


E2E = ["--nemesis", "kill-all", "--nemesis-interval", "4", "--time-limit", "25"]


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1])
def test_kill_all_cannot_lose_what_no_fsync_wrote(
    pooled_cluster, tmp_path: Path, seed: int
) -> None:
    """A SIGKILL is not a power failure: what write() handed the kernel stays in the page
    cache, so no-fsync loses nothing when every node is killed at once."""
    cluster = pooled_cluster(node_count=3)
    code, results, run_dir = _dsjepsen_test(
        cluster, tmp_path, "--bug", "no-fsync", *E2E, "--seed", str(seed)
    )
    assert results["valid"] is True, results.get("reason")
    assert code == 0
    # the faults are on record: every node killed at once, then restarted
    history = read_jsonl(run_dir / "history.jsonl")
    kills = [op for op in history.nemesis_ops() if op.f == "start-kill" and op.type == "ok"]
    assert kills and all(op.value["nodes"] == cluster.names for op in kills)
    restarts = [op for op in history.nemesis_ops() if op.f == "stop-kill" and op.type == "ok"]
    assert restarts and all(op.value["nodes"] == cluster.names for op in restarts)


@pytest.mark.cluster
@pytest.mark.slow
def test_kill_all_leaves_the_correct_server_valid(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=3)
    code, results, run_dir = _dsjepsen_test(cluster, tmp_path, *E2E, "--seed", "1")
    assert results["valid"] is True, results.get("reason")
    assert code == 0
    history = read_jsonl(run_dir / "history.jsonl")
    assert any(
        op.f == "start-kill" and op.type == "ok" and op.value["nodes"] == cluster.names
        for op in history.nemesis_ops()
    )
    assert results["stats"]["by_f"]["write"]["ok"] > 50
