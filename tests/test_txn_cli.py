"""`dsjepsen check` on transactional histories: which checker a history goes to, what
--consistency takes, the text / JSON / HTML output, the readers (elle-cli's JSON array and JSON
lines, Elle's EDN), and bad input as one line with exit 254."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.cli import main
from dsjepsen.formats import detect_format, read_history

README_EDN = """\
{:type :ok, :value [[:append :x 1] [:r :y [1]]]}
{:type :ok, :value [[:append :x 2] [:append :y 1]]}
{:type :ok, :value [[:r :x [1 2]]]}
"""

# elle-cli's JSON: one array, no f; T2 does not see T1's append to y, but T1 appends x first
G_SINGLE_JSON = """\
[{"index":0,"process":0,"type":"invoke","value":[["append",1,1],["append",2,1]]},
 {"index":1,"process":0,"type":"ok","value":[["append",1,1],["append",2,1]]},
 {"index":2,"process":1,"type":"invoke","value":[["append",1,2],["r",2,null]]},
 {"index":3,"process":1,"type":"ok","value":[["append",1,2],["r",2,[]]]},
 {"index":4,"process":2,"type":"invoke","value":[["r",1,null]]},
 {"index":5,"process":2,"type":"ok","value":[["r",1,[1,2]]]}]
"""

# Knossos's multi-register spelling: linearizable by default, as before
KNOSSOS_EDN = """\
{:process 0, :type :invoke, :f :txn, :value [[:write :x 1] [:write :y 2]]}
{:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]]}
{:process 0, :type :ok, :f :txn, :value [[:write :x 1] [:write :y 2]]}
{:process 1, :type :ok, :f :txn, :value [[:read :x 1] [:read :y nil]]}
"""


def jsonl(path: Path, ops: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return path


def rw_ops() -> list[dict[str, Any]]:
    """Two concurrent rw-register transactions that each miss the other's write: G2-item."""
    a = [["r", "x", None], ["w", "y", 1]]
    b = [["r", "y", None], ["w", "x", 1]]
    return [
        {"process": 0, "type": "invoke", "f": "txn", "value": a},
        {"process": 1, "type": "invoke", "f": "txn", "value": b},
        {"process": 0, "type": "ok", "f": "txn", "value": a},
        {"process": 1, "type": "ok", "f": "txn", "value": b},
    ]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_readme_example_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "readme.edn"
    p.write_text(README_EDN)
    code, out, _ = run(capsys, str(p), "--consistency", "serializable")
    assert code == 1
    assert "INVALID (list-append, checked for serializable)" in out
    assert "anomalies: G1c (1)" in out and "not: read-committed" in out
    assert re.search(
        r"T1 = op 0 \(index 0, line 1, process nil, ok\): \[append x 1\] \[r y \[1\]\]", out
    )
    assert "T1 < T2 (ww)" in out and "T2 < T1 (wr)" in out


def test_elle_cli_json_array(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "g.json"
    p.write_text(G_SINGLE_JSON)
    assert detect_format(p) == "json"
    code, out, _ = run(capsys, str(p), "--json")
    assert code == 1
    d = json.loads(out)
    assert d["checker"] == "list-append" and d["valid"] is False
    assert d["details"]["anomaly_types"] == ["G-single-item"]
    assert d["details"]["not"] == ["consistent-view", "repeatable-read"]
    assert "strict-serializable" in d["details"]["also_not"]
    assert d["details"]["consistency_models"] == ["strict-serializable"]
    (a,) = d["anomalies"]
    assert [s["type"] for s in a["steps"]] == ["ww", "rw"]
    assert {t["op_id"] for t in a["cycle"]} == {0, 1}


def test_elle_cli_json_lines_and_rw_inference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = jsonl(tmp_path / "h.jsonl", rw_ops())
    code, out, _ = run(capsys, str(p), "--consistency", "read-committed")
    assert code == 0 and "VALID (rw-register, checked for read-committed)" in out
    code, out, _ = run(capsys, str(p), "--consistency", "snapshot-isolation,repeatable-read")
    assert code == 1 and "anomalies: G2-item" in out and "not: repeatable-read" in out


def test_knossos_txns_stay_linearizable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "k.edn"
    p.write_text(KNOSSOS_EDN)
    code, out, _ = run(capsys, str(p))
    assert "model multi-register" in out and code == 1  # a torn read: not linearizable
    # a transactional model sends the same history to rw-register (G1: read of a torn txn)
    code, out, _ = run(capsys, str(p), "--consistency", "read-atomic")
    assert "rw-register" in out


def test_flags_reach_the_checker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = [["r", "y", 1], ["w", "x", 1], ["w", "y", 2]]
    b = [["r", "x", 1], ["r", "y", 1]]
    ops = [
        {"process": 0, "type": "invoke", "f": "txn", "value": a},
        {"process": 1, "type": "invoke", "f": "txn", "value": b},
        {"process": 0, "type": "ok", "f": "txn", "value": a},
        {"process": 1, "type": "ok", "f": "txn", "value": b},
    ]
    p = jsonl(tmp_path / "wfr.jsonl", ops)
    assert run(capsys, str(p), "--consistency", "serializable")[0] == 0
    code, out, _ = run(capsys, str(p), "--consistency", "serializable", "--wfr-keys")
    assert code == 1 and "G-single-item" in out and "wfr-keys" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--checker", "list-append", "--consistency", "linearizable"], "single-object checkers"),
        (["--consistency", "causal"], "unknown consistency model 'causal'"),
        (["--consistency", "serializable,frob"], "unknown consistency model"),
    ],
)
def test_consistency_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    p = tmp_path / "g.json"
    p.write_text(G_SINGLE_JSON)
    code, out, err = run(capsys, str(p), *args)
    assert code == 254 and out == ""
    assert len(err.strip().splitlines()) == 1 and fragment in err


