"""`dsjepsen check --minimize` (issue 30): the minimal core of a non-linearizable history is
still not linearizable, and removing any one of its ops (a read with the write it returned)
makes it linearizable; on every invalid history of Porcupine's corpus it has at most 10 ops."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.checkers.linearizable import check_linearizable, partition_key
from dsjepsen.checkers.minimize import linearizable_core, read_sources
from dsjepsen.formats import read_history
from dsjepsen.history import History, Op

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "histories" / "porcupine"


def _ops(rows: list[tuple]) -> History:
    """(process, type, f, value) rows, in history order, as a History."""
    return History(
        [
            Op(index=i, time=i, process=p, type=t, f=f, key=0, value=v)
            for i, (p, t, f, v) in enumerate(rows)
        ]
    )


def assert_one_minimal(core, operations, model) -> None:
    """The core is invalid, and each single removal (with the ops that observed only what
    the removed op wrote) is valid: checked here from scratch, not taken from the core."""
    assert check_linearizable(core.ops, model=model, explain=False).valid is False
    sources = read_sources(core.ops)
    for o in core.ops:
        keep = [x for x in core.ops if x.id != o.id]
        while True:  # the closure: observers whose writers are all gone go too
            ids = {x.id for x in keep}
            kept = [x for x in keep if all(any(s in ids for s in g) for g in sources.get(x.id, ()))]
            if len(kept) == len(keep):
                break
            keep = kept
        assert not keep or check_linearizable(keep, model=model, explain=False).valid is True, o


def test_a_stale_read_shrinks_to_its_three_ops():
    h = _ops(
        [
            (0, "invoke", "write", 1), (0, "ok", "write", 1),
            *[(2, t, "read", v) for _ in range(20) for t, v in (("invoke", None), ("ok", 1))],
            (1, "invoke", "write", 2), (1, "ok", "write", 2),
            *[(3, t, "read", v) for _ in range(20) for t, v in (("invoke", None), ("ok", 2))],
            (2, "invoke", "read", None), (2, "ok", "read", 1),
        ]
    )  # fmt: skip
    result = check_linearizable(h)
    assert result.valid is False
    core = linearizable_core(h.operations(), 0, "register", time.monotonic() + 30)
    assert [(o.f, o.value if o.f == "write" else o.output) for o in core.ops] == [
        ("write", 1),
        ("write", 2),
        ("read", 1),
    ]
    assert core.one_minimal and core.of == 43
    assert_one_minimal(core, h.operations(), "register")


def test_a_read_is_never_kept_without_the_write_it_returned():
    """Dropping the write of 1 alone would leave 'a read of a value never written', a
    different anomaly: the rule keeps the read's writer or drops the read."""
    h = _ops(
        [
            (0, "invoke", "write", 1), (0, "ok", "write", 1),
            (1, "invoke", "write", 2), (1, "ok", "write", 2),
            (2, "invoke", "read", None), (2, "ok", "read", 1),
        ]
    )  # fmt: skip
    core = linearizable_core(h.operations(), 0, "register", time.monotonic() + 30)
    ids = {o.id for o in core.ops}
    for reader, groups in read_sources(core.ops).items():
        assert all(any(w in ids for w in g) for g in groups), reader
    assert len(core.ops) == 3


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Porcupine's corpus not found at {CORPUS}")
def test_every_invalid_corpus_history_has_a_small_one_minimal_core():
    files = sorted(CORPUS.glob("kv/*")) + sorted(CORPUS.glob("jepsen/*"))
    invalid = 0
    for f in files:
        h = read_history(f, "auto")
        result = check_linearizable(h)
        if result.valid is not False:
            continue
        invalid += 1
        first = result.anomalies[0]
        core = linearizable_core(
            h.operations(), first["key"], result.details["model"], time.monotonic() + 30,
            upto=first["op"]["ret"] if first["op"]["ret"] is not None else first["op"]["call"],
        )  # fmt: skip
        assert core.one_minimal and 1 <= len(core.ops) <= 10, (f.name, len(core.ops))
        key = partition_key(first["key"])
        assert core.of == sum(1 for o in h.operations() if partition_key(o.key) == key)
        assert_one_minimal(core, h.operations(), result.details["model"])
    assert invalid >= 40  # the corpus's illegal histories, all of them


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Porcupine's corpus not found at {CORPUS}")
def test_check_minimize_prints_the_core_first_and_records_it():
    f = CORPUS / "kv" / "c10-bad.txt"
    cmd = [sys.executable, "-m", "dsjepsen", "check", str(f), "--minimize"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert out.returncode == 1
    text = out.stdout
    assert "Minimal history of key" in text
    assert text.index("Minimal history") < text.index("Not linearizable")
    data = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True).stdout)
    minimal = data["details"]["minimal"]
    assert minimal["one_minimal"] and len(minimal["ops"]) == len(minimal["op_ids"]) <= 10
    # without --minimize nothing is searched
    plain = subprocess.run(cmd[:-1] + ["--json"], capture_output=True, text=True).stdout
    assert "minimal" not in json.loads(plain)["details"]
