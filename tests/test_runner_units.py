"""Runner pieces in isolation: rate limiter, recorder, run store, stats and vacuous checks,
and the seed determinism of the fault schedule the runner derives."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest

from dsjepsen.checkers.stats import check_stats, op_counts
from dsjepsen.checkers.vacuous import check_vacuous
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.generator import RateLimiter
from dsjepsen.harness.recorder import Recorder
from dsjepsen.harness.store import create_run_dir
from dsjepsen.history import History, Op


def test_rate_limiter_spaces_slots_across_threads() -> None:
    t = [100.0]
    rl = RateLimiter(50, clock=lambda: t[0])
    slots = [rl.reserve() for _ in range(10)]
    assert slots == pytest.approx([100 + i / 50 for i in range(10)])
    t[0] = 200.0  # fell behind: restart from now, no burst
    assert rl.reserve() == 200.0 and rl.reserve() == pytest.approx(200.02)


def test_rate_limiter_real_threads_hold_the_rate() -> None:
    rl = RateLimiter(200)
    stop = threading.Event()
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            assert rl.wait(stop)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(5)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # 100 slots at 200/s take at least ~0.5 s whatever the number of threads
    assert time.monotonic() - t0 >= 0.45
    stop.set()
    assert not rl.wait(stop) or RateLimiter(0).interval == 0


def test_recorder_stamps_index_and_monotonic_time(tmp_path) -> None:
    rec = Recorder(tmp_path / "h.jsonl")

    def worker(p: int) -> None:
        for i in range(50):
            rec.record(Op(0, 0, p, "invoke", "write", i, key=1))
            rec.record(Op(0, 0, p, "ok", "write", i, key=1))

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rec.close()
    h = read_jsonl(tmp_path / "h.jsonl")
    assert [op.index for op in h] == list(range(800))
    assert all(a.time <= b.time for a, b in zip(h.ops, h.ops[1:], strict=False))
    h.validate()
    assert rec.counts["ok"] == 400
    rec.record(Op(0, 0, 1, "invoke", "read", None))  # after close: dropped, not an error
    assert rec.dropped == 1


def test_the_recorder_keeps_no_op_in_memory_and_reads_them_back(tmp_path) -> None:
    """An hour at 1,000 ops/s is millions of ops: recording them must not grow the
    controller's memory; what a final phase asks for is read back from the file."""
    import tracemalloc

    rec = Recorder(tmp_path / "h.jsonl")
    rec.record(Op(0, 0, 0, "invoke", "write", 0, key=1))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for i in range(1, 20_000):
        rec.record(Op(0, 0, i % 7, "invoke" if i % 2 == 0 else "ok", "write", i, key=1))
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 200_000, grown  # a list of the ops would hold about 4 MB
    seen = rec.ops  # read back once, when first looked at
    assert rec.next_index == len(seen) == 20_000 and seen[0].index == 0
    assert [op.value for op in seen[19_998:]] == [19_998, 19_999]
    rec.close()


def test_partial_history_of_a_killed_writer_is_readable(tmp_path) -> None:
    rec = Recorder(tmp_path / "h.jsonl")
    rec.record(Op(0, 0, 0, "invoke", "read", None, key=1))
    rec.record(Op(0, 0, 0, "ok", "read", 3, key=1))
    rec.close()
    with open(tmp_path / "h.jsonl", "a") as fh:
        fh.write('{"index":2,"time":5,"proc')  # torn last line
    assert len(read_jsonl(tmp_path / "h.jsonl")) == 2


def test_run_dir_layout_and_latest_links(tmp_path) -> None:
    a = create_run_dir(tmp_path, "raft-kv-register-none")
    b = create_run_dir(tmp_path, "raft-kv-register-none")  # same second: suffixed
    assert a.path != b.path and a.path.parent == b.path.parent
    assert (tmp_path / "latest").resolve() == b.path.resolve()
    assert (tmp_path / "raft-kv-register-none" / "latest").resolve() == b.path.resolve()
    b.update_test(name="x", seed=1)
    b.update_test(end_time="later")
    assert json.loads((b.path / "test.json").read_text()) == {
        "name": "x",
        "seed": 1,
        "end_time": "later",
    }
    assert b.node_dir("n1").is_dir()


def _h(*rows: tuple) -> History:
    return History([Op(i, i, *row) for i, row in enumerate(rows)])


