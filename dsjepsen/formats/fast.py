"""Fast paths for the common shapes of large histories: JSON decoded in C (msgspec), a
megabyte of lines at a time, straight from the file's bytes.

Reading a history is building millions of small Python objects; the general readers spend most
of their time in Python per field (json's dicts, then an Op from each) or per token (the EDN
reader). Here a whole chunk of lines becomes one JSON document that msgspec decodes in one call:

- JSONL: the chunk's lines joined as one array, decoded into a typed record per line, so that
  each field is checked (an integer `time`, a string `type`...) in C and only the Op is built
  in Python.
- Jepsen's history.edn: op maps one per line of keywords, integers, decimals, nil, booleans and
  vectors (`{:index 0, :time 5, :type :invoke, :process 3, :f :txn, :value [[:append 9 1] [:r
  8 nil]]}`) are translated to JSON by passes of bytes.replace / bytes.translate over the chunk
  (C; about 25 ms a megabyte, one pass per distinct keyword): keys become JSON keys, keyword
  values strings, blanks commas, nil null. A line of Jepsen's six fields decodes into a typed
  record (made an Op by the caller, no map kept), any other into a dict.

Each function accepts only what it reads exactly as the general reader does, and returns None
for anything else (a blank line, a string, a symbol, a nested map, a duplicated key, a number
JSON would read differently, a chunk that does not decode into one record per line): the caller
then reads that chunk with the general reader, which gives every error its message. Nothing
here raises for bad input. msgspec is a dependency; without it (`DECODER is None`) the general
readers read everything, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from dsjepsen.edn import MAX_DEPTH

try:
    import msgspec
except ImportError:  # pragma: no cover
    # msgspec is a dependency; without it an install still reads every history, more slowly
    msgspec = None  # type: ignore[assignment]

#: bytes per chunk: large enough that per-chunk costs vanish, small enough to stay in cache and
#: to keep what a chunk allocates in passing small
CHUNK_BYTES = 1 << 20
#: the longest chunk taken on a fast path: a chunk longer than the line cap may hold a line
#: over it, which the general reader refuses with its line (bytes >= characters)
MAX_CHUNK_BYTES = 16 << 20


def line_chunks(
    data: bytes | bytearray, start: int, end: int, size: int | None = None
) -> Iterator[tuple[int, int, int]]:
    """(first line number, start, end) of consecutive runs of whole lines of `data[start:end]`,
    each about `size` bytes (CHUNK_BYTES), `end` excluding the newline that ends the run. Line
    numbers count from the start of `data`."""
    size = size or CHUNK_BYTES
    line = data.count(b"\n", 0, start) + 1
    pos = start
    while pos < end:
        stop = data.find(b"\n", min(pos + size, end), end)
        if stop < 0:
            stop = end
        yield line, pos, stop
        line += data.count(b"\n", pos, stop) + 1
        pos = stop + 1


def _whole_lines(chunk: bytes | bytearray, opener: bytes, closer: bytes) -> int | None:
    """How many lines the chunk has when every one starts with `opener` and ends with
    `closer` (no blank line, no surrounding blanks), else None."""
    n = chunk.count(b"\n") + 1
    if (
        chunk[:1] != opener
        or chunk[-1:] != closer
        or chunk.count(b"\n" + opener) != n - 1
        or chunk.count(closer + b"\n") != n - 1
    ):
        return None
    return n


#: every byte but the ones that open a nesting level and the newline
_NOT_NESTING = bytes(b for b in range(256) if b not in b"[{\n")


def _too_deep(chunk: bytes | bytearray, lines: int) -> bool:
    """Does any line open more than MAX_DEPTH brackets? The general readers bound nesting per
    line by that count (a line over it is read, and refused when it is really that deep, by
    the general reader); the chunk's brackets alone answer for most chunks."""
    brackets = chunk.translate(None, _NOT_NESTING)
    if len(brackets) - (lines - 1) <= MAX_DEPTH:
        return False
    return max(map(len, brackets.split(b"\n"))) > MAX_DEPTH


