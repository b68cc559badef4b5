"""The fast readers (formats.fast: JSONL and Jepsen EDN decoded in C, a chunk of lines at a
time) give exactly what the general readers give: the same ops, line numbers, warnings and
errors, on third-party histories, generated ones, and every odd line a chunk may hold, at chunk
sizes small enough that fast chunks and general ones alternate within one file."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.errors import InputError
from dsjepsen.formats import fast, read_history
from dsjepsen.formats.edn import parse_edn, parse_edn_bytes, to_edn
from dsjepsen.formats.jsonl import parse_jsonl, parse_jsonl_bytes
from dsjepsen.history import History

SHARED = Path(__file__).resolve().parents[2] / "shared" / "histories"


def outcome(read: Callable[[], History]) -> tuple[Any, ...]:
    """What a reader gives: every op's fields with its line, and the warnings; or the error."""
    try:
        h = read()
    except InputError as e:
        return ("error", str(e))
    return ("ok", [(*op.to_dict().values(), op.line) for op in h.ops], h.warnings)


def assert_same_jsonl(text: str) -> tuple[Any, ...]:
    data = text.encode()
    want = outcome(lambda: parse_jsonl(text, "h.jsonl"))
    for size in (1, 64, 1 << 20):
        got = outcome(lambda size=size: _with_chunks(size, parse_jsonl_bytes, data, "h.jsonl"))
        assert got == want, f"chunks of {size} bytes"
    return want


def assert_same_edn(text: str) -> tuple[Any, ...]:
    data = text.encode()
    want = outcome(lambda: parse_edn(text, "h.edn"))
    for size in (1, 64, 1 << 20):
        got = outcome(lambda size=size: _with_chunks(size, parse_edn_bytes, data, "h.edn"))
        assert got == want, f"chunks of {size} bytes"
    return want


def _with_chunks(size: int, parse: Callable[[bytes, str], History], data: bytes, src: str):
    saved = fast.CHUNK_BYTES
    fast.CHUNK_BYTES = size
    try:
        return parse(data, src)
    finally:
        fast.CHUNK_BYTES = saved


# ---------------------------------------------------------------------------------------------
# JSONL

REGISTER = [
    '{"index":0,"time":5,"process":0,"type":"invoke","f":"write","value":3,"key":1,"node":"n1"}',
    '{"index":1,"time":9,"process":0,"type":"ok","f":"write","value":3,"key":1,"node":"n1"}',
    '{"index":2,"time":11,"process":1,"type":"invoke","f":"cas","value":[1,2],"key":0}',
    '{"index":3,"time":12,"process":1,"type":"info","f":"cas","value":[1,2],"key":0,'
    '"error":"timeout"}',
    '{"index":4,"time":13,"process":"nemesis","type":"info","f":"start-partition",'
    '"value":{"n1":["n2"]}}',
]


def test_jsonl_register_lines_read_the_same() -> None:
    got = assert_same_jsonl("\n".join(REGISTER) + "\n")
    assert got[0] == "ok" and len(got[1]) == 5