def test_stats_and_vacuous_counts() -> None:
    h = _h(
        (0, "invoke", "read", None, 1),
        (0, "ok", "read", 1, 1),
        (1, "invoke", "write", 2, 1),
        (1, "info", "write", 2, 1),
        ("nemesis", "invoke", "start-partition", {"fault": "partition-one"}),
        ("nemesis", "ok", "start-partition", {"fault": "partition-one", "nodes": ["n1"]}),
        (2, "invoke", "write", 3, 1),
        (2, "fail", "write", 3, 1),
        (3, "invoke", "write", 4, 1),
        (3, "ok", "write", 4, 1),
        (4, "invoke", "read", None, 1),
    )
    assert op_counts(h.ops) == {
        "read": {"ok": 1, "fail": 0, "info": 0, "pending": 1},
        "write": {"ok": 1, "fail": 1, "info": 1, "pending": 0},
    }
    s = check_stats(h)
    assert s.valid is True and s.details["total"]["count"] == 5
    assert s.details["nemesis"] == {"start-partition": {"ok": 1, "fail": 0, "info": 0}}
    v = check_vacuous(h, required_ok={"read": 1, "write": 1}, faults=["partition-one"])
    assert v.valid is True
    v = check_vacuous(h, required_ok={"read": 2, "write": 1}, faults=["partition-one", "kill"])
    assert v.valid == "unknown"
    assert "only 1 read" in v.reason and "fault kill was requested but never took effect" in (
        v.reason
    )
    # ops invoked from index 8 on (final reads) do not count for the run
    v = check_vacuous(h, required_ok={"write": 1}, before_index=8)
    assert v.valid == "unknown"


def test_failed_fault_start_does_not_count_as_applied() -> None:
    h = _h(
        ("nemesis", "invoke", "start-kill", {"fault": "kill-leader"}),
        ("nemesis", "fail", "start-kill", {"fault": "kill-leader", "nodes": []}),
    )
    v = check_vacuous(h, required_ok={}, faults=["kill-leader"])
    assert v.valid == "unknown" and "kill-leader" in v.reason


def test_fault_schedule_is_seeded() -> None:
    from dsjepsen.nemesis.schedule import FaultSchedule

    names = ["partition-majority", "kill", "pause"]

    def ops(seed: int) -> list:
        s = FaultSchedule(names, 1.0, random.Random(f"{seed}:schedule"))
        return [s.next_op() for _ in range(40)]

    assert ops(3) == ops(3)
    assert ops(3) != ops(4)


def test_final_reads_wait_for_the_targets_own_readiness_not_only_a_leader() -> None:
    """`Target.ready_for_final_reads` decides when the final reads start (a leader may be
    known long before a replica has caught up); the wait is bounded by --recovery-timeout."""
    from types import SimpleNamespace

    from dsjepsen.harness.phases import recover
    from dsjepsen.targets.base import Target

    class CatchingUp(Target):
        elects_leader = True
        speaks = frozenset({"read"})

        def __init__(self, ready_after: int) -> None:
            self.asked = 0
            self.ready_after = ready_after

        def leader(self, cluster):  # a leader from the start
            return "n1"

        def ready_for_final_reads(self, cluster) -> bool:
            self.asked += 1
            return self.asked > self.ready_after

        setup = teardown = start = kill = pause = resume = log_files = client = None  # type: ignore[assignment]

    def ctx(target: Target, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(
            target=target, cluster=None,
            workload=SimpleNamespace(converges=False, final_ops=lambda: ["read"]),
            config=SimpleNamespace(recovery_timeout=timeout),
            recorder=SimpleNamespace(start_ns=0), healed_at=None,
        )  # fmt: skip

    t = CatchingUp(ready_after=2)
    t0 = time.monotonic()
    recover(ctx(t, 10.0))  # type: ignore[arg-type]
    assert t.asked == 3 and 0.9 < time.monotonic() - t0 < 5  # waited for it, not the leader
    never = CatchingUp(ready_after=10**9)
    t0 = time.monotonic()
    recover(ctx(never, 1.0))  # type: ignore[arg-type]
    assert 1.0 <= time.monotonic() - t0 < 3 and never.asked >= 2  # bounded by the timeout
    # the default: a leader is enough
    assert Target.ready_for_final_reads(t, None) is True  # type: ignore[arg-type]


def test_a_completion_records_the_node_that_served_it(tmp_path):
    """The interpreter keeps the client's node on the invocation and the node the answer
    names on the completion (a request forwarded to the leader)."""
    import dataclasses

    from dsjepsen.harness.interpreter import Interpreter
    from dsjepsen.harness.recorder import Recorder
    from dsjepsen.targets.clients import completed, served_by

    rec = Recorder(tmp_path / "h.jsonl")
    interp = Interpreter(rec)
    inv = interp.invocation("write", 1, process=0, key=1, node="n3")
    comp = interp.complete(inv, lambda op: served_by(completed(op, "ok"), {"node": "n1"}))
    assert (inv.node, comp.node) == ("n3", "n1")
    # an answer that names no node, or a client that says nothing, keeps the bound node
    inv2 = interp.invocation("write", 2, process=1, key=1, node="n2")
    assert interp.complete(inv2, lambda op: served_by(completed(op, "ok"), {})).node == "n2"
    inv3 = interp.invocation("write", 3, process=2, key=1, node="n2")
    same = interp.complete(inv3, lambda op: dataclasses.replace(op, type="ok", node=None))
    assert same.node == "n2"
    rec.close()
