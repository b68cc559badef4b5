"""The EDN reader and writer: values, line numbers, errors, and agreement with Clojure itself."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest

from dsjepsen import edn
from dsjepsen.edn import EdnError, Keyword, Symbol, Tagged


def test_scalars() -> None:
    assert edn.loads("nil") is None
    assert edn.loads("true") is True
    assert edn.loads("false") is False
    assert edn.loads("-42") == -42
    assert edn.loads("42N") == 42
    assert edn.loads("1.5") == 1.5
    assert edn.loads("1e3") == 1000.0
    assert edn.loads("2.5M") == 2.5
    assert edn.loads("1/4") == 0.25
    assert math.isinf(edn.loads("##Inf"))
    assert edn.loads(r'"a\"b\\c\nd\u00e9"') == 'a"b\\c\nd\u00e9'
    assert edn.loads(r"\newline") == "\n"
    assert edn.loads(r"\x") == "x"


def test_keywords_and_symbols_are_strings_that_remember_their_kind() -> None:
    k = edn.loads(":timed-out")
    assert isinstance(k, Keyword) and k == "timed-out"
    assert edn.loads(":jepsen.history/op") == "jepsen.history/op"
    s = edn.loads("foo.bar/baz")
    assert isinstance(s, Symbol) and s == "foo.bar/baz"
    assert edn.dumps(k) == ":timed-out"
    assert edn.dumps(s) == "foo.bar/baz"


def test_collections() -> None:
    v = edn.loads('{:a [1 2 (3 4)], "b" #{1 2}, [1 2] :vec-key, :c {:d nil}}')
    assert v["a"] == [1, 2, [3, 4]]
    assert v["b"] == frozenset({1, 2})
    assert v[(1, 2)] == "vec-key"
    assert v["c"] == {"d": None}
    assert edn.loads("[1,2,,3]") == [1, 2, 3]  # commas are whitespace


def test_tags_discard_comments_and_namespaced_maps() -> None:
    v = edn.loads(
        "; leading comment\n"
        '[#inst "2020-01-01T00:00:00Z" #_ ignored #_[also ignored] 1 ; trailing\n'
        "#jepsen.independent.Tuple{:key 3 :value [1 2]} #:op{:a 1 :b/c 2}]"
    )
    assert v[0] == Tagged("inst", "2020-01-01T00:00:00Z")
    assert v[1] == 1
    assert v[2] == Tagged("jepsen.independent.Tuple", {"key": 3, "value": [1, 2]})
    assert v[3] == {"op/a": 1, "b/c": 2}


def test_iter_forms_reports_the_line_each_form_starts_on() -> None:
    text = "\n{:a 1}\n\n{:b\n 2} {:c 3}\n"
    assert [(n, dict(v)) for n, v in edn.iter_forms(text)] == [
        (2, {"a": 1}),
        (4, {"b": 2}),
        (5, {"c": 3}),
    ]


def test_unwrap_yields_the_elements_of_one_outer_collection_with_their_lines() -> None:
    text = "[{:a 1}\n {:b 2}\n ; comment\n {:c\n  3}]\n"
    assert [n for n, _ in edn.iter_forms(text, unwrap=True)] == [1, 2, 4]
    assert [n for n, _ in edn.iter_forms("(\n{:a 1}\n{:b 2})", unwrap=True)] == [2, 3]
    # Without unwrap the vector is one form.
    assert len(list(edn.iter_forms(text))) == 1


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[1 2\n3", 1, "end of input inside '['"),
        ("{:a 1\n :b}", 1, "odd number of forms"),
        ("[1\n 2)", 2, "expected ']'"),
        ("1\n2\n]", 3, "unexpected ']'"),
        ('[1\n "abc', 2, "unterminated string"),
        ("[1 2]\n[1 :]", 2, "empty keyword"),
        ("\n\n12abc", 3, "invalid number"),
        (r'"bad \q escape"', 1, "unknown string escape"),
    ],
)
def test_errors_name_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(EdnError) as e:
        list(edn.iter_forms(text))
    assert e.value.line == line
    assert fragment in str(e.value)


def test_read_prefix_returns_the_rest() -> None:
    assert edn.read_prefix("[3 0]\t:timed-out") == ([3, 0], ":timed-out")
    assert edn.read_prefix("nil") == (None, "")


def test_to_plain() -> None:
    v = edn.loads('{:f :read, :value #{3 1 2}, :t #foo/bar [:a "b"]}')
    assert edn.to_plain(v) == {"f": "read", "value": [1, 2, 3], "t": ["a", "b"]}
    assert type(edn.to_plain(Keyword("x"))) is str


def test_dumps_round_trips() -> None:
    value = {
        Keyword("type"): Keyword("invoke"),
        "s": 'quote " backslash \\ newline \n tab \t',
        Keyword("v"): [1, -2, 3.5, None, True, False, [Keyword("a")]],
        Keyword("set"): frozenset({1, 2}),
        Keyword("tag"): Tagged("my/tag", {Keyword("k"): 1}),
    }
    assert edn.loads(edn.dumps(value)) == value
    assert edn.keyword("start-partition") == ":start-partition"
    assert edn.keyword("has space") == '"has space"'


# ---------------------------------------------------------------------------------------------
# Agreement with the real Clojure reader and printer (Debian package `clojure`).

CLOJURE = shutil.which("clojure")
needs_clojure = pytest.mark.skipif(
    CLOJURE is None, reason="clojure is not installed (apt-get install clojure)"
)


def run_clojure(script: str, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "script.clj"
    path.write_text(script)
    proc = subprocess.run(
        [str(CLOJURE), str(path), *args], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@needs_clojure
def test_clojure_printed_data_reads_back_identically(tmp_path: Path) -> None:
    """Clojure's own printer output for records, map entries, sets, strings and chars is read
    by our reader as the same data that Clojure reads back with clojure.edn."""
    out = run_clojure(
        r"""
(ns jepsen.independent)
(defrecord Tuple [key value])
(def data [(->Tuple 3 [1 2])
           (clojure.lang.MapEntry. 7 nil)
           #{:a :b}
           "line\nbreak \"quoted\" é"
           \c
           {:nested {:deep [1 2.5 -3 nil true]}}
           'some.ns/sym
           :ns/kw
           12345678901234567890N])
(prn data)
""",
        tmp_path,
    )
    v = edn.loads(out)
    assert v[0] == Tagged("jepsen.independent.Tuple", {"key": 3, "value": [1, 2]})
    assert v[1] == [7, None]
    assert v[2] == frozenset({"a", "b"})
    assert v[3] == 'line\nbreak "quoted" é'
    assert v[4] == "c"
    assert v[5] == {"nested": {"deep": [1, 2.5, -3, None, True]}}
    assert v[6] == "some.ns/sym" and isinstance(v[6], Symbol)
    assert v[7] == "ns/kw" and isinstance(v[7], Keyword)
    assert v[8] == 12345678901234567890


@needs_clojure
def test_clojure_edn_reads_what_we_write(tmp_path: Path) -> None:
    value = [
        {Keyword("type"): Keyword("ok"), Keyword("value"): [1, [2, 3]], "s": 'a"b\\c\n'},
        frozenset({1, 2, 3}),
        None,
        -7,
        2.25,
        Keyword("nemesis"),
    ]
    src = tmp_path / "in.edn"
    src.write_text(edn.dumps(value))
    out = run_clojure(
        "(require '[clojure.edn :as edn])\n"
        "(prn (edn/read-string (slurp (first *command-line-args*))))\n",
        tmp_path,
        str(src),
    )
    assert edn.loads(out) == value
