"""Every history of the Porcupine corpus gets the verdict Porcupine's test suite asserts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.formats import read_history

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"


def _expected() -> list[tuple[str, str]]:
    f = CORPUS / "EXPECTED.tsv"
    if not f.exists():
        return []
    rows = [line.split("\t") for line in f.read_text().splitlines()[1:] if line.strip()]
    return [(r[0], r[3].strip()) for r in rows]


@pytest.mark.skipif(not CORPUS.exists(), reason=f"Porcupine corpus not present at {CORPUS}")
@pytest.mark.parametrize("name,expected", _expected() or [("none", "none")])
def test_corpus_verdict(name: str, expected: str) -> None:
    h = read_history(CORPUS / name)
    r = check_linearizable(h, time_limit=120, explain=False, all_keys=False)
    assert r.valid == (expected == "linearizable"), r.reason
    if r.valid is False:
        assert r.details["failing_keys"]


@pytest.mark.skipif(not CORPUS.exists(), reason=f"Porcupine corpus not present at {CORPUS}")
def test_explanation_of_etcd_000() -> None:
    r = check_linearizable(read_history(CORPUS / "jepsen/etcd_000.log"))
    assert r.valid is False
    (a,) = r.anomalies
    assert a["type"] == "nonlinearizable"
    assert a["op"]["f"] == "read" and a["op"]["output"] == 2
    assert a["message"].startswith("read returned 2, but the register could only hold")
    assert "2" not in a["states"]
    assert a["prefix"] and all("state" in e for e in a["prefix"])
    assert a["op"]["call"] in a["window"]