#: lines each of which the fast path must either read as the general reader does or hand
#: over to it (every one is read alone, and mixed into files)
ODD_JSONL = [
    '{"time":1,"process":0,"type":"invoke","f":"txn","value":[["append",1,2],["r",1,null]]}',
    '{"process":2,"type":"invoke","f":"read","value":null}',  # no time: its position
    '{"type":"invoke","f":"read","value":null,"time":3}',  # no process (one client)
    '{"time":4,"process":true,"type":"invoke","f":"read"}',  # a bool is not a process
    '{"time":4.0,"process":1,"type":"invoke","f":"read"}',
    '{"time":null,"process":1,"type":"invoke","f":"read"}',
    '{"time":5,"process":3,"type":"invoke","value":[["append",1,2]]}',  # f implied: txn
    '{"time":6,"process":4,"type":"invoke","f":"w","value":1e999}',
    '{"time":6,"process":4,"type":"invoke","f":"w","value":1.5e3}',
    '{"time":6,"process":4,"type":"invoke","f":"w","value":NaN}',
    '{"time":7,"process":5,"type":"invoke","f":"w","value":' + "9" * 5000 + "}",
    '{"time":7,"process":5,"type":"invoke","f":"w","value":123456789012345678901234567890}',
    '{"time":8,"process":6,"type":"invoke","f":"w","value":' + "[" * 150 + "]" * 150 + "}",
    '{"time":8,"process":6,"type":"invoke","f":"w","value":' + "[" * 60 + "]" * 60 + "}",
    '{"time":9,"process":7,"type":"invoke","type":"ok","f":"w"}',  # a key twice: JSON's last
    '{"time":10,"process":8,"type":"invoke","f":"w","value":"\\ud800"}',
    '{"time":11,"process":9,"type":"invoke","f":"w","value":"caf\u00e9 \\u00e9"}',
    '{"time":12,"process":9,"type":"invoke","f":"w"},{"time":13,"process":9,"type":"ok"}',
    '{"time":14,"process":10,"type":"invoke","f":"w","value":[1',
    "2]}",
    "  ",
    "",
    '{"time":15,"process":11,"type":"invoke","f":"w"}\r',
    '  {"time":16,"process":12,"type":"invoke","f":"w"}  ',
    "[1, 2]",
    '{"time":17,"process":13,"type":"invoke","f":5}',
    '{"time":18,"process":14,"type":"invoke","f":"w","node":["n1"],"extra":{"a":1}}',
]


@pytest.mark.parametrize("line", ODD_JSONL, ids=range(len(ODD_JSONL)))
def test_jsonl_odd_line_reads_the_same(line: str) -> None:
    # alone, between ordinary lines, and last without its newline (a truncated line)
    assert_same_jsonl(line + "\n")
    assert_same_jsonl("\n".join([REGISTER[0], line, REGISTER[1]]) + "\n")
    assert_same_jsonl("\n".join([*REGISTER[:2], line]))


def test_jsonl_random_mixes_read_the_same() -> None:
    rng = random.Random(31)
    good = REGISTER + ODD_JSONL[:2] + ODD_JSONL[8:9] + ODD_JSONL[11:12] + ODD_JSONL[13:14]
    outcomes = set()
    for _ in range(60):
        lines = [
            rng.choice(ODD_JSONL) if rng.random() < 0.03 else rng.choice(good) for _ in range(30)
        ]
        text = "\n".join(lines) + rng.choice(["", "\n"])
        outcomes.add(assert_same_jsonl(text)[0])
    assert outcomes == {"ok", "error"}


def test_jsonl_truncated_last_line_is_forgiven_the_same() -> None:
    text = "\n".join(REGISTER) + '\n{"index":5,"time":20,"proc'
    got = assert_same_jsonl(text)
    assert got[0] == "ok" and "truncated last line" in got[2][0]


def test_jsonl_generated_history_reads_the_same(tmp_path: Path) -> None:
    """Three megabytes of the recorder's lines (chunks of a megabyte: the fast path proper)
    and a list-append history, through read_history as the commands read them."""
    rng = random.Random(7)
    lines = []
    for i in range(30_000):
        f = rng.choice(["read", "write", "cas", "txn"])
        value: Any = rng.randrange(5)
        if f == "txn":
            value = [["append", rng.randrange(9), i], ["r", rng.randrange(9), [1, 2, i]]]
        op = {"index": i, "time": i * 7, "process": i % 20, "type": "invoke", "f": f}
        lines.append(json.dumps({**op, "value": value, "key": i % 10, "node": f"n{i % 5}"}))
    text = "\n".join(lines) + "\n"
    assert_same_jsonl(text)
    path = tmp_path / "h.jsonl"
    path.write_text(text)
    assert outcome(lambda: read_history(path)) == outcome(lambda: parse_jsonl(text, str(path)))


def test_jsonl_txn_micro_ops_are_shared_as_before() -> None:
    """A completion's write micro-ops are its invocation's own lists (TxnSharing), on the
    fast path as on the general one."""
    inv = '{"time":1,"process":0,"type":"invoke","f":"txn","value":[["append",1,2],["r",1,null]]}'
    ok = '{"time":2,"process":0,"type":"ok","f":"txn","value":[["append",1,2],["r",1,[2]]]}'
    h = parse_jsonl_bytes((inv + "\n" + ok + "\n").encode(), "h.jsonl")
    assert h.ops[1].value[0] is h.ops[0].value[0]
    assert h.ops[1].value[1] == ["r", 1, [2]]


