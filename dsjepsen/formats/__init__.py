"""History file formats: which exist, how to tell them apart, and reading any of them.

Each format is one module (jsonl, edn, jepsen_log, kv_log) that parses text into a `History`;
this package registers them in FORMATS, in the order detection tries them, and is the one way
commands read a history file (`read_history`), so `dsjepsen check` and `dsjepsen export` offer
exactly the formats registered here. Every reader goes through formats.source, which refuses
what is not a regular file, caps sizes, lines and nesting, and refuses numbers JSON does not
have, each as one line naming the file (and line).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from dsjepsen.errors import InputError
from dsjepsen.files import read_blocks
from dsjepsen.formats import edn, jepsen_log, json_array, jsonl, kv_log
from dsjepsen.formats.source import (
    decode_source,
    finish,
    history_cap,
    read_source,
    read_source_bytes,
)
from dsjepsen.history import History, gc_paused


@dataclass(frozen=True)
class Format:
    """A history format.

    `parse(text, source)` reads it (`parse_bytes(data, source)`, when given, reads the file's
    bytes to the same History: the file is then never held as text; `read_path(path)`, when
    given, reads a large file, found by its head, a run of lines at a time). Detection first asks each format's `sniff_head` about the
    start of the text (a JSON array may open on a line of its own); then it looks at the first
    line that is not blank or a `;` comment and asks each format's `sniff_first`, in FORMATS
    order; failing that, it asks `sniff_any` of each of the first DETECT_LINES lines (a Jepsen
    log starts with chatter).
    """

    name: str
    description: str
    parse: Callable[[str, str], History]
    sniff_first: Callable[[str], bool] | None = None
    sniff_any: Callable[[str], bool] | None = None
    sniff_head: Callable[[str], bool] | None = None
    #: the same reader over the file's bytes, for formats that decode them faster than text
    parse_bytes: Callable[[bytes | bytearray, str], History] | None = None
    #: the same reader given the path, reading the file a run of lines at a time (never whole)
    read_path: Callable[[str | os.PathLike[str]], History] | None = None


def _register(*formats: Format) -> dict[str, Format]:
    return {f.name: f for f in formats}


#: name -> Format, in detection order (kv lines are EDN maps too: they are tried first; a
#: JSON array would read as an EDN vector's start: it is told apart by its head)
FORMATS: dict[str, Format] = _register(
    Format(
        jsonl.NAME,
        jsonl.DESCRIPTION,
        jsonl.parse_jsonl,
        sniff_first=jsonl.sniff_first,
        parse_bytes=jsonl.parse_jsonl_bytes,
        read_path=jsonl.read_jsonl,
    ),
    Format(
        json_array.NAME,
        json_array.DESCRIPTION,
        json_array.parse_json_array,
        sniff_head=json_array.sniff_head,
    ),
    Format(kv_log.NAME, kv_log.DESCRIPTION, kv_log.parse_kv_log, sniff_first=kv_log.sniff_first),
    Format(
        edn.NAME,
        edn.DESCRIPTION,
        edn.parse_edn,
        sniff_first=edn.sniff_first,
        parse_bytes=edn.parse_edn_bytes,
        read_path=edn.read_edn,
    ),
    Format(
        jepsen_log.NAME,
        jepsen_log.DESCRIPTION,
        jepsen_log.parse_jepsen_log,
        sniff_any=jepsen_log.sniff_any,
    ),
)

#: how many lines detection looks at
DETECT_LINES = 2000


def format_names() -> list[str]:
    """The registered names, sorted (for option choices and messages)."""
    return sorted(FORMATS)


def detect_text(text: str, source: str) -> str:
    """The format of a history's text (see Format); InputError when it is empty or none
    claims it."""
    head = text[:4096]
    for fmt in FORMATS.values():
        if fmt.sniff_head is not None and fmt.sniff_head(head):
            return fmt.name
    first: str | None = None
    start = 0
    for _ in range(DETECT_LINES):
        if start > len(text):
            break
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        s = text[start:end].strip()
        start = end + 1
        if first is None:
            if not s or s.startswith(";"):
                continue
            first = s
            for fmt in FORMATS.values():
                if fmt.sniff_first is not None and fmt.sniff_first(s):
                    return fmt.name
        for fmt in FORMATS.values():
            if fmt.sniff_any is not None and fmt.sniff_any(s):
                return fmt.name
    if first is None:
        raise InputError("history is empty", source)
    raise InputError(
        "cannot tell the history format (not "
        + ", ".join(f.name for f in FORMATS.values())
        + "); pass --format",
        source,
    )


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess a history file's format from its content (see Format)."""
    return detect_text(read_source(path), str(path))


def read_history(path: str | os.PathLike[str], format: str = "auto") -> History:
    """Read a history file in `format` ("auto": detected from the content).

    The History's `warnings` say what was forgiven (a truncated last JSONL line, time going
    backwards), one line each, for the caller to show.
    """
    source = str(path)
    if format != "auto" and format not in FORMATS:
        raise InputError(
            f"unknown history format {format!r} (known: auto, {', '.join(format_names())})",
            source,
        )
    fmt = _detect_by_head(path, source) if format == "auto" else format
    read_path = FORMATS[fmt].read_path if fmt is not None else None
    if read_path is not None:  # the file is never held whole
        return read_path(path)
    data = read_source_bytes(path)
    if fmt is None:
        fmt = detect_text(decode_source(data, source), source)
    parse_bytes = FORMATS[fmt].parse_bytes
    with gc_paused():
        if parse_bytes is not None:
            return finish(parse_bytes(data, source))
        return finish(FORMATS[fmt].parse(decode_source(data, source), source))


#: how much of the file detection by its head reads
HEAD_BYTES = 1 << 20


def _detect_by_head(path: str | os.PathLike[str], source: str) -> str | None:
    """The format `detect_text` gives the whole text, when the file's first megabyte (cut at a
    line's end) decides it: it does whenever the first line that is not blank or a comment is
    in it and some format claims that line or the head; None otherwise, and for a file that
    fits in the head (then the whole text is decoded and asked)."""
    blocks = read_blocks(path, "history", history_cap(), HEAD_BYTES)
    try:
        data = next(blocks, b"")
    finally:
        blocks.close()
    cut = data.rfind(b"\n")
    if len(data) < HEAD_BYTES or cut < 0:
        return None
    try:
        head = data[:cut].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(head) < 4096:  # sniff_head looks at the first 4096 characters
        return None
    try:
        return detect_text(head, source)
    except InputError:
        return None


__all__ = [
    "DETECT_LINES",
    "FORMATS",
    "Format",
    "detect_format",
    "detect_text",
    "format_names",
    "read_history",
]
