"""Malformed histories: every error names the file and the exact source line; the JSONL writer
is crash-safe (flushed per op, a truncated last line tolerated)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsjepsen.errors import EXIT_BAD_CONFIG, InputError
from dsjepsen.formats import read_history
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.history import HistoryWriter, Op


def jl(**kw: object) -> str:
    d = {"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "read", "value": None}
    d.update(kw)
    return json.dumps(d)


def expect_error(path: Path, line: int, fragment: str, fmt: str = "auto") -> None:
    with pytest.raises(InputError) as e:
        read_history(path, fmt).operations()
    err = e.value
    assert err.exit_code == EXIT_BAD_CONFIG
    assert (err.path, err.line) == (str(path), line), str(err)
    assert fragment in err.reason, err.reason
    assert str(err) == f"{path}:{line}: {err.reason}"
    assert "\n" not in str(err)


# Each case: lines of JSONL, the 1-based line the error must point at, a fragment of the message.
JSONL_CASES = {
    "completion without invocation": (
        [jl(), jl(type="ok", value=1), jl(process=1, type="ok", value=2)],
        3,
        "has no open invocation",
    ),
    "invoke while open": (
        [jl(), jl(process=1), jl(time=1, f="write", value=3)],
        3,
        "while its read from line 2 is still open",  # line 1 is blank,
    ),
    "invoke after info": (
        [jl(), jl(type="info"), jl(process=1), jl(process=1, type="ok"), jl(f="write", value=1)],
        5,
        "after one of its ops ended 'info'",
    ),
    "unknown type": ([jl(), jl(type="done")], 2, "unknown op type 'done'"),
    "completion f differs": ([jl(), jl(type="ok", f="write")], 2, "does not match invocation"),
    "invalid json mid-file": ([jl(), "{not json", jl(type="ok")], 2, "invalid JSON"),
    "not an object": ([jl(), "[1, 2]"], 2, "must be a JSON object"),
    "missing field": ([jl(), json.dumps({"type": "ok", "process": 0})], 2, "missing field 'f'"),
    "bad time": ([jl(time="soon")], 1, "'time' must be an integer"),
    "bad process": ([jl(process=[1])], 1, "'process' must be an integer or a string"),
}


@pytest.mark.parametrize("case", sorted(JSONL_CASES))
def test_jsonl_errors_name_the_line(tmp_path: Path, case: str) -> None:
    lines, line, fragment = JSONL_CASES[case]
    p = tmp_path / "history.jsonl"
    # A blank line first, so that a line number that was really an op index would be caught.
    p.write_text("\n" + "\n".join(lines) + "\n")
    expect_error(p, line + 1, fragment)


def test_nemesis_may_complete_without_invocation_and_reinvoke_after_info(tmp_path: Path) -> None:
    p = tmp_path / "h.jsonl"
    lines = [
        jl(process="nemesis", type="info", f="start-partition"),
        jl(process="nemesis", f="stop-partition"),
        jl(process="nemesis", type="info", f="stop-partition"),
        jl(process="nemesis", f="start-kill"),
    ]
    p.write_text("\n".join(lines) + "\n")
    h = read_history(p)
    assert h.operations() == []
    assert [o.f for o in h.operations(include_nemesis=True)] == ["stop-partition", "start-kill"]


# The same rules, with the line numbers of the imported file (not op positions).


def test_jepsen_log_reinvoke_after_info_points_at_the_log_line(tmp_path: Path) -> None:
    p = tmp_path / "x.log"
    p.write_text(
        "INFO  jepsen.core - setup\n"
        "INFO  jepsen.util - 0\t:invoke\t:write\t1\n"
        "noise\n"
        "INFO  jepsen.util - 0\t:info\t:write\t:timed-out\n"
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil\n"
        "\n"
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
    )
    expect_error(p, 7, "after one of its ops ended 'info'")


def test_jepsen_log_completion_without_invocation(tmp_path: Path) -> None:
    p = tmp_path / "x.log"
    p.write_text(
        "header\nINFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 2\t:ok\t:read\t3\n"
    )
    expect_error(p, 3, "has no open invocation")


def test_jepsen_log_unknown_type_lines_are_not_op_lines(tmp_path: Path) -> None:
    # `:done` is not an op type, so the line is chatter and skipped, like any other.
    p = tmp_path / "x.log"
    p.write_text("INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:done\t:x\n")
    assert len(read_history(p).ops) == 1


def test_kv_lines_invoke_while_open(tmp_path: Path) -> None:
    p = tmp_path / "c.txt"
    p.write_text(
        '{:process 0, :type :invoke, :f :get, :key "1", :value nil}\n'
        "\n"
        '{:process 0, :type :invoke, :f :put, :key "2", :value "x"}\n'
    )
    expect_error(p, 3, "is still open")


def test_time_going_backwards_is_read_with_one_warning(tmp_path: Path) -> None:
    """Jepsen appends completions in arrival order, so :time can step back: the history is read
    as it is (times kept), with one warning naming the count, the largest step back and the
    first line; the order of the lines is the real-time order."""
    p = tmp_path / "history.edn"
    p.write_text(
        "[{:type :invoke, :f :read, :process 0, :time 10}\n"
        " {:type :ok, :f :read, :process 0,\n"
        "  :value 1, :time 20}\n"
        " {:type :invoke, :f :read, :process 1, :time 15}\n"
        " {:type :ok, :f :read, :process 1, :value 1, :time 12}]\n"
    )
    h = read_history(p)
    assert [o.time for o in h.ops] == [10, 20, 15, 12]
    assert [(o.call, o.ret) for o in h.operations()] == [(0, 1), (2, 3)]
    assert h.warnings == [
        f"{p}:4: time goes backwards 2 times (largest step back 8 ns); times kept as "
        "recorded, real-time order is the order of the ops in the file"
    ]
    j = tmp_path / "h.jsonl"
    j.write_text("\n".join([jl(time=50), jl(time=40, type="ok")]) + "\n")
    (warning,) = read_history(j).warnings
    assert warning.startswith(f"{j}:2: time goes backwards 1 time (largest step back 10 ns)")


def test_edn_errors_point_into_a_multiline_vector(tmp_path: Path) -> None:
    p = tmp_path / "history.edn"
    p.write_text(
        "[{:type :invoke, :f :read, :process 0}\n {:type :crashed, :f :read, :process 0}]\n"
    )
    expect_error(p, 2, "unknown op type 'crashed'")


# ---------------------------------------------------------------------------------------------
# Crash safety


def test_truncated_final_jsonl_line_is_tolerated(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    good = [jl(), jl(type="ok", value=3)]
    p.write_text("\n".join(good) + "\n" + jl(process=1)[:17])
    h = read_jsonl(p)
    assert len(h.ops) == 2
    assert h.operations()[0].output == 3
    # The same broken text anywhere but at the very end is an error at its line.
    p.write_text(jl(process=1)[:17] + "\n" + "\n".join(good) + "\n")
    with pytest.raises(InputError) as e:
        read_jsonl(p)
    assert e.value.line == 1
    # A broken last line that does end in a newline was written whole: an error too.
    p.write_text("\n".join(good) + "\n" + jl(process=1)[:17] + "\n")
    with pytest.raises(InputError) as e:
        read_jsonl(p)
    assert e.value.line == 3


def test_history_writer_flushes_every_op(tmp_path: Path) -> None:
    p = tmp_path / "history.jsonl"
    ops = [
        Op(index=0, time=10, process=0, type="invoke", f="write", value=1, key="k"),
        Op(index=1, time=20, process="nemesis", type="info", f="start-partition", value=None),
        Op(index=2, time=30, process=0, type="ok", f="write", value=1, key="k"),
    ]
    w = HistoryWriter(p)
    try:
        for i, op in enumerate(ops, start=1):
            w.write(op)
            # A second reader, with the writer still open, already sees every op so far.
            with open(p, encoding="utf-8") as other:
                text = other.read()
            assert text.endswith("\n") and text.count("\n") == i
            assert read_jsonl(p).ops == ops[:i]
    finally:
        w.close()
    with pytest.raises(ValueError, match="closed"):
        w.write(ops[0])
    # Appending continues an existing file (a resumed run keeps what was recorded).
    with HistoryWriter(p) as w2:
        w2.write(Op(index=3, time=40, process=1, type="invoke", f="read", value=None))
    assert len(read_jsonl(p).ops) == 4


@pytest.mark.parametrize("fmt", ["jsonl", "edn", "jepsen-log", "kv-log", "auto"])
def test_unreadable_files_are_one_line_input_errors(tmp_path: Path, fmt: str) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b'{"index": 0}\n\xff\xfe\x00garbage\n')
    with pytest.raises(InputError) as e:
        read_history(binary, fmt)
    assert str(e.value).startswith(f"{binary}: ") and "\n" not in str(e.value)
    with pytest.raises(InputError, match="cannot read history"):
        read_history(tmp_path, fmt)  # a directory


def test_history_writer_shared_by_threads_keeps_lines_whole(tmp_path: Path) -> None:
    import threading

    p = tmp_path / "history.jsonl"
    big = "x" * 5000  # long lines make interleaving likely if writes were not serialised
    with HistoryWriter(p) as w:

        def worker(proc: int) -> None:
            for i in range(200):
                w.write(Op(index=i, time=i, process=proc, type="invoke", f="write", value=big))
                w.write(Op(index=i, time=i, process=proc, type="ok", f="write", value=big))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    lines = p.read_text().splitlines()
    assert len(lines) == 4 * 400
    assert all(json.loads(line)["value"] == big for line in lines)