# ---------------------------------------------------------------------------------------------
# JSONL

if msgspec is not None:

    class JsonlRecord(msgspec.Struct, gc=False):
        """The fields of one history.jsonl line that make an Op, as formats.jsonl's plain case
        takes them: process an integer or a string (never a bool), type and f strings, time
        an integer or absent. Anything else fails the chunk over to the general reader."""

        type: str
        f: str
        process: int | str
        time: int | msgspec.UnsetType = msgspec.UNSET
        value: Any = None
        key: Any = None
        node: Any = None
        error: Any = None

    _JSONL = msgspec.json.Decoder(list[JsonlRecord])

    class EdnRecord(msgspec.Struct, gc=False):
        """The six fields of an op as Jepsen >= 0.3 writes it (`:index` renumbered anyway),
        typed as `formats.edn.edn_ops` takes them without question."""

        index: Any
        time: int
        type: str
        process: int | str
        f: str
        value: Any

    _EDN_RECORDS = msgspec.json.Decoder(list[EdnRecord])
    _EDN = msgspec.json.Decoder(list[dict[str, Any]])
    UNSET: Any = msgspec.UNSET
    _FAILED: tuple[type[Exception], ...] = (msgspec.MsgspecError, ValueError, RecursionError)
    DECODER: Any = msgspec
else:  # pragma: no cover
    UNSET = object()
    DECODER = None


def jsonl_records(chunk: bytes | bytearray) -> list[Any] | None:
    """One JsonlRecord per line of a chunk of history.jsonl, or None (see the module
    docstring). Accepted exactly as formats.jsonl accepts a batch: each line is one object
    (`{` ... `}`) with no more brackets than the nesting bound, and the lines joined with
    commas decode into one object per line."""
    if DECODER is None or len(chunk) > MAX_CHUNK_BYTES:
        return None
    n = _whole_lines(chunk, b"{", b"}")
    if n is None or _too_deep(chunk, n):
        return None
    try:
        records = _JSONL.decode(b"[" + chunk.replace(b"\n", b",") + b"]")
    except _FAILED:
        return None
    return records if len(records) == n else None


# ---------------------------------------------------------------------------------------------
# Jepsen EDN

#: bytes an op line may hold to be translated: keyword and symbol characters, digits, the
#: brackets and braces, blanks and commas. No string, character, tag, set, list, comment,
#: reader macro, tab or carriage return: those lines go to the general reader.
_EDN_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.*+!?<>=/[]{} ,\n"
#: what a key's colon is until every keyword is replaced: no byte an accepted line holds
_KEY_COLON = b"\x01"
#: blanks (between vector elements, once keys are JSON) and newlines (between maps) separators
_EDN_TO_JSON = bytes.maketrans(b" \n" + _KEY_COLON, b",,:")
#: a key as Jepsen prints it: first in its map, or after `, `; then one blank
_KEY = re.compile(rb"(\{|, ):([^\s,\[\]{}:]+) ")
#: a keyword that is not a key (once the keys are replaced)
_VALUE_KEYWORD = re.compile(rb":[^\s,\[\]{}:\x01]+")
#: a bare word JSON reads as a value the EDN reader would not give: EDN's `null` is a symbol
_JSON_ONLY_WORDS = (b"null",)


class PlainMap(dict):  # type: ignore[type-arg]
    """An op map read here: its values are JSON's shapes already (lists, strings, numbers,
    None, booleans), what `edn.to_plain` would make of the EDN reader's, so the op builder
    takes them as they are."""

    __slots__ = ()


