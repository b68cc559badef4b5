"""The g-set, g-counter and pn-counter workloads: their op streams, their declarations, and a
small run of each against real crdt-kv replicas on loopback (a partition in the middle, final
reads in rounds after the heal) judged by the workload's own checkers."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from crdt_replicas import Replicas, judge, now_ns, replica_sets

from dsjepsen import plugins
from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.counter import CounterChecker
from dsjepsen.checkers.set_full import SetFullChecker
from dsjepsen.options import kwargs, parse_options
from dsjepsen.workloads.base import Workload
from dsjepsen.workloads.counter import GCounterWorkload, PNCounterWorkload
from dsjepsen.workloads.gset import GSetWorkload


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., Replicas]]:
    with replica_sets(tmp_path) as make:
        yield make


def stream(cls: type[Workload], seed: int, n: int = 2000, **kw: object) -> list:
    w = cls(seed=seed, **kw)
    return [w.next_op() for _ in range(n)]


@pytest.mark.parametrize("cls", [GSetWorkload, GCounterWorkload, PNCounterWorkload])
def test_same_seed_same_stream_and_declarations(cls: type[Workload]) -> None:
    assert stream(cls, 7) == stream(cls, 7)
    assert stream(cls, 7) != stream(cls, 8)
    assert cls.converges is True
    assert {op.f for op in stream(cls, 3)} == set(cls.needs)
    assert set(cls.required_ok) == set(cls.needs)
    [timeout] = [o for o in cls.options if o.name == "convergence-timeout"]
    assert timeout.type == "float" and timeout.default == 30.0
    # registered, and built from parsed options exactly as the run builds it
    assert plugins.get("workloads", cls.name) is cls
    values = parse_options(cls.options, {"key-count": "3", "convergence-timeout": "12"}, cls.name)
    w = cls(seed=1, **kwargs(cls.options, values))
    assert getattr(w, "convergence_timeout") == 12.0  # noqa: B009 - not on the base class
    assert {op.key for op in stream(cls, 1, 500, keys=3) if op.f in cls.needs} <= set(range(99))


def test_g_set_adds_unique_elements_retires_full_sets_and_reads_every_set_at_the_end() -> None:
    w = GSetWorkload(seed=5, keys=3, adds_per_key=20)
    ops = [w.next_op() for _ in range(3000)]
    adds = [op for op in ops if op.f == "add"]
    assert len({op.value for op in adds}) == len(adds)  # unique across the whole run
    per_key = Counter(op.key for op in adds)
    assert max(per_key.values()) == 20 and len(per_key) >= len(adds) // 20
    assert 0.4 < len(adds) / len(ops) < 0.6
    finals = w.final_ops()
    assert {op.key for op in finals} == {op.key for op in ops}
    assert all(op.f == "read-set" and op.value is None for op in finals)
    assert [type(c) for c in w.checkers()] == [SetFullChecker, ConvergenceChecker]


def test_counter_deltas() -> None:
    g = [op.value for op in stream(GCounterWorkload, 2) if op.f == "increment"]
    assert set(g) == {1, 2, 3, 4, 5}
    pn = [op.value for op in stream(PNCounterWorkload, 2) if op.f == "increment"]
    assert min(pn) == -5 and max(pn) == 5 and 0 not in pn
    w = PNCounterWorkload(seed=1, keys=4)
    assert [op.key for op in w.final_ops()] == [0, 1, 2, 3]
    [bounds, conv] = w.checkers()
    assert isinstance(bounds, CounterChecker) and bounds.lower == "node"
    assert isinstance(conv, ConvergenceChecker)


def test_crdt_target_speaks_what_the_workloads_need() -> None:
    target = plugins.get("targets", "crdt-kv")
    for cls in (GSetWorkload, GCounterWorkload, PNCounterWorkload):
        assert cls.needs <= target.speaks
        assert not cls.needs <= plugins.get("targets", "raft-kv").speaks


def mini_run(r: Replicas, w: Workload, n_ops: int, seed: int, patience: float) -> dict:
    """The run layer in miniature: ops through random nodes, the first node cut off for the
    middle third, heal, then the final ops through every node in rounds until they agree (or
    `patience` seconds pass: some buggy stores never agree)."""
    rng = random.Random(seed)
    for i in range(n_ops):
        if i == n_ops // 3:
            r.partition([r.names[0]])
        if i == 2 * n_ops // 3:
            r.heal()
        spec = w.next_op()
        r.invoke(rng.choice(r.names), spec.f, spec.key, spec.value)
    healed = now_ns(r)
    final = len(r.history)
    deadline = time.monotonic() + patience
    while True:
        answers = {
            (n, s.key): r.invoke(n, s.f, s.key).value for s in w.final_ops() for n in r.names
        }
        by_key: dict = {}
        for (_, key), v in answers.items():
            by_key.setdefault(key, set()).add(repr(sorted(v)) if isinstance(v, list) else repr(v))
        if all(len(vs) == 1 for vs in by_key.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return judge(r, final, healed, w.checkers())


@pytest.mark.parametrize(
    ("cls", "bug", "caught_by"),
    [
        (GSetWorkload, None, None),
        (GSetWorkload, "lww-set", "set-full"),
        (GCounterWorkload, None, None),
        (GCounterWorkload, "sum-merge", "counter"),
        (PNCounterWorkload, "no-anti-entropy", "convergence"),
    ],
)
def test_workload_against_real_replicas(replicas, cls, bug, caught_by) -> None:
    r = replicas(3, *(("--bug", bug) if bug else ()))
    res = mini_run(r, cls(seed=3, keys=2), 150, seed=3, patience=15 if bug is None else 2)
    if caught_by is None:
        assert all(v.valid is True for v in res.values()), {k: v.reason for k, v in res.items()}
        assert res["convergence"].details["time_to_converge_s"] < 5
    else:
        assert res[caught_by].valid is False, res[caught_by].reason
        assert res[caught_by].anomalies[0]["message"]
