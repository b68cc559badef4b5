"""Models start where the user says (Knossos's `(cas-register 0)`, `(multi-register {:x 0
:y 0})`): `dsjepsen check --initial JSON` and `check(..., initial=...)`, recorded in the result;
and a history of nemesis ops alone is vacuous (unknown, exit 2), not bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen import api
from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.checkers.models import get_model
from dsjepsen.checkers.sequential import check_sequential
from dsjepsen.errors import ConfigError
from dsjepsen.formats import read_history

# In the style of Knossos's multi-register/good/multi-register.edn ("A multi-register with x=0
# and y=0"): reads of 0 before anyone wrote 0 are only legal from that initial state.
MULTI = """\
; A multi-register with x=0 and y=0
[{:type :invoke, :f :txn, :value [[:read :x nil]], :process 3, :time 10}
{:type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]], :process 2, :time 11}
{:type :invoke, :f :txn, :value [[:write :y 2]], :process 4, :time 12}
{:type :ok, :f :txn, :value [[:read :x 0]], :process 3, :time 20}
{:type :ok, :f :txn, :value [[:read :x 0] [:read :y 0]], :process 2, :time 21}
{:type :ok, :f :txn, :value [[:write :y 2]], :process 4, :time 22}
{:type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]], :process 3, :time 30}
{:type :ok, :f :txn, :value [[:read :x 0] [:read :y 2]], :process 3, :time 31}]
"""

# a cas register read as 0 before any write: Knossos's (cas-register 0)
REGISTER = [
    {"process": 0, "type": "invoke", "f": "read", "value": None},
    {"process": 0, "type": "ok", "f": "read", "value": 0},
    {"process": 1, "type": "invoke", "f": "cas", "value": [0, 5]},
    {"process": 1, "type": "ok", "f": "cas", "value": [0, 5]},
    {"process": 0, "type": "invoke", "f": "read", "value": None},
    {"process": 0, "type": "ok", "f": "read", "value": 5},
]


def dsjepsen_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", "check", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_multi_register_from_x0_y0_is_valid_only_from_that_state(tmp_path: Path) -> None:
    path = tmp_path / "multi-register.edn"
    path.write_text(MULTI)
    without = dsjepsen_check(str(path))
    assert without.returncode == 1, without.stdout + without.stderr
    given = dsjepsen_check(str(path), "--initial", '{"x": 0, "y": 0}', "--json")
    assert given.returncode == 0, given.stdout + given.stderr
    result = json.loads(given.stdout)
    assert result["valid"] is True
    assert result["details"]["initial"] == {"x": 0, "y": 0}
    assert result["details"]["model"] == "multi-register"
    # x alone is not enough: y is read as 0 too
    only_x = dsjepsen_check(str(path), "--initial", '{"x": 0}')
    assert only_x.returncode == 1, only_x.stdout


@pytest.mark.parametrize("checker", [check_linearizable, check_sequential])
def test_register_initial_value_in_both_engines(checker) -> None:
    history = api.to_history(REGISTER)
    assert checker(history, "cas-register").valid is False
    started = checker(history, "cas-register", initial=0)
    assert started.valid is True
    assert started.details["initial"] == 0
    # the start is a value like any other: a read of nil is now the anomaly
    nil_read = [dict(REGISTER[0]), dict(REGISTER[1], value=None)]
    assert checker(api.to_history(nil_read), "cas-register", initial=0).valid is False


def test_api_and_unique_value_fast_path_honour_the_initial_value() -> None:
    # reads and writes alone go to the zone test (fastpath.register_zones)
    ops = [
        {"process": 0, "type": "invoke", "f": "read", "value": None},
        {"process": 0, "type": "ok", "f": "read", "value": 7},
        {"process": 1, "type": "invoke", "f": "write", "value": 1},
        {"process": 1, "type": "ok", "f": "write", "value": 1},
    ]
    assert api.check(ops).valid is False
    result = api.check(ops, initial=7)
    assert result.valid is True
    assert result.details["per_key"]["nil"]["method"] == "register-zones"


def test_kv_strings_start_from_the_initial_string() -> None:
    ops = [
        {"process": 0, "type": "invoke", "f": "append", "value": "b"},
        {"process": 0, "type": "ok", "f": "append", "value": "b"},
        {"process": 1, "type": "invoke", "f": "get", "value": None},
        {"process": 1, "type": "ok", "f": "get", "value": "ab"},
    ]
    assert api.check(ops).valid is False
    assert api.check(ops, initial="a").valid is True
    assert api.check(ops, initial="a", consistency="sequential").valid is True


@pytest.mark.parametrize(
    ("model", "initial", "state"),
    [
        ("set", [1, 2], frozenset({1, 2})),
        ("queue", [1, 2], (1, 2)),
        ("mutex", True, True),
        ("multi-register", {"y": 1, "x": None}, (("y", 1),)),
    ],
)
def test_each_model_reads_its_initial_state(model: str, initial, state) -> None:
    assert get_model(model).starting_at(initial).start() == state
    assert get_model(model).start() == get_model(model).init()


def test_unordered_queue_starts_with_its_elements() -> None:
    m = get_model("unordered-queue").starting_at([3])
    ops = [
        {"process": 0, "type": "invoke", "f": "dequeue", "value": None},
        {"process": 0, "type": "ok", "f": "dequeue", "value": 3},
        {"process": 0, "type": "invoke", "f": "dequeue", "value": None},
        {"process": 0, "type": "ok", "f": "dequeue", "value": None},
    ]
    assert check_linearizable(api.to_history(ops), m).valid is True
    assert check_linearizable(api.to_history(ops), "unordered-queue").valid is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--initial", "{x: 0"), "--initial: not JSON"),
        (("--initial", "NaN"), "--initial: not JSON"),
        (("--model", "set", "--initial", "3"), "--initial: the set model starts from a list"),
        (("--model", "mutex", "--initial", "0"), "--initial: the mutex model starts held"),
        (
            ("--model", "multi-register", "--initial", "[1]"),
            "--initial: the multi-register model starts from an object",
        ),
    ],
)
def test_initial_values_a_model_cannot_start_from_are_one_line(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    path = tmp_path / "h.jsonl"
    ops = [{"process": 0, "type": "invoke", "f": "read", "value": None}]
    path.write_text("".join(json.dumps(dict(o, index=i, time=i)) + "\n" for i, o in enumerate(ops)))
    res = dsjepsen_check(str(path), *args)
    assert res.returncode == 254, res.stdout + res.stderr
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    with pytest.raises(ConfigError, match="--initial"):
        api.check(ops, model="set", initial=3)


def test_a_history_of_nemesis_ops_alone_is_vacuous(tmp_path: Path) -> None:
    # in the shape of Knossos's cas-register/good/mongodb-v0-ack-rollback-.edn
    path = tmp_path / "nemesis-only.edn"
    path.write_text(
        "[{:process :nemesis, :type :info, :f :start, :value nil, :time 0}\n"
        ' {:process :nemesis, :type :info, :f :start, :value "Cut off", :time 1}\n'
        " {:process :nemesis, :type :info, :f :stop, :value nil, :time 2}]\n"
    )
    res = dsjepsen_check(str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "UNKNOWN" in res.stdout
    assert (
        "no client operations to check (only 3 nemesis ops): the history is vacuous" in res.stdout
    )
    as_json = dsjepsen_check(str(path), "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["valid"] == "unknown"
    assert read_history(path).ops  # well formed: the reader accepts it