class EdnKeywords:
    """The keywords of one file, learnt as the chunks come (a history repeats a dozen keywords
    a million times), with what each becomes in JSON: a key `, :time ` becomes `,"time":`
    (as long, so the replacement is a fast copy), a keyword value `:invoke` the string
    `"invoke"` (its name, as the EDN reader reads it). Values are replaced longest first, so
    that none is replaced inside a longer one."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: dict[bytes, bytes] = {}
        self.values: dict[bytes, bytes] = {}

    def learn(self, chunk: bytes | bytearray) -> bool:
        """Add the keywords of `chunk` not known yet; False when there were none to add."""
        before = len(self.keys) + len(self.values)
        for sep, name in _KEY.findall(chunk):
            opener = b"{" if sep == b"{" else b","
            key = opener + b'"' + name + b'"' + _KEY_COLON
            self.keys.setdefault(bytes(sep + b":" + name + b" "), key)
        rest = self._replace_keys(chunk)
        for k in _VALUE_KEYWORD.findall(rest):
            self.values.setdefault(bytes(k), b'"' + k[1:] + b'"')
        self.values = dict(sorted(self.values.items(), key=lambda kv: -len(kv[0])))
        return len(self.keys) + len(self.values) > before

    def _replace_keys(self, chunk: bytes | bytearray) -> bytes | bytearray:
        for k, s in self.keys.items():
            chunk = chunk.replace(k, s)
        return chunk

    def to_json(self, chunk: bytes | bytearray) -> bytes | bytearray | None:
        """The chunk with every keyword replaced, or None when one is not known."""
        text = self._replace_keys(chunk)
        for k, s in self.values.items():
            text = text.replace(k, s)
        return None if b":" in text else text


def edn_records(chunk: bytes | bytearray, keywords: EdnKeywords) -> list[Any] | None:
    """One EdnRecord (Jepsen's six fields, each once, no other) or else one dict per line of a
    chunk of Jepsen EDN op maps; None when the chunk is not such lines (see the module
    docstring).

    Accepted: every line is one map (`{` ... `}`, none nested) of keywords, integers, decimals,
    nil, true, false and vectors of those, with keywords as keys, separated as Jepsen prints
    them (`, ` between entries, one blank between a key and its value and between elements).
    The values are what the EDN reader gives after `to_plain` (keywords as their names), and
    the keys (their names) compare equal to its Keyword keys."""
    if DECODER is None or len(chunk) > MAX_CHUNK_BYTES:
        return None
    if b"#" in chunk:
        chunk = chunk.replace(b"#jepsen.history.Op{", b"{")  # Jepsen >= 0.3's op records
    if b"\n " in chunk:
        chunk = chunk.replace(b"\n ", b"\n")  # one blank of indent, as in a vector of ops
    if chunk[:1] == b" ":
        chunk = chunk[1:]
    n = _whole_lines(chunk, b"{", b"}")
    if n is None or chunk.count(b"{") != n or chunk.translate(None, _EDN_PLAIN):
        return None
    if any(w in chunk for w in _JSON_ONLY_WORDS) or _too_deep(chunk, n):
        return None
    got = _decode(chunk, n, keywords)
    if got is None and keywords.learn(chunk):
        got = _decode(chunk, n, keywords)
    return got


def _decode(chunk: bytes | bytearray, n: int, keywords: EdnKeywords) -> list[Any] | None:
    text = keywords.to_json(chunk)
    if text is None:
        return None
    text = text.translate(_EDN_TO_JSON)
    if b"nil" in text:
        text = text.replace(b",nil", b",null")
        if b"[nil" in text:
            text = text.replace(b"[nil", b"[null")
        if b'":nil' in text:  # (key colons are colons again)
            text = text.replace(b'":nil', b'":null')
    text = b"[" + text + b"]"
    keys = text.count(b'":')
    if keys == len(EdnRecord.__struct_fields__) * n:
        # every line has each of the record's fields (they are required) and no other key,
        # so none twice: the EDN reader refuses a key given twice, JSON keeps the last
        try:
            records = _EDN_RECORDS.decode(text)
        except _FAILED:
            pass
        else:
            return records if len(records) == n else None
    try:
        maps = _EDN.decode(text)
    except _FAILED:
        return None
    if len(maps) != n or sum(map(len, maps)) != keys:  # one map a line; no key twice
        return None
    return maps
