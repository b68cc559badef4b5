"""JSONL, dsjepsen's own history format: one JSON object per line, as the harness records it.

The harness flushes one line per op, so a killed harness leaves at most its last line cut short;
that line alone is forgiven (dropped, with a warning naming it). Anything else unparseable is an
error at its line, and so is a file whose only op line is cut: an empty history is not a
history that passed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from dsjepsen.errors import InputError
from dsjepsen.formats import fast
from dsjepsen.formats.source import (
    decode_chunk,
    decode_json_line,
    decode_json_objects,
    implied_f,
    load_chunks,
    require_processes,
    split_lines,
)
from dsjepsen.history import History, Op, write_jsonl

NAME = "jsonl"
DESCRIPTION = "dsjepsen's history.jsonl: one JSON object per line"


#: the words every op repeats, one string object each: a decoder makes a new string for every
#: value it reads, which on a million-op history is a few hundred megabytes of copies
WORDS = {
    w: w
    for w in ("invoke", "ok", "fail", "info", "txn", "read", "write", "cas", "append", "r", "w")
}


class TxnSharing:
    """What the transactions of one file can share, read in file order: one string per
    micro-op name, one object per key, and a completion's write micro-ops are its
    invocation's own lists (they are equal: only reads are filled in). On a million-transaction
    history that is a quarter of the history's memory; nothing mutates a micro-op once read."""

    __slots__ = ("keys", "invoked")

    def __init__(self) -> None:
        self.keys: dict[Any, Any] = {}
        self.invoked: dict[Any, list[Any]] = {}

    def share(self, process: Any, typ: str, value: Any) -> None:
        if type(value) is not list:
            return
        words = WORDS.get
        keys = self.keys
        inv = self.invoked.pop(process, None) if typ != "invoke" else None
        same = inv is not None and len(inv) == len(value)
        for i, m in enumerate(value):
            if type(m) is not list:
                continue
            if same and m == inv[i]:  # type: ignore[index]
                value[i] = inv[i]  # type: ignore[index]
                continue
            if len(m) > 1:
                f, k = m[0], m[1]
                m[0] = words(f, f)
                if type(k) is int or type(k) is str:
                    m[1] = keys.setdefault(k, k)
        if typ == "invoke":
            self.invoked[process] = value


def op_from_dict(
    d: dict[str, Any], source: str, line: int, index: int, sharing: TxnSharing | None = None
) -> Op:
    """Build an Op from one decoded JSON object, naming the line on any missing field.

    `process` may be left out (Elle's histories of one client do: it is then None, one
    process), and so may `f` when the value is a list of micro-ops (it is then "txn").
    `sharing`, one per file, lets its transactions share what they repeat."""
    typ, f, process, t = d.get("type"), d.get("f"), d.get("process"), d.get("time", index)
    plain = type(process) is int or type(process) is str  # (a bool's type is not int)
    if plain and type(typ) is str and type(f) is str and type(t) is int:
        get = d.get
        words = WORDS.get
        if f == "txn":
            if sharing is not None:
                sharing.share(process, typ, get("value"))
            else:
                _share_words(get("value"))
        return Op(
            index,
            t,
            process,
            words(typ, typ),
            words(f, f),
            get("value"),
            get("key"),
            get("node"),
            get("error"),
            line,
        )
    return _op_checked(d, source, line, index)


def _share_words(value: Any) -> None:
    """The micro-op names of a transaction (`["append", 1, 2]`) as the shared WORDS strings:
    six string copies a transaction, a third of a million-transaction history's memory."""
    if type(value) is list:
        words = WORDS.get
        for m in value:
            if type(m) is list and m:
                f = m[0]
                m[0] = words(f, f)


