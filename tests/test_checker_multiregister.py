"""Knossos's multi-register model: transactions of read / write micro-ops over several
registers, from dsjepsen's JSONL and from Knossos-style EDN, inferred from `f: txn`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.checkers.models import UNKNOWN, MultiRegister, infer_model
from dsjepsen.formats import read_history

EDN = """\
{:process 0, :type :invoke, :f :txn, :value [[:write :x 1] [:write :y 2]]}
{:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]]}
{:process 0, :type :ok, :f :txn, :value [[:write :x 1] [:write :y 2]]}
{:process 1, :type :ok, :f :txn, :value [[:read :x 1] [:read :y READ_Y]]}
"""


def check(tmp_path: Path, read_y: str) -> tuple[int, str]:
    path = tmp_path / "h.edn"
    path.write_text(EDN.replace("READ_Y", read_y))
    p = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "check", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return p.returncode, p.stdout


@pytest.mark.parametrize(
    ("read_y", "rc"),
    [("2", 0), ("nil", 1), ("1", 1)],
    ids=["both-writes-seen", "torn-read-nil", "value-never-written"],
)
def test_edn_txn_histories(tmp_path: Path, read_y: str, rc: int) -> None:
    # concurrent txns: the read may see both writes or none, never one of them alone
    code, out = check(tmp_path, read_y)
    assert code == rc, out
    assert "model multi-register" in out


def test_nothing_seen_is_also_valid(tmp_path: Path) -> None:
    path = tmp_path / "h.edn"
    path.write_text(EDN.replace("[:read :x 1] [:read :y READ_Y]", "[:read :x nil] [:read :y nil]"))
    h = read_history(path)
    assert check_linearizable(h, infer_model(op.f for op in h.ops)).valid is True


def test_step_semantics() -> None:
    m = MultiRegister()
    ok, s = m.step(m.init(), "txn", (("write", "x", 1),), UNKNOWN)
    assert ok and m.describe_state(s) == "{'x'=1}"
    # reads inside one txn see its own earlier writes
    txn = (("w", "y", 5), ("r", "y", 5), ("r", "x", 1))
    assert m.step(s, "txn", txn, txn)[0]
    # an indeterminate txn's reads constrain nothing, its writes may apply
    assert m.step(s, "txn", (("read", "x", None), ("write", "z", 3)), UNKNOWN) == (
        True,
        (("x", 1), ("z", 3)),
    )
    assert not m.step(s, "txn", (("read", "x", None),), (("read", "x", 2),))[0]
    with pytest.raises(ValueError):
        m.step(s, "txn", (("append", "x", 1),), UNKNOWN)