# ---------------------------------------------------------------------------------------------
# EDN

JEPSEN = [
    "{:index 0, :time 10, :type :invoke, :process 0, :f :txn, :value [[:append 5 1] [:r 3 nil]]}",
    "{:index 1, :time 20, :type :ok, :process 0, :f :txn, :value [[:append 5 1] [:r 3 [1 2]]]}",
    "{:index 2, :time 30, :type :info, :process :nemesis, :f :start, :value nil}",
    "#jepsen.history.Op{:index 3, :time 40, :type :invoke, :process 1, :f :txn, "
    ":value [[:r 5 nil]]}",
    "{:index 4, :time 50, :type :fail, :process 1, :f :txn, :value [[:r 5 nil]], :error :conflict}",
]


def test_edn_jepsen_lines_read_the_same() -> None:
    got = assert_same_edn("\n".join(JEPSEN) + "\n")
    assert got[0] == "ok" and len(got[1]) == 5
    # one vector of ops, as our exporter and Knossos write them
    assert_same_edn("[" + "\n ".join(JEPSEN) + "]\n")
    assert_same_edn("(" + "\n".join(JEPSEN) + ")")


ODD_EDN = [
    "{:index 9, :time 1, :type :invoke, :process 2, :f :read, :value null}",  # a symbol
    "{:index 9, :time 1, :type :invoke, :process 2, :f :read, :value nil, :value 3}",
    "{:index 9, :time 1, :type :invoke, :type :ok, :process 2, :f :read, :value 3}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f 5, :value 3}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f [:a 1], :value 3}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value [nil 1]}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value :nil}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value ::foo}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value :a:b}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value [1.5 -0.0 1E3 -2]}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 42N}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value +5}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 007}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1e999}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value " + "9" * 5000 + "}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value [true false]}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value [1,2]}",
    '{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value "s p"}',
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value #{1 2}}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value {:a 1}}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value sym}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value nilly}",
    "{:index 9, :time 1.5, :type :invoke, :process 2, :f :w, :value 1}",
    "{:index 9, :time 1, :type :invoke, :process true, :f :w, :value 1}",
    "{:index 9, :time 1, :type :invoke, :process nil, :f :w, :value 1}",
    "{:index 9, :time 1, :type :invoke, :f :w, :value 1}",  # no process: refused beside others
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1, :key 4}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1, :node :n1}",
    "{:index 9, :type :invoke, :process 2, :f :w, :value 1}",  # no time: its position
    "{:type :invoke, :process 2, :f :w, :value 1, :time 1, :index 9}",  # Jepsen < 0.3's order
    "{:index 9 :time 1 :type :invoke :process 2 :f :w :value 1}",  # no commas
    "{:index 9, :time 1, :type invoke, :process 2, :f :w, :value 1}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value [[[[[[[[1]]]]]]]]}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value " + "[" * 150 + "]" * 150 + "}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value []}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value [ ]}",
    "{1 2}",
    "{true 1, 1 2}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1",
    "[:a :b]",
    "; a comment",
    "",
    "  {:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1}",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1}\r",
    "{:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1} ; trailing",
    "#_{:index 9} {:index 9, :time 1, :type :invoke, :process 2, :f :w, :value 1}",
]


@pytest.mark.parametrize("line", ODD_EDN, ids=range(len(ODD_EDN)))
def test_edn_odd_line_reads_the_same(line: str) -> None:
    assert_same_edn(line + "\n")
    assert_same_edn("\n".join([JEPSEN[0], line, JEPSEN[1]]) + "\n")
    assert_same_edn("[" + "\n ".join([*JEPSEN[:2], line]) + "]")