def _op_checked(d: dict[str, Any], source: str, line: int, index: int) -> Op:
    """op_from_dict for everything but the plain case, with its errors."""
    try:
        typ = d["type"]
    except KeyError as e:
        raise InputError(f"op is missing field {e.args[0]!r}", source, line) from None
    f = d.get("f")
    if f is None:
        f = implied_f(d.get("value"))
        if f is None:
            raise InputError("op is missing field 'f'", source, line)
    process = d.get("process")
    if not isinstance(typ, str) or not isinstance(f, str):
        raise InputError("fields 'type' and 'f' must be strings", source, line)
    if process is not None and (not isinstance(process, (int, str)) or isinstance(process, bool)):
        raise InputError(
            f"field 'process' must be an integer or a string, got {_short(process)}", source, line
        )
    t = d.get("time", index)
    if not isinstance(t, int) or isinstance(t, bool):
        raise InputError(f"field 'time' must be an integer, got {_short(t)}", source, line)
    return Op(
        index=index,
        time=t,
        process=process,
        type=typ,
        f=f,
        value=d.get("value"),
        key=d.get("key"),
        node=d.get("node"),
        error=d.get("error"),
        line=line,
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: lines decoded together, as one JSON array: one call into the decoder, and the field names
#: read once per batch rather than once per line (about a third faster on large histories)
BATCH_LINES = 4096


def parse_jsonl(text: str, source: str) -> History:
    """Parse JSONL text (see the module docstring for what is forgiven): the general reader,
    line by line (`read_lines`)."""
    ops: list[Op] = []
    warnings: list[str] = []
    read_lines(split_lines(text, source), 1, True, source, ops, warnings, TxnSharing())
    require_processes(ops, source, "op is missing field 'process'")
    return History(ops, source, warnings)


def parse_jsonl_bytes(data: bytes | bytearray, source: str) -> History:
    """Parse a JSONL file's bytes: what `parse_jsonl` gives for their text, faster (see
    `parse_jsonl_chunks`)."""
    end = len(data)
    chunks = (
        (line, a, bytes(data[a:b]), b == end) for line, a, b in fast.line_chunks(data, 0, end)
    )
    return parse_jsonl_chunks(chunks, source)


def parse_jsonl_chunks(chunks: Iterable[tuple[int, int, bytes, bool]], source: str) -> History:
    """Parse a JSONL file given as runs of whole lines (`source.read_source_chunks`' tuples):
    what `parse_jsonl` gives for its text.

    A run of ordinary lines is decoded in C into typed records (formats.fast) and only the Ops
    are built here; any other run (a blank line, a CRLF, a line the records do not take, an
    error, a truncated last line) is read by the general reader, with its messages and line
    numbers, as part of the same file."""
    ops: list[Op] = []
    warnings: list[str] = []
    sharing = TxnSharing()
    words = WORDS.get
    nodes: dict[Any, Any] = {}
    unset = fast.UNSET
    for first, offset, chunk, at_end in chunks:
        records = fast.jsonl_records(chunk)
        if records is None:
            text = decode_chunk(chunk, offset, first, at_end, source)
            if read_lines(split_lines(text, source), first, at_end, source, ops, warnings, sharing):
                break
            continue
        line = first
        append = ops.append
        for r in records:
            index = len(ops)
            t = r.time
            typ = r.type
            f = r.f
            value = r.value
            node = r.node
            if f == "txn":
                sharing.share(r.process, typ, value)
            if type(node) is str:
                node = nodes.setdefault(node, node)  # a few names, millions of times
            append(
                Op(
                    index,
                    index if t is unset else t,
                    r.process,
                    words(typ, typ),
                    words(f, f),
                    value,
                    r.key,
                    node,
                    r.error,
                    line,
                )
            )
            line += 1
    require_processes(ops, source, "op is missing field 'process'")
    return History(ops, source, warnings)


def read_lines(
    lines: list[str],
    first: int,
    file_end: bool,
    source: str,
    ops: list[Op],
    warnings: list[str],
    sharing: TxnSharing,
) -> bool:
    """Read `lines` (line `first` onwards; `file_end`: they end the file) into `ops`; True
    when the last was a truncated line, dropped with a warning (then nothing follows it).

    Lines go to the decoder in batches (`decode_json_objects`); a batch with anything unusual
    in it is decoded again line by line, which is also where every error message comes from."""
    last = len(lines)
    if last and lines[-1] == "":
        last -= 1  # the text ends with a newline: its last line is whole
    for start in range(0, len(lines), BATCH_LINES):
        batch = [
            (n, s)
            for n, raw in enumerate(lines[start : start + BATCH_LINES], start=start + first)
            if (s := raw.strip())
        ]
        decoded = decode_json_objects([s for _n, s in batch])
        if decoded is not None:
            for (n, _s), d in zip(batch, decoded, strict=True):
                ops.append(op_from_dict(d, source, n, len(ops), sharing))
            continue
        for n, line in batch:
            d, problem = decode_json_line(line, source, n)
            if problem is not None:
                if file_end and n - first + 1 == last == len(lines) and ops:
                    # the harness died mid-write: everything before is intact
                    warnings.append(
                        f"{source}:{n}: dropped a truncated last line ({problem}); the writer "
                        "was probably killed mid-line"
                    )
                    return True
                raise InputError(f"invalid JSON: {problem}", source, n)
            if not isinstance(d, dict):
                raise InputError("each line must be a JSON object", source, n)
            ops.append(op_from_dict(d, source, n, len(ops), sharing))
    return False


def read_jsonl(path: str | os.PathLike[str]) -> History:
    """Read a JSONL history file."""
    return load_chunks(path, parse_jsonl_chunks)


def sniff_first(line: str) -> bool:
    """Is this first non-blank line a JSON object (`{"`)?"""
    return line.startswith('{"') or line.startswith('{ "')


__all__ = [
    "op_from_dict",
    "parse_jsonl",
    "parse_jsonl_bytes",
    "parse_jsonl_chunks",
    "read_jsonl",
    "write_jsonl",
]
