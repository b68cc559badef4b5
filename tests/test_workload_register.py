"""The register workload's op stream: deterministic per seed, unique values per key, bounded
ops per key, spread over all active keys."""

from __future__ import annotations

from collections import Counter, defaultdict

from dsjepsen.workloads.register import RegisterWorkload


def stream(seed: int, n: int = 2000, keys: int = 5, ops_per_key: int = 40) -> list:
    w = RegisterWorkload(seed=seed, keys=keys, ops_per_key=ops_per_key)
    return [w.next_op() for _ in range(n)]


def test_same_seed_same_sequence_other_seed_other_sequence() -> None:
    assert stream(7) == stream(7)
    assert stream(7) != stream(8)


def test_written_values_are_unique_per_key() -> None:
    written: dict[int, list[int]] = defaultdict(list)
    for op in stream(3):
        if op.f == "write":
            written[op.key].append(op.value)
        elif op.f == "cas":
            old, new = op.value
            written[op.key].append(new)
            assert old in written[op.key][:-1], "cas compares against a value written before"
    for key, values in written.items():
        assert len(values) == len(set(values)), key


def test_ops_per_key_bounded_and_keys_fresh() -> None:
    ops = stream(11, n=3000, keys=4, ops_per_key=25)
    per_key = Counter(op.key for op in ops)
    assert max(per_key.values()) <= 25
    # retired keys got exactly their quota; ~3000/25 keys were used
    assert sum(1 for c in per_key.values() if c == 25) >= 3000 // 25 - 4
    assert len(per_key) >= 3000 // 25


def test_mix_and_spread() -> None:
    ops = stream(5, n=4000)
    fs = Counter(op.f for op in ops)
    assert fs["read"] > 1500 and fs["write"] > 800 and fs["cas"] > 500
    # consecutive ops hit different keys: any worker sees all active keys
    switches = sum(1 for a, b in zip(ops, ops[1:], strict=False) if a.key != b.key)
    assert switches > len(ops) * 0.6


def test_final_ops_read_every_key_used() -> None:
    w = RegisterWorkload(seed=1, keys=3, ops_per_key=10)
    keys = {w.next_op().key for _ in range(200)}
    finals = w.final_ops()
    assert {op.key for op in finals} >= keys
    assert all(op.f == "read" and op.value is None for op in finals)


def test_consistency_option_chooses_the_checker() -> None:
    from dsjepsen.cli import build_parser
    from dsjepsen.harness.config import config_from_args

    argv = ["test", "--consistency", "sequential"]
    cfg = config_from_args(build_parser().parse_args(argv), argv=["dsjepsen", *argv])
    assert cfg.option("consistency") == "sequential"
    assert "consistency-sequential" in cfg.test_name
    w = RegisterWorkload(seed=1, consistency="sequential")
    assert [c.name for c in w.checkers()] == ["sequential"]
    assert [c.name for c in RegisterWorkload(seed=1).checkers()] == ["linearizable"]