def test_edn_independent_tuples_read_the_same() -> None:
    """jepsen.independent `[k v]` values, inferred over the whole file, fast path or not."""
    lines = [
        "{:index 0, :time 1, :type :invoke, :process 0, :f :write, :value [3 1]}",
        "{:index 1, :time 2, :type :ok, :process 0, :f :write, :value [3 1]}",
        "{:index 2, :time 3, :type :invoke, :process 1, :f :cas, :value [4 [1 2]]}",
        "{:index 3, :time 4, :type :fail, :process 1, :f :cas, :value [4 [1 2]]}",
    ]
    got = assert_same_edn("\n".join(lines) + "\n")
    assert got[0] == "ok" and got[1][0][6] == 3  # the key
    assert_same_edn("\n".join([*lines, ODD_EDN[31]]) + "\n")  # a line of another shape too


def test_edn_random_mixes_read_the_same() -> None:
    rng = random.Random(31)
    outcomes = set()
    for _ in range(60):
        lines = [
            rng.choice(ODD_EDN) if rng.random() < 0.04 else rng.choice(JEPSEN) for _ in range(20)
        ]
        text = "\n".join(lines) + rng.choice(["", "\n"])
        if rng.random() < 0.3:
            text = "[" + text + "]"
        outcomes.add(assert_same_edn(text)[0])
    assert outcomes == {"ok", "error"}


def test_edn_generated_list_append_reads_the_same(tmp_path: Path) -> None:
    """A two-megabyte list-append history in Jepsen's layout, and the same history exported
    by to_edn, through read_history."""
    rng = random.Random(3)
    lines = []
    for i in range(12_000):
        txn = " ".join(
            rng.choice([f"[:append {rng.randrange(50)} {i}]", f"[:r {rng.randrange(50)} nil]"])
            for _ in range(rng.randint(1, 5))
        )
        typ = ":invoke" if i % 2 == 0 else rng.choice([":ok", ":ok", ":fail", ":info"])
        lines.append(
            f"{{:index {i}, :time {i * 9}, :type {typ}, :process {i // 2 % 10 + 10 * (i // 20)}, "
            f":f :txn, :value [{txn}]}}"
        )
    text = "\n".join(lines) + "\n"
    assert_same_edn(text)
    path = tmp_path / "h.edn"
    path.write_text(text)
    h = read_history(path)
    assert outcome(lambda: h) == outcome(lambda: parse_edn(text, str(path)))
    exported = to_edn(h, nemesis_as_info=False)
    assert_same_edn(exported)


# ---------------------------------------------------------------------------------------------
# Third-party histories, and without the C decoder


def _corpus() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(
        p for p in SHARED.rglob("*") if p.suffix in (".edn", ".log", ".txt", ".jsonl", ".json")
    )


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} is absent")
def test_third_party_histories_read_the_same() -> None:
    from dsjepsen.formats import FORMATS, detect_text

    files = _corpus()
    assert files
    for path in files:
        if path.name.startswith(("README", "LICENSE", "EXPECTED")):
            continue
        text = path.read_text()
        fmt = detect_text(text, str(path))
        want = outcome(lambda text=text, fmt=fmt, path=path: FORMATS[fmt].parse(text, str(path)))
        got = outcome(lambda path=path: read_history(path))
        # read_history adds the warnings every format shares (time going backwards)
        assert got[:2] == want[:2], path
        if fmt == "edn":
            assert outcome(lambda text=text, path=path: parse_edn_bytes(text.encode(), str(path)))
            assert want == outcome(
                lambda text=text, path=path: parse_edn_bytes(text.encode(), str(path))
            )


def test_without_msgspec_the_general_readers_read_everything(monkeypatch) -> None:
    monkeypatch.setattr(fast, "DECODER", None)
    assert fast.jsonl_records(REGISTER[0].encode()) is None
    assert_same_jsonl("\n".join(REGISTER) + "\n")
    assert_same_edn("\n".join(JEPSEN) + "\n")


def test_fast_paths_are_taken_on_ordinary_lines() -> None:
    """Not a benchmark: the lines the harness and Jepsen write are the fast paths' (a reader
    that handed everything to the general one would pass every test above)."""
    assert fast.jsonl_records("\n".join(REGISTER[:4]).encode()) is not None
    recs = fast.edn_records("\n".join(JEPSEN[:2] + JEPSEN[3:4]).encode(), fast.EdnKeywords())
    assert recs is not None and type(recs[0]).__name__ == "EdnRecord"
    maps = fast.edn_records("\n".join(JEPSEN).encode(), fast.EdnKeywords())
    assert maps is not None and maps[4]["error"] == "conflict"


