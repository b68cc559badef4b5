"""Importers (Jepsen logs, history.edn, Porcupine kv lines), format detection, and the real
Porcupine corpus read from ../shared/histories (never copied into the project)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dsjepsen.errors import InputError
from dsjepsen.formats import FORMATS, detect_format, read_history
from dsjepsen.formats.edn import read_edn
from dsjepsen.formats.jepsen_log import read_jepsen_log
from dsjepsen.formats.kv_log import read_kv_log
from dsjepsen.history import Op

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"
needs_corpus = pytest.mark.skipif(
    not (CORPUS / "EXPECTED.tsv").is_file(),
    reason=f"Porcupine corpus not found at {CORPUS} (it lives beside the repo, in shared/)",
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def triples(ops: list[Op]) -> list[tuple]:
    return [(o.process, o.type, o.f, o.key, o.value, o.error) for o in ops]


def test_formats_are_registered() -> None:
    assert {"jsonl", "edn", "jepsen-log", "kv-log"} <= set(FORMATS)


# ---------------------------------------------------------------------------------------------
# Jepsen log lines


JEPSEN_LOG = (
    "INFO  jepsen.core - Running test\n"
    "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
    "INFO  jepsen.util - 3\t:invoke\t:cas\t[3 0]\n"
    "some stack trace line\n"
    "INFO  jepsen.util - 0\t:ok\t:read\t4\n"
    "INFO  jepsen.util - 3\t:info\t:cas\t:timed-out\n"
    "INFO  jepsen.util - 1   :invoke :write  3\n"
    "INFO  jepsen.util - 1   :fail :write  3\n"
    "INFO  jepsen.util - :nemesis\t:info\t:start\tnil\n"
    "INFO [2020-01-01 00:00:00,000] jepsen worker 2 - jepsen.util 2\t:invoke\t:write\t1\n"
)


def test_jepsen_log_lines(tmp_path: Path) -> None:
    h = read_jepsen_log(write(tmp_path, "x.log", JEPSEN_LOG))
    assert triples(h.ops) == [
        (0, "invoke", "read", None, None, None),
        (3, "invoke", "cas", None, [3, 0], None),
        (0, "ok", "read", None, 4, None),
        # The bare keyword on an info completion is its error; it keeps the invoked value.
        (3, "info", "cas", None, [3, 0], "timed-out"),
        (1, "invoke", "write", None, 3, None),
        (1, "fail", "write", None, 3, None),
        ("nemesis", "info", "start", None, None, None),
        (2, "invoke", "write", None, 1, None),
    ]
    assert [o.line for o in h.ops] == [2, 3, 5, 6, 7, 8, 9, 10]
    assert [o.index for o in h.ops] == list(range(8))
    assert [o.time for o in h.ops] == list(range(8))  # no clock in logs: time is position
    ops = h.operations()
    assert [(o.process, o.f, o.type, o.output, o.ret) for o in ops] == [
        (0, "read", "ok", 4, 2),
        (3, "cas", "info", [3, 0], None),
        (1, "write", "fail", 3, 5),
        (2, "write", "info", None, None),  # never completed
    ]


def test_jepsen_log_value_followed_by_an_error(tmp_path: Path) -> None:
    h = read_jepsen_log(
        write(
            tmp_path,
            "x.log",
            "INFO  jepsen.util - 4\t:invoke\t:cas\t[1 2]\n"
            "INFO  jepsen.util - 4\t:fail\t:cas\t[1 2]\t:not-found\n",
        )
    )
    assert h.ops[1].value == [1, 2] and h.ops[1].error == "not-found"


def test_jepsen_log_bad_value_names_the_line(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "x.log",
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:ok\t:read\t[1 2\n",
    )
    with pytest.raises(InputError) as e:
        read_jepsen_log(p)
    assert e.value.line == 2 and str(p) in str(e.value)


# ---------------------------------------------------------------------------------------------
# Porcupine kv lines


KV = (
    '{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}\n'
    '{:process 1, :type :invoke, :f :get, :key "0", :value nil}\n'
    "\n"
    '{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}\n'
    '{:process 1, :type :ok, :f :get, :key "0", :value "x 0 0 y"}\n'
    # Richer than the fast path: goes through the full EDN reader.
    '{:process 2, :type :invoke, :f :put, :key "k\\"1", :value "a\\nb"}\n'
)


def test_kv_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "c.txt", KV)
    assert detect_format(p) == "kv-log"
    h = read_kv_log(p)
    assert triples(h.ops) == [
        (0, "invoke", "append", "0", "x 0 0 y", None),
        (1, "invoke", "get", "0", None, None),
        (0, "ok", "append", "0", "x 0 0 y", None),
        (1, "ok", "get", "0", "x 0 0 y", None),
        (2, "invoke", "put", 'k"1', "a\nb", None),
    ]
    assert [o.line for o in h.ops] == [1, 2, 4, 5, 6]
    # The same lines read as generic EDN give the same ops.
    assert read_edn(p).ops == h.ops
    assert all(type(o.type) is str and type(o.f) is str for o in h.ops)


def test_kv_line_errors_name_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, "c.txt", KV.splitlines()[0] + "\n{:process 0, :type :ok, :f\n")
    with pytest.raises(InputError) as e:
        read_kv_log(p)
    assert e.value.line == 2
    p = write(tmp_path, "d.txt", KV.splitlines()[0] + '\n{:process 0, :f :get, :key "1"}\n')
    with pytest.raises(InputError, match="missing :type") as e:
        read_kv_log(p)
    assert e.value.line == 2


# ---------------------------------------------------------------------------------------------
# history.edn


def test_edn_vector_of_maps_multiline(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "history.edn",
        "[{:index 10, :time 5000, :type :invoke, :process 0, :f :write, :value 1}\n"
        " {:index 11, :time 6000, :type :info, :process :nemesis, :f :start,\n"
        "  :value #{:n3 :n1}}\n"
        " ; a comment\n"
        " {:index 12, :time 7000, :type :ok, :process 0, :f :write, :value 1,\n"
        '  :node "n1", :extra {:ignored true}}\n'
        "]\n",
    )
    assert detect_format(p) == "edn"
    h = read_history(p)
    assert triples(h.ops) == [
        (0, "invoke", "write", None, 1, None),
        ("nemesis", "info", "start", None, ["n1", "n3"], None),
        (0, "ok", "write", None, 1, None),
    ]
    assert [o.index for o in h.ops] == [0, 1, 2]  # renumbered to position
    assert [o.time for o in h.ops] == [5000, 6000, 7000]  # kept
    assert [o.line for o in h.ops] == [1, 2, 5]
    assert h.ops[2].node == "n1"
    assert len(h.operations()) == 1


def test_edn_list_and_sequence_forms_and_missing_time(tmp_path: Path) -> None:
    body = (
        "{:type :invoke, :f :read, :value nil, :process 1}\n"
        "{:type :ok, :f :read, :value 3, :process 1}\n"
    )
    seq = read_history(write(tmp_path, "a.edn", body))
    lst = read_history(write(tmp_path, "b.edn", "(" + body + ")"))
    assert seq.ops == lst.ops
    assert [o.time for o in seq.ops] == [0, 1]  # position when :time is absent
    assert seq.operations()[0].output == 3


def test_edn_jepsen_records_and_independent_tuples(tmp_path: Path) -> None:
    # Jepsen >= 0.3 prints ops as #jepsen.history.Op records; older jepsen.independent
    # histories carry #jepsen.independent.Tuple records.
    p = write(
        tmp_path,
        "h.edn",
        "#jepsen.history.Op{:index 0, :time 1, :type :invoke, :process 0, :f :read, "
        ":value #jepsen.independent.Tuple{:key 7, :value nil}}\n"
        "#jepsen.history.Op{:index 1, :time 2, :type :ok, :process 0, :f :read, "
        ":value #jepsen.independent.Tuple{:key 7, :value 2}}\n"
        '{:type :invoke, :process 1, :f :write, :value #unknown/tag "kept"}\n',
    )
    h = read_history(p)
    assert triples(h.ops) == [
        (0, "invoke", "read", 7, None, None),
        (0, "ok", "read", 7, 2, None),
        (1, "invoke", "write", None, "kept", None),
    ]


def test_edn_independent_vector_tuples_are_inferred(tmp_path: Path) -> None:
    # jepsen.independent tuples are MapEntries, printed as plain [k v] vectors.
    text = (
        "{:type :invoke, :process 0, :f :read, :value [1 nil]}\n"
        "{:type :ok, :process 0, :f :read, :value [1 4]}\n"
        "{:type :invoke, :process 1, :f :cas, :value [2 [4 5]]}\n"
        "{:type :fail, :process 1, :f :cas, :value [2 [4 5]]}\n"
        "{:type :info, :process :nemesis, :f :start, :value [:a :b]}\n"
    )
    h = read_edn(write(tmp_path, "i.edn", text))
    assert triples(h.ops) == [
        (0, "invoke", "read", 1, None, None),
        (0, "ok", "read", 1, 4, None),
        (1, "invoke", "cas", 2, [4, 5], None),
        (1, "fail", "cas", 2, [4, 5], None),
        ("nemesis", "info", "start", None, ["a", "b"], None),  # nemesis values untouched
    ]
    # A plain cas register ([old new] with scalars) is not mistaken for tuples...
    plain = (
        "{:type :invoke, :process 0, :f :cas, :value [1 2]}\n"
        "{:type :ok, :process 0, :f :cas, :value [1 2]}\n"
    )
    h = read_edn(write(tmp_path, "p.edn", plain))
    assert h.ops[0].key is None and h.ops[0].value == [1, 2]
    # ...and the caller can decide either way.
    assert read_edn(write(tmp_path, "p2.edn", plain), independent=True).ops[0].key == 1
    assert read_edn(write(tmp_path, "i2.edn", text), independent=False).ops[0].key is None


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[{:type :invoke, :f :read, :process 0}\n 42]", 2, "expected an op map"),
        ("[{:type :invoke, :f :read, :process 0}\n {:type :ok, :f :read}]", 2, "missing :process"),
        ("{:type :invoke, :f :read, :process 0}\n{:type :ok :f}", 2, "odd number"),
        ("[{:type :invoke, :f :read, :process 0}\n", 1, "end of input"),
        ("{:type :invoke, :f :read, :process 0, :time 1.5}", 1, ":time must be an integer"),
        ("{:type :invoke, :f :read, :process [0]}", 1, ":process must be"),
    ],
)
def test_edn_errors_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p = write(tmp_path, "bad.edn", text)
    with pytest.raises(InputError) as e:
        read_edn(p)
    assert e.value.line == line
    assert fragment in str(e.value)
    assert str(e.value).startswith(f"{p}:{line}: ")


# ---------------------------------------------------------------------------------------------
# Detection and dispatch


def test_detection(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path, "a", '{"index":0}\n')) == "jsonl"
    assert detect_format(write(tmp_path, "b", "; comment\n\n[{:type :invoke}]")) == "edn"
    assert detect_format(write(tmp_path, "c", "({:type :invoke})")) == "edn"
    assert detect_format(write(tmp_path, "d", "{:type :invoke, :process 0}\n")) == "edn"
    assert detect_format(write(tmp_path, "e", "#jepsen.history.Op{:type :ok}\n")) == "edn"
    assert detect_format(write(tmp_path, "f", JEPSEN_LOG)) == "jepsen-log"
    assert detect_format(write(tmp_path, "g", KV)) == "kv-log"
    with pytest.raises(InputError, match="cannot tell the history format"):
        detect_format(write(tmp_path, "h", "hello world\n"))
    with pytest.raises(InputError, match="empty"):
        detect_format(write(tmp_path, "i", "\n\n"))
    with pytest.raises(InputError, match="cannot read"):
        detect_format(tmp_path / "missing")


def test_format_override_and_unknown_format(tmp_path: Path) -> None:
    p = write(tmp_path, "h.txt", KV)
    assert read_history(p, "edn").ops == read_history(p).ops
    with pytest.raises(InputError, match="unknown history format 'xml'"):
        read_history(p, "xml")
    with pytest.raises(InputError):
        read_history(p, "jsonl")  # forced to the wrong format: a clear error, not a crash


# ---------------------------------------------------------------------------------------------
# The real Porcupine corpus


def corpus_rows() -> list[dict[str, str]]:
    if not (CORPUS / "EXPECTED.tsv").is_file():
        return []
    with open(CORPUS / "EXPECTED.tsv") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@needs_corpus
def test_corpus_op_counts_and_pairing() -> None:
    """EXPECTED.tsv's `ops` column counts invocations (= paired operations); every file is
    detected, read, validated (no process reuses its id after an info) and paired."""
    rows = corpus_rows()
    assert len(rows) == 58
    for row in rows:
        path = CORPUS / row["file"]
        fmt = detect_format(path)
        assert fmt == ("kv-log" if row["kind"] == "kv" else "jepsen-log"), row["file"]
        h = read_history(path)
        ops = h.operations()
        invokes = [o for o in h.ops if o.type == "invoke"]
        assert len(ops) == len(invokes) == int(row["ops"]), row["file"]
        # Every line of these files is an op line, so Op.line is the 1-based position.
        assert [o.line for o in h.ops] == list(range(1, len(h.ops) + 1)), row["file"]
        if row["kind"] == "kv":
            assert all(o.key is not None for o in ops)
            assert all(o.type == "ok" for o in ops)  # "every operation completes"
        else:
            assert {o.f for o in ops} <= {"read", "write", "cas"}
            assert any(o.type == "info" and o.ret is None for o in ops)


@needs_corpus
def test_corpus_sample_content() -> None:
    h = read_history(CORPUS / "jepsen" / "etcd_000.log")
    assert (h.ops[0].process, h.ops[0].type, h.ops[0].f, h.ops[0].value) == (
        0,
        "invoke",
        "read",
        None,
    )
    cas = next(o for o in h.ops if o.f == "cas")
    assert isinstance(cas.value, list) and len(cas.value) == 2
    timed_out = [o for o in h.ops if o.error == "timed-out"]
    assert timed_out and all(o.type in ("info", "fail") for o in timed_out)
    kv = read_history(CORPUS / "kv" / "c01-ok.txt")
    assert (kv.ops[0].f, kv.ops[0].key, kv.ops[0].value) == ("append", "0", "x 0 0 y")


@needs_corpus
def test_space_separated_logs_read_like_tab_separated() -> None:
    # etcd_100 and etcd_102 use spaces instead of tabs.
    h = read_history(CORPUS / "jepsen" / "etcd_100.log")
    assert len(h.operations()) == 77
    assert any(o.f == "cas" and isinstance(o.value, list) for o in h.ops)


def test_line_per_op_fast_path_agrees_with_the_general_reader(tmp_path: Path) -> None:
    """read_edn reads one-map-per-line files without the general EDN reader; both paths must
    give identical ops, and anything the fast path does not cover falls back cleanly."""
    from dsjepsen import edn
    from dsjepsen.formats.edn import edn_lines_fast, edn_ops

    texts = [
        "[{:index 0, :time 5, :type :invoke, :process 0, :f :cas, :value [1 2]}\n"
        " {:index 1, :time 6, :type :fail, :process 0, :f :cas, :value [1 2], "
        ':error [:not-found "k"]}]\n',
        "{:type :invoke, :process :nemesis, :f :start, :value nil}\n"
        "{:type :info, :process :nemesis, :f :start, :value [:n1 :n2], :ok? true}\n",
        "(\n{:type :invoke, :process 0, :f :read, :value [1 nil]}\n"
        "{:type :ok, :process 0, :f :read, :value [1 -4]}\n)\n",
        "#jepsen.history.Op{:index 0, :time 1, :type :invoke, :process 0, :f :read}\n"
        "#jepsen.history.Op{:index 1, :time 2, :type :ok, :process 0, :f :read, :value 3}\n",
        # Not covered (a float, a set, an escape, a tag): the general reader takes these.
        "[{:type :invoke, :process 0, :f :write, :value 1.5}]",
        "{:type :ok, :process 0, :f :read, :value #{1}}\n",
        '{:type :ok, :process 0, :f :read, :value "a\\"b"}\n',
        "#other.Rec{:type :invoke, :process 0, :f :read}\n",
    ]
    covered = 0
    for n, text in enumerate(texts):
        p = write(tmp_path, f"{n}.edn", text)
        general = edn_ops(edn.iter_forms(text, unwrap=True), str(p), None)
        assert read_edn(p).ops == general, text
        assert [o.line for o in read_edn(p).ops] == [o.line for o in general]
        covered += edn_lines_fast(text) is not None
    assert covered == 4


def test_jsonl_transactions_share_what_they_repeat(tmp_path: Path) -> None:
    """A completion's write micro-ops are its invocation's own lists and every micro-op on a
    key holds one key object (a million-transaction history's memory); values read, failed
    and interleaved processes come out exactly as written."""
    lines = [
        '{"type":"invoke","process":0,"f":"txn","value":[["append",1000,1],["r",1000,null]]}',
        '{"type":"invoke","process":1,"f":"txn","value":[["w",2000,5],["r",1000,null]]}',
        '{"type":"ok","process":0,"f":"txn","value":[["append",1000,1],["r",1000,[1]]]}',
        '{"type":"fail","process":1,"f":"txn","value":[["w",2000,6],["r",1000,null]]}',
    ]
    ops = read_history(write(tmp_path, "h.jsonl", "\n".join(lines) + "\n")).ops
    assert [o.value for o in ops] == [
        [["append", 1000, 1], ["r", 1000, None]],
        [["w", 2000, 5], ["r", 1000, None]],
        [["append", 1000, 1], ["r", 1000, [1]]],
        [["w", 2000, 6], ["r", 1000, None]],
    ]
    inv0, inv1, ok0, fail1 = (o.value for o in ops)
    assert ok0[0] is inv0[0] and ok0[1] is not inv0[1]  # the write shared, the read its own
    assert fail1[0] is not inv1[0] and fail1[1] is inv1[1]  # unequal micro-ops stay apart
    assert ok0[1][1] is inv1[1][1] is inv0[0][1]  # key 1000: one object