def test_transactional_model_on_a_register_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = jsonl(
        tmp_path / "r.jsonl",
        [
            {"process": 0, "type": "invoke", "f": "write", "value": 1},
            {"process": 0, "type": "ok", "f": "write", "value": 1},
        ],
    )
    code, _, err = run(capsys, str(p), "--consistency", "serializable")
    assert code == 254 and "transactional model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("value", "completion", "fragment"),
    [
        ([["append", "x", 1], 7], None, "micro-op is not a list: 7"),
        ([["incr", "x", 1]], None, "unknown micro-op 'incr'"),
        ([["r", "x", None]], [["r", "x", 5]], "read of key x is not a list: 5"),
    ],
)
def test_bad_input_is_one_line_with_the_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    value: list[Any],
    completion: list[Any] | None,
    fragment: str,
) -> None:
    ops = [
        {"process": 0, "type": "invoke", "f": "txn", "value": [["append", "y", 1]]},
        {"process": 0, "type": "ok", "f": "txn", "value": [["append", "y", 1]]},
        {"process": 0, "type": "invoke", "f": "txn", "value": value},
        {"process": 0, "type": "ok", "f": "txn", "value": completion or value},
    ]
    p = jsonl(tmp_path / "bad.jsonl", ops)
    code, out, err = run(capsys, str(p), "--checker", "list-append")
    assert code == 254 and out == ""
    assert err.strip() == f"dsjepsen: error: {p}:4: " + err.strip().split(":4: ", 1)[1]
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_duplicate_appends_name_key_and_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v = [["append", "k9", 3]]
    ops = [
        {"process": 0, "type": "invoke", "f": "txn", "value": v},
        {"process": 0, "type": "ok", "f": "txn", "value": v},
        {"process": 1, "type": "invoke", "f": "txn", "value": v},
        {"process": 1, "type": "ok", "f": "txn", "value": v},
    ]
    code, _, err = run(capsys, str(jsonl(tmp_path / "d.jsonl", ops)))
    assert code == 254 and len(err.strip().splitlines()) == 1
    assert "value 3 is appended to key k9 more than once" in err and ":4:" in err


def test_report_draws_the_cycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "readme.edn"
    p.write_text(README_EDN)
    out_html = tmp_path / "r.html"
    code, out, _ = run(capsys, str(p), "--consistency", "serializable", "--report", str(out_html))
    assert code == 1 and "report:" in out
    page = out_html.read_text()
    assert '<svg class="cycle"' in page and page.count('class="cy-edge') >= 2
    assert "T1 &lt; T2" in page and "G1c" in page
    # the page's policy allows no inline style attribute, and the diagram uses none
    svg = page[page.index('<svg class="cycle"') :]
    assert " style=" not in svg[: svg.index("</svg>")]


def test_processless_completions_are_read(tmp_path: Path) -> None:
    p = tmp_path / "readme.edn"
    p.write_text(README_EDN)
    h = read_history(p)
    assert [op.process for op in h.ops] == [None, None, None]
    assert [op.f for op in h.ops] == ["txn"] * 3
    ops = h.operations(orphans=True)
    assert len(ops) == 3 and all(o.invoke is o.complete for o in ops)
