"""crdt-kv without namespaces: real server processes on 127.0.0.1, talked to by the real client.

Partitions are emulated by the links between replicas: each node reaches each peer through a
small TCP relay owned by the test, which can be cut (every connection through it is reset, new
ones are refused) and healed. Each bug is run beside the correct store under the fault that
exposes it, and the histories the client records are judged by the real checkers. No root.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crdt_replicas import Replicas, free_port, judge, now_ns, replica_sets

from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.counter import CounterChecker
from dsjepsen.checkers.set_full import SetFullChecker
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.cluster.control.local import LocalRemote
from dsjepsen.errors import ConfigError
from dsjepsen.history import Op
from dsjepsen.targets.contract_client import ContractClient
from dsjepsen.targets.crdt_kv.crdt import GSet, PNCounter
from dsjepsen.targets.crdt_kv.target import CrdtKvTarget

SERVER = [sys.executable, "-m", "dsjepsen.targets.crdt_kv.server"]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., Replicas]]:
    with replica_sets(tmp_path) as make:
        yield make


# -- the contract and durability ----------------------------------------------------------------


def test_one_node_serves_the_set_and_counter_contract(replicas) -> None:
    r = replicas(1)
    c = r.client("n1")
    assert c.request("GET", "/set/a") == (200, {"elements": []})
    assert c.request("POST", "/set/a", {"element": 3})[0] == 200
    assert c.request("POST", "/set/a", {"element": [1, {"x": 2}]})[0] == 200
    assert c.request("POST", "/set/a", {"element": 3})[0] == 200  # idempotent
    assert c.request("GET", "/set/a") == (200, {"elements": [3, [1, {"x": 2}]]})
    assert c.request("POST", "/set/a", {"nope": 1})[0] == 400
    assert c.request("POST", "/counter/c", {"delta": 1.5})[0] == 400
    assert c.request("POST", "/counter/c", {"delta": True})[0] == 400
    assert c.request("GET", "/counter/c") == (200, {"value": 0})
    assert c.request("DELETE", "/set/a")[0] == 405
    assert c.request("GET", "/kv/1")[0] == 404
    st = c.request("GET", "/status")[1]
    assert st["id"] == "n1" and st["role"] == "replica" and st["leader"] is None
    # the client maps the same answers onto Jepsen's op types
    assert r.invoke("n1", "increment", "c", 5).type == "ok"
    assert r.invoke("n1", "increment", "c", -7).type == "ok"
    assert r.invoke("n1", "read-counter", "c").value == -2
    assert r.invoke("n1", "add", "k/1", 9).type == "ok"  # a key with a slash is one key
    assert r.invoke("n1", "read-set", "k/1").value == [9]
    bad = r.invoke("n1", "increment", "c", "x")
    assert bad.type == "fail" and "integer" in bad.error


def test_acknowledged_updates_survive_sigkill(replicas) -> None:
    """Every acknowledged update is on disk: 200 concurrent adds and increments, a snapshot,
    20 more (journal only), SIGKILL, restart, all there (the journal's group commit shares
    fsyncs, it never skips one; replaying it over the snapshot changes nothing twice)."""
    r = replicas(1, "--snapshot-interval", "0.2")
    done: list[Op] = []

    def work(i: int, n: int) -> None:
        c = ContractClient("127.0.0.1", r.ports["n1"], timeout=10.0, node="n1")
        try:
            for j in range(n):
                op = Op(0, 0, i, "invoke", "add", i * 100 + j, key="s", node="n1")
                done.append(c.invoke(op))
                op = Op(0, 0, i, "invoke", "increment", j - 5, key="c", node="n1")
                done.append(c.invoke(op))
        finally:
            c.close()

    threads = [threading.Thread(target=work, args=(i, 10)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 10
    while not (r.tmp / "n1" / "snapshot.json").exists():
        assert time.monotonic() < deadline, "no snapshot was written"
        time.sleep(0.05)
    work(10, 10)
    assert len(done) == 220 and all(op.type == "ok" for op in done)
    r.kill("n1")
    r.start("n1")
    assert len(r.invoke("n1", "read-set", "s").value) == 110
    assert r.invoke("n1", "read-counter", "c").value == 11 * sum(j - 5 for j in range(10))


def test_volatile_forgets_acknowledged_adds_on_sigkill(replicas) -> None:
    results = {}
    for bugs in ((), ("--bug", "volatile", "--flush-interval", "30")):
        r = replicas(1, *bugs)
        for e in range(5):
            assert r.invoke("n1", "add", 0, e).type == "ok"
        assert r.invoke("n1", "increment", 0, 4).type == "ok"
        r.kill("n1")
        r.start("n1")
        final = len(r.history)
        r.invoke("n1", "read-set", 0)
        r.invoke("n1", "read-counter", 0)
        checkers = [SetFullChecker(), CounterChecker(lower="node")]
        results[bool(bugs)] = judge(r, final, now_ns(r), checkers)
    assert all(v.valid is True for v in results[False].values())
    buggy = results[True]
    assert buggy["set-full"].valid is False
    assert {a["element"] for a in buggy["set-full"].anomalies} == set(range(5))
    assert all(a["node"] == "n1" for a in buggy["set-full"].anomalies)
    assert buggy["counter"].valid is False


# -- replication, partitions and the bugs -------------------------------------------------------


def test_partitioned_replicas_converge_after_the_heal(replicas) -> None:
    r = replicas(3)
    r.partition(["n1"])
    for i in range(10):
        assert r.invoke(["n1", "n2", "n3"][i % 3], "add", 0, i).type == "ok"
        assert r.invoke(["n1", "n2", "n3"][i % 3], "increment", 1, i - 3).type == "ok"
    time.sleep(0.2)
    assert r.invoke("n1", "read-set", 0).value == [0, 3, 6, 9]  # n1 alone, for now
    r.heal()
    healed = now_ns(r)
    final = len(r.history)
    assert r.until_agree("read-set", 0) == dict.fromkeys(r.names, list(range(10)))
    assert r.until_agree("read-counter", 1) == dict.fromkeys(r.names, 15)
    res = judge(r, final, healed, [SetFullChecker(), CounterChecker("node"), ConvergenceChecker()])
    assert all(v.valid is True for v in res.values()), {k: v.reason for k, v in res.items()}
    assert res["convergence"].details["time_to_converge_s"] < 5


def test_a_restarted_replica_keeps_what_it_merged_and_a_wiped_one_is_sent_it_again(
    replicas,
) -> None:
    """n2 learns n1's elements by gossip. Killed and restarted, it still has them at once (they
    were journaled before it applied them, even with no snapshot). Restarted with its data
    wiped, it is sent them again: n1 sees its new boot id and resends every key."""
    r = replicas(2, "--snapshot-interval", "60")
    for e in range(5):
        r.invoke("n1", "add", 0, e)
    assert r.until_agree("read-set", 0)["n2"] == list(range(5))
    r.kill("n2")
    r.start("n2")
    assert r.invoke("n2", "read-set", 0).value == list(range(5))  # the first read, no gossip
    r.kill("n2")
    shutil.rmtree(r.tmp / "n2")
    r.start("n2")
    assert r.until_agree("read-set", 0)["n2"] == list(range(5))


def test_lww_set_loses_concurrent_adds_and_the_checkers_name_element_and_replica(replicas):
    results = {}
    for bugs in ((), ("--bug", "lww-set")):
        r = replicas(2, *bugs)
        r.partition(["n1"])
        assert r.invoke("n1", "add", 0, 1).type == "ok"
        assert r.invoke("n2", "add", 0, 2).type == "ok"  # later stamp: the whole set wins
        assert r.invoke("n1", "read-set", 0).value == [1]
        r.heal()
        healed = now_ns(r)
        final = len(r.history)
        r.until_agree("read-set", 0)
        results[bool(bugs)] = judge(r, final, healed, [SetFullChecker(), ConvergenceChecker()])
    assert all(v.valid is True for v in results[False].values())
    buggy = results[True]
    [lost] = buggy["set-full"].anomalies
    assert lost["type"] == "lost" and lost["element"] == 1 and lost["node"] == "n1"
    assert "element 1 of key 0 was lost" in lost["message"] and "through n1" in lost["message"]
    [gone] = buggy["convergence"].anomalies
    assert gone["type"] == "replica-lost-element" and gone["node"] == "n1"
    assert gone["message"].startswith("n1 lost element 1 of key 0")


def test_sum_merge_over_counts_with_every_gossip(replicas) -> None:
    results = {}
    for bugs in ((), ("--bug", "sum-merge")):
        r = replicas(2, *bugs)
        assert r.invoke("n1", "increment", 0, 2).type == "ok"
        assert r.invoke("n2", "increment", 0, 3).type == "ok"
        time.sleep(0.3)  # some gossip rounds
        final = len(r.history)
        r.read_everywhere("read-counter", 0)
        results[bool(bugs)] = judge(r, final, 0, [CounterChecker("node"), ConvergenceChecker()])
    assert all(v.valid is True for v in results[False].values())
    counter = results[True]["counter"]
    assert counter.valid is False
    assert {a["type"] for a in counter.anomalies} >= {"out-of-bounds", "final-read"}
    assert any("above the upper bound 5" in a["message"] for a in counter.anomalies)


def test_no_anti_entropy_never_repairs_what_a_partition_kept_away(replicas) -> None:
    results = {}
    for bugs in ((), ("--bug", "no-anti-entropy")):
        r = replicas(2, *bugs)
        assert r.invoke("n1", "add", 0, 1).type == "ok"  # reachable: pushed once, arrives
        assert r.invoke("n1", "increment", 0, 1).type == "ok"
        time.sleep(0.2)
        r.partition(["n1"])
        assert r.invoke("n1", "add", 0, 2).type == "ok"  # pushed while cut off: lost for good
        assert r.invoke("n1", "increment", 0, 10).type == "ok"
        time.sleep(0.2)
        r.heal()
        healed = now_ns(r)
        final = len(r.history)
        r.until_agree("read-set", 0, timeout=0.5)  # ample: gossip runs every 20 ms
        r.until_agree("read-counter", 0, timeout=0.5)
        results[bool(bugs)] = judge(
            r, final, healed, [SetFullChecker(), CounterChecker("node"), ConvergenceChecker()]
        )
    assert all(v.valid is True for v in results[False].values())
    buggy = results[True]
    assert buggy["set-full"].valid is True  # element 2 is still on n1: not lost, but ...
    conv = buggy["convergence"]
    assert conv.valid is False
    msgs = [a["message"] for a in conv.anomalies]
    assert "key 0 (read-set) did not converge: n2 lacks 1 (2); n1 have all 2." in msgs
    assert "key 0 (read-counter) did not converge: n1 reads 11, n2 reads 1." in msgs
    assert buggy["counter"].valid is False  # n2's final 1 is no sum the increments can make


def test_crdt_merges_are_idempotent_commutative_and_the_bugs_are_not() -> None:
    a, b = PNCounter(), PNCounter()
    a.p.raise_to("r1", 3)
    b.p.raise_to("r2", 4)
    b.n.raise_to("r2", 1)
    for _ in range(3):
        a.merge(b.to_wire())
        b.merge(a.to_wire())
    assert a.value() == b.value() == 6
    for _ in range(3):
        a.merge(b.to_wire(), add_for="r2")  # sum-merge: each gossip counts r2 again
    assert a.value() == 6 + 3 * 3
    s1, s2 = GSet(), GSet()
    s1.add(1)
    s2.add(2)
    s1.merge(s2.read())
    s2.merge(s1.read())
    assert s1.read() == s2.read() == [1, 2]
    l1, l2 = GSet(), GSet()
    l1.lww_add(1, "r1", now_ns=10)
    l2.lww_add(2, "r2", now_ns=20)
    l1.lww_merge(l2.read(), l2.stamp)
    assert l1.read() == [2]  # the concurrent add of 1 is gone


# -- the target: options and the upload path ----------------------------------------------------


def test_target_refuses_unknown_bugs_and_declares_its_vocabulary() -> None:
    with pytest.raises(ConfigError, match="unknown crdt-kv bug 'nope'"):
        CrdtKvTarget(bugs=["nope"])
    t = CrdtKvTarget(bugs=("lww-set", "lww-set", "volatile"))
    assert t.bugs == ("lww-set", "volatile")
    assert {"add", "read-set", "increment", "read-counter"} == set(t.speaks)
    assert t.default_workload == "g-set" and t.elects_leader is False
    [opt] = t.options
    assert (
        opt.name == "bug"
        and opt.kwarg == "bugs"
        and opt.parse("lww-set,volatile")
        == (
            "lww-set",
            "volatile",
        )
    )
    res = subprocess.run(
        [*SERVER, "--id", "n1", "--listen", "127.0.0.1:1", "--data-dir", "/tmp", "--bug", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0 and "unknown --bug 'x'" in res.stderr


def test_upload_runs_the_stdlib_only_copy_with_the_nodes_python3(tmp_path: Path) -> None:
    """The ssh/docker path of CrdtKvTarget, over a Remote that runs commands on this machine:
    the package is copied to the node's workdir and started as `python3 -m crdt_kv.server`."""
    node = Node("n1", "127.0.0.1", str(tmp_path / "node"))
    remote = LocalRemote(node, None)
    cluster = Cluster(kind="ssh", nodes=[node], remotes={"n1": remote}, name="upload")
    target = CrdtKvTarget(port=free_port())
    try:
        target.setup(cluster)
        code = Path(target.code_dir(node))
        assert (code / "crdt_kv" / "server.py").exists()
        assert not (code / "crdt_kv" / "target.py").exists()
        # no site-packages (so no dsjepsen): the copy must import on the standard library alone
        remote.run(["python3", "-S", "-c", "import crdt_kv.server"], cwd=str(code))
        assert "python3 -m crdt_kv.server" in target.describe(cluster, "n1")
        c = target.client(cluster, "n1")
        inv = Op(0, 0, 0, "invoke", "add", 5, key=1, node="n1")
        assert c.invoke(inv).type == "ok"
        assert c.invoke(Op(0, 0, 0, "invoke", "read-set", None, key=1)).value == [5]
        c.close()
        assert target.leader(cluster) is None
    finally:
        target.teardown(cluster)
    assert not Path(target.data_dir(node)).exists()


