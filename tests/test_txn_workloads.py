"""The list-append and rw-register workloads (Elle's generators) and the maelstrom client's
`txn` mapping, without a cluster: what the generated transactions promise the checkers (values
unique per key, lengths in bounds, keys retired, every key read at the end, the same ops for
the same seed), the options as `dsjepsen test` and `dsjepsen maelstrom` give them, and a real
6a node answering the client over a real relay on loopback."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from maelstrom_loopback import LoopbackNode

from dsjepsen.errors import ConfigError
from dsjepsen.history import Op
from dsjepsen.options import kwargs, parse_options
from dsjepsen.targets.maelstrom.client import MaelstromClient, txn_from
from dsjepsen.workloads.txn import ListAppendWorkload, RwRegisterWorkload

NODES = Path(__file__).parent / "maelstrom_nodes"


def make(cls, **given):
    values = parse_options(cls.options, given, cls.name)
    return cls(seed=3, **kwargs(cls.options, values))


@pytest.mark.parametrize("cls", [ListAppendWorkload, RwRegisterWorkload])
def test_generated_transactions_keep_elles_promises(cls) -> None:
    w = make(cls, **{"max-txn-length": 3, "max-writes-per-key": 5, "key-count": 4})
    ops = [w.next_op() for _ in range(2000)]
    writes: Counter = Counter()
    for op in ops:
        assert op.f == "txn" and 1 <= len(op.value) <= 3
        for f, k, v in op.value:
            assert f in ("r", w.write_f)
            if f == "r":
                assert v is None
            else:
                writes[(k, v)] += 1
                assert 1 <= v <= 5  # retired after 5 writes: values 1..5 per key
    assert max(writes.values()) == 1  # every value written once per key
    assert len({k for k, _ in writes}) > 4  # keys were retired for fresh ones
    read = {k for op in w.final_ops() for _, k, _ in op.value}
    assert read >= {k for op in ops for _, k, _ in op.value}  # and the fresh keys unused yet
    again = make(cls, **{"max-txn-length": 3, "max-writes-per-key": 5, "key-count": 4})
    assert [again.next_op() for _ in range(2000)] == ops  # a function of the seed


def test_consistency_takes_several_models_and_refuses_others_in_one_line() -> None:
    w = make(ListAppendWorkload, consistency="read-committed,serializable")
    assert w.consistency == "read-committed,serializable"
    with pytest.raises(ConfigError, match=r"--consistency: 'snapshot' is not a transactional"):
        make(RwRegisterWorkload, consistency="read-committed,snapshot")


def test_wfr_keys_reaches_the_checker_of_rw_register_only() -> None:
    assert make(RwRegisterWorkload, **{"wfr-keys": True}).check_extra == {"wfr_keys": True}
    assert make(RwRegisterWorkload).check_extra == {"wfr_keys": False}
    assert make(ListAppendWorkload).check_extra == {}
    with pytest.raises(ConfigError, match="--wfr-keys: not an option of list-append"):
        make(ListAppendWorkload, **{"wfr-keys": True})


SENT = [["r", 1, None], ["w", 1, 6], ["append", 2, 9]]


@pytest.mark.parametrize(
    ("got", "problem"),
    [
        ([["r", 1, 3], ["w", 1, 6], ["append", 2, 9]], None),
        ([["r", 1, [1, 2.0]], ["w", 1.0, 6], ["append", 2, 9.0]], None),  # 2.0 stands for 2
        ([["r", 1, None], ["w", 1, 6]], "expected 3 micro-ops, got"),
        ([["r", 1, 3], ["w", 2, 6], ["append", 2, 9]], "micro-op 1 is ['w', 2, 6], sent"),
        ([["r", 1, 3], ["w", 1, 7], ["append", 2, 9]], "micro-op 1 writes 7, sent 6"),
        ([["r", 1, {"a": 1}], ["w", 1, 6], ["append", 2, 9]], "micro-op 0 read {'a': 1}: not"),
        ([["r", 1, "3"], ["w", 1, 6], ["append", 2, 9]], "micro-op 0 read 3: not null"),
        ({"r": 1}, "expected 3 micro-ops, got {'r': 1}"),
        ([["r", 1], ["w", 1, 6], ["append", 2, 9]], "micro-op 0 is ['r', 1], sent"),
    ],
)
def test_a_txn_ok_must_complete_the_transaction_sent(got, problem: str | None) -> None:
    found, mops = txn_from(SENT, got)
    if problem is None:
        assert found is None and mops is not None
        assert [m[:2] for m in mops] == [m[:2] for m in SENT]
        assert all(type(m[1]) is int for m in mops)
        assert mops[0][2] in (3, [1, 2]) and mops[1][2] == 6
    else:
        assert mops is None and found is not None and found.startswith(problem), found


def test_client_runs_transactions_on_a_real_node(tmp_path: Path) -> None:
    """The 6a node behind a real relay: a transaction's reads come back filled (null for a key
    never written), list reads as lists; an op the node cannot do is a definite `fail`."""
    node = LoopbackNode(tmp_path, [sys.executable, str(NODES / "txn_single.py")])
    try:
        assert node.init()["type"] == "init_ok"
        c = MaelstromClient(node.net, "n1", "c1", 2.0)

        def txn(mops):
            return c.invoke(Op(index=0, time=0, process=0, type="invoke", f="txn", value=mops))

        first = txn([["r", 1, None], ["w", 1, 6], ["r", 1, None]])
        assert (first.type, first.value) == ("ok", [["r", 1, None], ["w", 1, 6], ["r", 1, 6]])
        assert txn([["r", 1, None]]).value == [["r", 1, 6]]
        assert txn([["append", 5, 1], ["append", 5, 2], ["r", 5, None]]).value[2] == [
            "r",
            5,
            [1, 2],
        ]
        echo = c.invoke(Op(index=0, time=0, process=0, type="invoke", f="echo", value="x"))
        assert echo.type == "fail" and echo.error["code"] == 10  # not supported: definite
    finally:
        node.close()
