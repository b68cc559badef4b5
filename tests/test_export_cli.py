"""`dsjepsen export`: histories go out in a form Knossos reads, and come back unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsjepsen.cli import main
from dsjepsen.formats import read_history
from dsjepsen.history import Op, write_jsonl


def _history(tmp_path: Path) -> Path:
    ops = [
        Op(0, 0, 0, "invoke", "write", 1, key=1),
        Op(1, 5, 1, "invoke", "read", None, key=2),
        Op(2, 9, 0, "ok", "write", 1, key=1),
        Op(3, 12, 1, "ok", "read", None, key=2),
        Op(4, 15, "nemesis", "invoke", "start-partition", None),
        Op(5, 18, "nemesis", "info", "start-partition", {"description": "cut n1"}),
        Op(6, 20, 0, "invoke", "cas", [1, 2], key=1),
        Op(7, 25, 0, "fail", "cas", [1, 2], key=1),
    ]
    path = tmp_path / "h.jsonl"
    write_jsonl(ops, path)
    return path


def test_multi_key_needs_a_key_or_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _history(tmp_path)
    assert main(["export", str(src), "-o", str(tmp_path / "x.edn")]) == 254
    assert "2 keys" in capsys.readouterr().err
    assert not (tmp_path / "x.edn").exists()


def test_one_key_round_trips_through_edn(tmp_path: Path) -> None:
    src = _history(tmp_path)
    out = tmp_path / "k1.edn"
    assert main(["export", str(src), "-o", str(out), "--key", "1"]) == 0
    back = read_history(out)
    assert [(o.f, o.type, o.key) for o in back.client_ops()] == [
        ("write", "invoke", 1),
        ("write", "ok", 1),
        ("cas", "invoke", 1),
        ("cas", "fail", 1),
    ]
    assert len(back.nemesis_ops()) == 2  # nemesis ops are kept, as Jepsen's subhistory does


def test_split_writes_one_file_per_key(tmp_path: Path) -> None:
    src = _history(tmp_path)
    out = tmp_path / "split"
    assert main(["export", str(src), "-o", str(out), "--split"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["key-1.edn", "key-2.edn"]
    assert {o.key for o in read_history(out / "key-2.edn").client_ops()} == {2}


def test_unknown_key_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _history(tmp_path)
    assert main(["export", str(src), "-o", str(tmp_path / "o.edn"), "--key", "9"]) == 254
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'9'" in err


def test_formats_come_from_the_registry_and_warnings_reach_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    src = tmp_path / "h.edn"
    src.write_text(
        "[{:process 0, :type :invoke, :f :write, :value 1, :time 50}\n"
        " {:process 0, :type :ok, :f :write, :value 1, :time 40}]\n"
    )
    out = tmp_path / "h.jsonl"
    assert main(["export", str(src), "-o", str(out), "--to", "jsonl", "--format", "edn"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{src}:2: time goes backwards 1 time" in err
    assert [(o.type, o.time) for o in read_history(out).ops] == [("invoke", 50), ("ok", 40)]
    with pytest.raises(SystemExit) as e:  # argparse's usage error, exit 254
        main(["export", str(src), "-o", str(out), "--format", "xml"])
    assert e.value.code == 254
    err = capsys.readouterr().err
    assert "invalid choice: 'xml'" in err and "'jepsen-log', 'json', 'jsonl', 'kv-log'" in err
