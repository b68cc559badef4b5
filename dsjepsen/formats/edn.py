"""Jepsen / Knossos `history.edn`: reading it, and writing one Knossos can re-check.

Reading: one vector or list of op maps, or maps one after another; Jepsen >= 0.3's
`#jepsen.history.Op{...}` records are maps. Files written one op map per line (ours, Jepsen's)
take a line-anchored fast path; anything else goes through the general reader in dsjepsen.edn,
with its precise errors. Numbers follow JSON's rules here (no NaN, no infinities), nesting is
capped (dsjepsen.edn.MAX_DEPTH), and every error names the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from dsjepsen import edn
from dsjepsen.errors import InputError
from dsjepsen.formats import fast
from dsjepsen.formats.fast import PlainMap
from dsjepsen.formats.jsonl import WORDS, TxnSharing
from dsjepsen.formats.source import (
    decode_source,
    implied_f,
    load_chunks,
    read_source,
    split_lines,
)
from dsjepsen.history import NEMESIS, History, Op, printable

NAME = "edn"
DESCRIPTION = "Jepsen / Knossos history.edn: a vector or list of op maps, or maps in sequence"


_TUPLE_TAGS = ("jepsen.independent.Tuple", "independent.Tuple")


def _is_independent(maps: list[tuple[int, Any]]) -> bool:
    """Does this EDN history use jepsen.independent `[k v]` tuples as values?

    Jepsen writes an independent tuple (a MapEntry) exactly like a 2-vector, so it is inferred:
    every client invocation's value is `[k v]` with a scalar key, and no op is a `cas` whose
    inner value is not itself a pair (a plain cas-register's `[old new]` has a scalar second).
    """
    seen = False
    for _, m in maps:
        if type(m) is Op:  # a map without :key, read by parse_edn_bytes
            process, typ, f, v, keyed = m.process, m.type, m.f, m.value, False
        else:
            process, typ, f, v = m.get(_K_PROCESS), m.get(_K_TYPE), m.get(_K_F), m.get(_K_VALUE)
            keyed = _K_KEY in m
        if process == NEMESIS or typ != "invoke" or keyed:
            continue
        if not isinstance(v, list) or len(v) != 2 or isinstance(v[0], (list, dict, frozenset)):
            return False
        if f == "cas" and not (isinstance(v[1], list) and len(v[1]) == 2):
            return False
        seen = True
    return seen


_K_PROCESS = edn.Keyword("process")
_K_TYPE = edn.Keyword("type")
_K_F = edn.Keyword("f")
_K_VALUE = edn.Keyword("value")
_K_KEY = edn.Keyword("key")
_K_TIME = edn.Keyword("time")
_K_NODE = edn.Keyword("node")
_K_ERROR = edn.Keyword("error")


def edn_ops(forms: Iterable[tuple[int, Any]], source: str, independent: bool | None) -> list[Op]:
    """Ops from (line, EDN form) pairs; see `parse_edn` for the shapes understood."""
    maps: list[tuple[int, dict[Any, Any]]] = []
    for line, form in forms:
        if type(form) is Op:  # built by parse_edn_bytes from a plain op map
            maps.append((line, form))
            continue
        # Jepsen >= 0.3 prints each op as a record: #jepsen.history.Op{...}
        if isinstance(form, edn.Tagged) and isinstance(form.value, dict):
            form = form.value
        if not isinstance(form, dict):
            raise InputError(f"expected an op map, found {_shown(form)}", source, line)
        maps.append((line, form))
    split = _is_independent(maps) if independent is None else independent
    # Elle's histories have no :process at all (one client); a file where only some ops lack
    # it is broken, and the first such op is named
    missing = next((line for line, m in maps if type(m) is not Op and _K_PROCESS not in m), None)
    if missing is not None and any(type(m) is Op or _K_PROCESS in m for _line, m in maps):
        raise InputError("op is missing :process", source, missing)
    ops: list[Op] = []
    plain = _plain
    for line, m in maps:
        i = len(ops)
        if type(m) is Op:  # all checked; (a map with a :key field is never made an Op)
            v = m.value
            if split and m.process != NEMESIS and type(v) is list and len(v) == 2:
                m.key, m.value = v
            ops.append(m)
            continue
        if type(m) is PlainMap:
            # read by formats.fast: plain values, string keys; the common case in short
            get = m.get
            typ, f, process, t = get("type"), get("f"), get("process"), get("time", i)
            if (
                type(typ) is str
                and type(f) is str
                and type(t) is int
                and (type(process) is int or type(process) is str or process is None)
                and not split
            ):
                ops.append(
                    Op(
                        i,
                        t,
                        process,
                        typ,
                        f,
                        get("value"),
                        get("key"),
                        get("node"),
                        get("error"),
                        line,
                    )
                )
                continue
            if f is not None and type(f) is not str:
                raise _Reread  # the EDN reader's form of it is what `edn.dumps` must show
        try:
            typ = m[_K_TYPE]
        except KeyError as e:
            raise InputError(f"op is missing :{e.args[0]}", source, line) from None
        # Elle's histories leave out :process (one client) and the :f of transactions
        process = m.get(_K_PROCESS)
        f = m.get(_K_F)
        if f is None:
            f = implied_f(edn.to_plain(m.get(_K_VALUE)))
            if f is None:
                raise InputError("op is missing :f", source, line)
        if not isinstance(typ, str):
            raise InputError(f":type must be a keyword, got {_shown(typ)}", source, line)
        if process is not None and type(process) is not int:
            if isinstance(process, str):
                process = str(process)
            else:
                raise InputError(
                    f":process must be an integer or a keyword, got {_shown(process)}",
                    source,
                    line,
                )
        t = m.get(_K_TIME, i)
        if type(t) is not int:
            raise InputError(f":time must be an integer, got {_shown(t)}", source, line)
        value = m.get(_K_VALUE)
        key = m.get(_K_KEY)
        if type(value) is edn.Tagged and value.tag.endswith(_TUPLE_TAGS):
            inner = value.value
            if isinstance(inner, dict):
                key, value = inner.get(_K_KEY), inner.get(_K_VALUE)
            elif isinstance(inner, list) and len(inner) == 2:
                key, value = inner
        elif split and process != NEMESIS and type(value) is list and len(value) == 2:
            key, value = value
        node = m.get(_K_NODE)
        error = m.get(_K_ERROR)
        ops.append(
            Op(
                i,
                t,
                process,
                str(typ),
                str(f) if isinstance(f, str) else edn.dumps(f),
                value if type(value) in plain else edn.to_plain(value),
                key if type(key) in plain else edn.to_plain(key),
                node if type(node) in plain else edn.to_plain(node),
                error if type(error) in plain else edn.to_plain(error),
                line,
            )
        )
    return ops


_plain = frozenset({int, str, type(None), bool, float})


class _Reread(Exception):
    """A map read by formats.fast needs the EDN reader's forms: read the file with it."""


def _shown(form: Any) -> str:
    """A form in an error message: EDN text, at most 60 characters, control characters
    escaped."""
    return printable(edn.dumps(form)[:60])


def parse_edn(text: str, source: str, independent: bool | None = None) -> History:
    """Parse a Jepsen / Knossos history.edn: one vector or list of op maps, or maps in sequence.

    Keywords become plain strings, sets sorted lists, `:index` is renumbered to the position,
    `:time` is kept when present (else the position). Keyed ops come from a `:key` field, a
    `#jepsen.independent.Tuple{:key k :value v}`, or jepsen.independent `[k v]` values
    (`independent=None` infers the latter; pass True or False to decide). Extra keys are ignored.
    """
    split_lines(text, source)  # the line-length cap
    forms = edn_lines_fast(text)
    try:
        if forms is None:
            ops = edn_ops(edn.iter_forms(text, unwrap=True, finite=True), source, independent)
        else:
            ops = edn_ops(forms, source, independent)
    except edn.EdnError as e:
        raise InputError(f"invalid EDN: {e.reason}", source, e.line) from None
    return History(ops, source)


def parse_edn_bytes(
    data: bytes | bytearray, source: str, independent: bool | None = None
) -> History:
    """`parse_edn` of a file's bytes, faster on Jepsen's layout (see `parse_edn_chunks`)."""
    end = len(data)
    chunks = ((line, a, data[a:b], b == end) for line, a, b in fast.line_chunks(data, 0, end))
    return parse_edn_chunks(chunks, source, lambda: decode_source(data, source), independent)


def parse_edn_chunks(
    chunks: Iterable[tuple[int, int, bytes | bytearray, bool]],
    source: str,
    whole: Callable[[], str],
    independent: bool | None = None,
) -> History:
    """`parse_edn` of a file given as runs of whole lines (`source.read_source_chunks`'
    tuples), faster on Jepsen's layout: op maps one per line.

    Chunks of such lines are translated to JSON and decoded in C (formats.fast); a chunk that
    holds anything else is read by the line-anchored reader or the general one, on its own.
    A file that is not forms one after another, in lines, or one vector or list of them, or
    that any reader finds an error in, is read by `parse_edn` of `whole()` (its text), which
    gives the errors."""
    forms = _forms_by_chunk(chunks)
    if forms is not None:
        try:
            return History(edn_ops(forms, source, independent), source)
        except _Reread:
            pass
    return parse_edn(whole(), source, independent)


_EDN_BLANK = b" \t\r\n,"
_FIRST_FORM = re.compile(rb"[^ \t\r\n,]")


def _forms_by_chunk(
    chunks: Iterable[tuple[int, int, bytes | bytearray, bool]],
) -> list[tuple[int, Any]] | None:
    """(line, form) of every op of the file, read a chunk of lines at a time; None when the
    file must be read whole (see parse_edn_chunks)."""
    if fast.DECODER is None:
        return None
    it = iter(chunks)
    head = next(it, None)
    if head is None:
        return None
    line, _, chunk, _ = head
    m = _FIRST_FORM.search(chunk)
    if m is None or m.group() == b";":  # blank, or a comment first: read whole
        return None
    closer: bytes | None = None
    if m.group() in (b"[", b"("):
        # one vector or list of ops (iter_forms' unwrap): its elements are the forms
        closer = b"]" if m.group() == b"[" else b")"
        line += chunk.count(b"\n", 0, m.start())
        chunk = chunk[m.start() + 1 :]
    keywords = fast.EdnKeywords()
    sharing = TxnSharing()
    words = WORDS.get
    forms: list[tuple[int, Any]] = []

    def take(line: int, chunk: bytes | bytearray) -> bool:
        """Read one chunk into `forms`; False when the file must be read whole."""
        if len(chunk) > fast.MAX_CHUNK_BYTES:
            return False  # it may hold a line over the cap: parse_edn refuses it
        maps = fast.edn_records(chunk, keywords)
        if maps is not None and maps and type(maps[0]) is not dict:
            append = forms.append
            i = len(forms)
            for r in maps:
                typ, f, process, value = words(r.type, r.type), words(r.f, r.f), r.process, r.value
                if f == "txn":
                    sharing.share(process, typ, value)
                append((line, Op(i, r.time, process, typ, f, value, None, None, None, line)))
                i += 1
                line += 1
            return True
        if maps is not None:
            append = forms.append
            for m in maps:
                # the common op becomes its Op here, the map dropped (a third of the memory)
                get = m.get
                i = len(forms)
                typ, f, process, t = get("type"), get("f"), get("process"), get("time", i)
                if (
                    type(typ) is str
                    and type(f) is str
                    and type(t) is int
                    and (type(process) is int or type(process) is str)
                    and "key" not in m
                ):
                    # one string per keyword name, and a completion's writes its
                    # invocation's, as the EDN reader shares its atoms
                    typ, f, value = words(typ, typ), words(f, f), get("value")
                    if f == "txn":
                        sharing.share(process, typ, value)
                    op = Op(i, t, process, typ, f, value, None, get("node"), get("error"), line)
                    append((line, op))
                else:
                    append((line, PlainMap(m)))
                line += 1
            return True
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError:
            return False
        head = text.lstrip(" \t\r\n,")
        got = edn_lines_fast(text) if head[:1] not in ("[", "(") else None
        if got is None:
            try:
                got = list(edn.iter_forms(text, finite=True))
            except edn.EdnError:
                return False
        forms.extend((n + line - 1, form) for n, form in got)
        return True

    for nxt in it:
        if not take(line, chunk):
            return None
        line, _, chunk, _ = nxt
    if closer is not None:
        chunk = chunk.rstrip(_EDN_BLANK)
        if not chunk.endswith(closer):
            return None
        tail = chunk[chunk.rfind(b"\n") + 1 : -1]
        if any(c in tail for c in (b";", b'"', b"\\")):
            return None  # the closer may be in a comment, a string or a character
        chunk = chunk[:-1]
    if chunk.strip(_EDN_BLANK) and not take(line, chunk):
        return None
    return forms


def read_edn(path: str | os.PathLike[str], independent: bool | None = None) -> History:
    """Read a history.edn file (see `parse_edn`)."""
    return load_chunks(
        path,
        lambda chunks, source: parse_edn_chunks(
            chunks, source, lambda: read_source(path), independent
        ),
    )


def sniff_first(line: str) -> bool:
    """Does this first non-blank line open EDN (`[`, `(`, `{`, a `#tag`)?"""
    return line[0] in "[({#"


# The kv-log lines are simple flat maps; a line-anchored pattern reads those directly and
# anything else on a line goes through the EDN reader.
_FLAT_SCALAR = r'nil|true|false|-?[0-9]+|"[^"\\]*"|:[\w.*+!?<>=-]+'
_FLAT_ATOM = _FLAT_SCALAR + r'|\[(?:[^\[\](){}"#\\;]|"[^"\\]*")*\]'
_FLAT_KEY = r"[\w.*+!?<>=-]+"
_FLAT_FIELD = re.compile(r":(" + _FLAT_KEY + r")\s+(" + _FLAT_ATOM + r")")
# (commas are whitespace in EDN; one class for both keeps the match linear on long runs)
_FLAT_MAP = re.compile(r"\{[\s,]*(?::" + _FLAT_KEY + r"\s+(?:" + _FLAT_ATOM + r")[\s,]*)*\}")
_FLAT_ITEM = re.compile(r'"[^"\\]*"|[^\s,]+')
_NO_FAST = object()
#: longer lines and longer integers go to the EDN reader (linear, with precise errors)
_FLAT_MAX = 4096
_FLAT_DIGITS = 18
_DIGITS = frozenset("-0123456789")
_FLAT_CONST = {"nil": None, "true": True, "false": False}


def _flat_atom(v: str) -> Any:
    c = v[0]
    if c == '"':
        return v[1:-1]
    if c == ":":
        return v[1:]
    if c == "[":
        items = [_flat_atom(x) for x in _FLAT_ITEM.findall(v, 1, len(v) - 1)]
        return _NO_FAST if _NO_FAST in items else items
    if v in _FLAT_CONST:
        return _FLAT_CONST[v]
    if c in _DIGITS and len(v) <= _FLAT_DIGITS:
        try:
            return int(v)
        except ValueError:  # not an integer ("-"): the EDN reader says what it is
            return _NO_FAST
    return _NO_FAST  # a symbol, float, char...: leave it to the EDN reader


def kv_line(text: str) -> dict[Any, Any] | None:
    """A flat map of keywords to nil / booleans / integers / plain strings / keywords / flat
    vectors of those, or None when the line is anything richer (then the EDN reader takes it).
    Keys and keyword values become plain strings, as the op builder would make them anyway;
    keys hash and compare like the reader's Keywords."""
    if len(text) > _FLAT_MAX or _FLAT_MAP.fullmatch(text) is None:
        return None
    out: dict[Any, Any] = {}
    for k, v in _FLAT_FIELD.findall(text):
        if k in out:
            return None  # a key given twice: the EDN reader refuses it with its line
        c = v[0]
        if c in _DIGITS:  # the pattern admits only -?[0-9]+ here
            if len(v) > _FLAT_DIGITS:
                return None  # the EDN reader refuses it with its line
            out[k] = int(v)
        elif c == '"':
            out[k] = v[1:-1]
        elif c == ":":
            out[k] = v[1:]
        elif v == "nil":
            out[k] = None
        else:
            x = _flat_atom(v)
            if x is _NO_FAST:
                return None
            out[k] = x
    return out


_OP_RECORD = "#jepsen.history.Op"  # how Jepsen >= 0.3 prints each op of a history.edn


def edn_lines_fast(text: str) -> list[tuple[int, Any]] | None:
    """Read EDN written one op map per line (our exporter's and Jepsen's own layout, with or
    without one enclosing vector) without the general reader; None when the text is anything
    else, and then the general reader (with its precise errors) takes over."""
    out: list[tuple[int, Any]] = []
    closer: str | None = None
    closed = False
    for n, raw in enumerate(text.split("\n"), start=1):
        s = raw.strip()
        if not s:
            continue
        if closed:
            return None
        if not out and closer is None and s[0] in "[(":
            closer = "]" if s[0] == "[" else ")"
            s = s[1:].lstrip()
            if not s:
                continue
        if closer is not None and s[-1] == closer:
            closed = True
            s = s[:-1].rstrip()
            if not s:
                continue
        if s.startswith(_OP_RECORD):
            s = s[len(_OP_RECORD) :]
        m = kv_line(s)
        if m is None:
            return None
        out.append((n, m))
    if closer is not None and not closed:
        return None
    return out


# ---------------------------------------------------------------------------------------------
# Writing: histories Knossos (and Jepsen's checkers) can read back.

_ALL_KEYS: Any = object()


def _edn_name(name: str) -> str:
    return edn.keyword(name)


def to_edn(
    history: History | Iterable[Op],
    *,
    key: Any = _ALL_KEYS,
    nemesis_as_info: bool = True,
) -> str:
    """EDN text of a history: a vector of op maps, one per line, as Knossos' CLI reads it.

    Maps carry `:index` (the op's position, unique as Knossos requires), `:time` (ns),
    `:type`, `:process` (an integer, or `:nemesis`), `:f` and `:value` as keywords / EDN data,
    and `:key`, `:node`, `:error` when set. A keyed op keeps `:key` as its own field rather
    than a `[key value]` value: Knossos' CLI (knossos/cli.clj) reads with clojure.edn, offers
    only single-object models (register, cas-register, mutex) and ignores unknown fields, and
    Jepsen's independent checker recognises tuples as MapEntry objects, which clojure.edn never
    produces from a `[k v]` vector. So a multi-key history is exported one key at a time
    (`key=k` keeps that key's ops plus the unkeyed ones, as Jepsen's `subhistory` does), and
    every exported file is a correct single-register history for Knossos.

    Knossos-compatibility normalisations: nemesis ops are written with `:type :info` (Jepsen's
    convention; Knossos would otherwise pair a nemesis invoke with an info completion and reject
    the next nemesis invoke); a `fail` completion carries its invocation's value (Knossos asserts
    they are equal). Pass `nemesis_as_info=False` for a lossless dsjepsen-to-dsjepsen copy.
    """
    ops = history.ops if isinstance(history, History) else list(history)
    open_values: dict[Any, Any] = {}
    lines: list[str] = []
    dumps = edn.dumps
    for op in ops:
        if key is not _ALL_KEYS and op.key is not None and op.key != key:
            continue
        typ = op.type
        value = op.value
        if op.process == NEMESIS:
            proc = ":nemesis"
            if nemesis_as_info:
                typ = "info"
        else:
            if op.type == "invoke":
                open_values[op.process] = op.value
            elif op.type == "fail":
                value = open_values.get(op.process, value)
            if op.type != "invoke":
                open_values.pop(op.process, None)
            if op.process is None:  # Elle's histories of one client have none
                proc = "nil"
            else:
                proc = str(op.process) if type(op.process) is int else _edn_name(str(op.process))
        parts = [
            f"{{:index {op.index}",
            f":time {op.time}",
            f":type {_edn_name(typ)}",
            f":process {proc}",
            f":f {_edn_name(op.f)}",
        ]
        if op.key is not None:
            parts.append(f":key {dumps(op.key)}")
        parts.append(f":value {dumps(value)}")
        if op.node is not None:
            parts.append(f":node {dumps(op.node)}")
        if op.error is not None:
            parts.append(f":error {dumps(op.error)}")
        lines.append(", ".join(parts) + "}")
    if not lines:
        return "[]\n"
    return "[" + "\n ".join(lines) + "]\n"


def write_edn(
    history: History | Iterable[Op],
    path: str | os.PathLike[str],
    *,
    key: Any = _ALL_KEYS,
    nemesis_as_info: bool = True,
) -> None:
    """Write `to_edn(history)` to `path` (see there for the format)."""
    text = to_edn(history, key=key, nemesis_as_info=nemesis_as_info)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