# -- corruption ---------------------------------------------------------------------------------


def _journaled(tmp_path) -> bytes:
    import asyncio

    from dsjepsen.targets.crdt_kv.storage import Journal, Storage

    st = Storage(str(tmp_path), "n1")

    async def go() -> None:
        j = Journal(st)
        for i in range(3):
            await j.append([{"t": "g-counter", "k": 1, "v": {st.replica_id: 20 + i}}], lambda: None)

    asyncio.run(go())
    st.close()
    (journal,) = tmp_path.glob("journal-*.jsonl")
    return journal.read_bytes()


def test_a_flipped_count_in_the_journal_is_refused_and_a_torn_tail_is_cut(tmp_path):
    """Without its checksums crdt-kv read a flipped digit as another count (a file-bitflip run
    served 246 where at most 228 increments had happened); now the record is refused."""
    from dsjepsen.targets.crdt_kv.storage import Storage
    from dsjepsen.targets.serverkit import CorruptData

    raw = _journaled(tmp_path)
    (journal,) = tmp_path.glob("journal-*.jsonl")
    assert [r["v"] for r in Storage(str(tmp_path), "n1").load()[1]][-1] == {
        Storage(str(tmp_path), "n1").replica_id: 22
    }
    at = raw.index(b":21}") + 2  # '1' -> '3': still valid JSON, another count
    journal.write_bytes(raw[:at] + bytes([raw[at] ^ 2]) + raw[at + 1 :])
    with pytest.raises(CorruptData, match=r"record 2 \(bytes \d+\.\.\d+\) fails its checksum"):
        Storage(str(tmp_path), "n1").load()
    journal.write_bytes(raw[:-5])  # the file ends inside the last record: a torn tail
    assert len(Storage(str(tmp_path), "n1").load()[1]) == 2


def test_a_node_with_a_corrupt_replica_id_refuses_to_start(tmp_path):
    import subprocess
    import sys

    _journaled(tmp_path)
    rid = (tmp_path / "replica").read_bytes()
    (tmp_path / "replica").write_bytes(rid[:-1] + bytes([rid[-1] ^ 1]))
    res = subprocess.run(
        [sys.executable, "-m", "dsjepsen.targets.crdt_kv.server", "--id", "n1",
         "--listen", "127.0.0.1:0", "--peers", "", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 71, res.stderr
    assert "refusing to start" in res.stderr and "replica id fails its checksum" in res.stderr