def test_streamed_jsonl_errors_and_cuts_read_as_whole_files_do(tmp_path: Path) -> None:
    """read_history and read_jsonl stream a large history.jsonl a megabyte at a time: a line
    cut inside a UTF-8 character at the end is dropped with the same warning, a bad byte in the
    middle is the same error (byte offset and line), as when the file is decoded whole."""
    from dsjepsen.formats.jsonl import read_jsonl
    from dsjepsen.formats.source import decode_source

    body = "\n".join(REGISTER[:2] * 12_000) + "\n"  # over two megabytes: three blocks
    cases = {
        "cut.jsonl": (body + '{"time":1,"process":0,"type":"invoke","f":"w","value":"caf').encode()
        + "\u00e9".encode()[:1],
        "bad.jsonl": body.encode()[:1_500_000] + b"\xff" + body.encode()[1_500_000:],
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)

        def whole(data: bytes = data, path: Path = path) -> History:
            return parse_jsonl(decode_source(data, str(path)), str(path))

        want = outcome(whole)
        assert outcome(lambda path=path: read_jsonl(path))[:2] == want[:2], name
        assert outcome(lambda path=path: read_history(path))[:2] == want[:2], name
    assert "truncated last line" in outcome(lambda: read_jsonl(tmp_path / "cut.jsonl"))[2][0]
    assert "not UTF-8 text (invalid start byte at byte 1500000" in str(
        outcome(lambda: read_jsonl(tmp_path / "bad.jsonl"))
    )


def test_numbers_decode_as_pythons_json_does() -> None:
    """Every decimal the C decoder reads is the float Python's own reader makes of its text
    (shortest repr, many digits, exponents, subnormals), and integers of any size stay exact."""
    rng = random.Random(5)
    texts = [repr(rng.uniform(-1e6, 1e6)) for _ in range(2000)]
    texts += [f"{rng.random():.25f}" for _ in range(500)]
    texts += [
        f"{rng.randrange(1, 10)}.{rng.randrange(10**8)}e{rng.randrange(-320, 308)}"
        for _ in range(500)
    ]
    texts += ["5e-324", "2.2250738585072014e-308", "1.7976931348623157e308", "-0.0", "0.1"]
    texts += [str(rng.randrange(-(10**40), 10**40)) for _ in range(200)]
    lines = [
        f'{{"time":{i},"process":0,"type":"invoke","f":"w","value":{t}}}'
        for i, t in enumerate(texts)
    ]
    h = parse_jsonl_bytes("\n".join(lines).encode(), "n.jsonl")
    assert [op.value for op in h.ops] == [json.loads(t) for t in texts]
    assert [repr(op.value) for op in h.ops] == [repr(json.loads(t)) for t in texts]


def test_streamed_edn_reads_as_whole_files_do(tmp_path: Path) -> None:
    """read_history and read_edn stream a large history.edn: one vector of ops whose closer
    ends the last line, or stands on a line of its own, or hides in a comment; a byte that is
    not UTF-8; all as when the file is decoded and read whole."""
    from dsjepsen.formats.edn import read_edn
    from dsjepsen.formats.source import decode_source

    body = "\n ".join(JEPSEN[:2] * 9_000)  # over a megabyte: two blocks
    cases = {
        "vector.edn": ("[" + body + "]\n").encode(),
        "alone.edn": ("[" + body + "\n]\n\n").encode(),
        "comment.edn": ("[" + body + " ; ]\n").encode(),
        "list.edn": ("(" + body + ")").encode(),
        "bad.edn": ("[" + body + "]").encode()[:1_200_000] + b"\xff" + body.encode()[1_200_000:],
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)

        def whole(data: bytes = data, path: Path = path) -> History:
            return parse_edn(decode_source(data, str(path)), str(path))

        want = outcome(whole)
        assert outcome(lambda path=path: read_edn(path))[:2] == want[:2], name
        assert outcome(lambda path=path: read_history(path))[:2] == want[:2], name
        assert (want[0] == "ok") == (name in ("vector.edn", "alone.edn", "list.edn")), name
