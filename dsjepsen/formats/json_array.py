"""One JSON array of op objects: elle-cli's `.json` histories and Jepsen's JSON exports.

`[{"index": 0, "process": 0, "type": "invoke", "value": [["append", 1, 1]]}, ...]`: the same
op objects as a JSONL line (see jsonl.op_from_dict: `process` and a transaction's `f` may be
left out), in one document. The array is read one element at a time, so every error names the
line where its op starts and no single op can nest deeper than the JSONL limit.
"""

from __future__ import annotations

import os
import re

from dsjepsen.errors import InputError
from dsjepsen.formats.jsonl import op_from_dict
from dsjepsen.formats.source import (
    MAX_DEPTH,
    decode_json_line,
    load,
    require_processes,
    split_lines,
)
from dsjepsen.history import History, Op

NAME = "json"
DESCRIPTION = 'one JSON array of op objects (elle-cli): `[{"type": "invoke", ...}, ...]`'

_SPACE = re.compile(r"[ \t\r\n]*")
_START = re.compile(r'[ \t\r\n]*\[[ \t\r\n]*(\{[ \t\r\n]*"|\])')


def sniff_head(text: str) -> bool:
    """Does the text open a JSON array of objects (`[{"` or `[]`, blanks allowed)?"""
    return _START.match(text) is not None


def parse_json_array(text: str, source: str) -> History:
    """Parse a JSON array of op objects (see the module docstring)."""
    split_lines(text, source)  # the line-length cap
    pos = _SPACE.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        raise InputError("expected a JSON array of ops", source, text.count("\n", 0, pos) + 1)
    pos += 1
    line = 1 + text.count("\n", 0, pos)
    counted = pos
    ops: list[Op] = []
    expect_value = True
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        line += text.count("\n", counted, pos)
        counted = pos
        if pos >= len(text):
            raise InputError("the JSON array is not closed (truncated file?)", source, line)
        c = text[pos]
        if c == "]" and (not ops or not expect_value):
            rest = text[pos + 1 :].strip()
            if rest:
                raise InputError("text after the end of the JSON array", source, line)
            require_processes(ops, source, "op is missing field 'process'")
            return History(ops, source)
        if not expect_value:
            if c != ",":
                raise InputError("expected ',' or ']' between ops", source, line)
            pos += 1
            expect_value = True
            continue
        if c != "{":
            raise InputError("each element of the array must be a JSON object", source, line)
        end = _object_end(text, pos, source, line)
        d, problem = decode_json_line(text[pos:end], source, line)
        if problem is not None:
            raise InputError(f"invalid JSON: {problem}", source, line)
        ops.append(op_from_dict(d, source, line, len(ops)))
        pos = end
        expect_value = False


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _object_end(text: str, start: int, source: str, line: int) -> int:
    """The position just after the JSON object that starts at `start`, found by matching
    brackets outside strings; refuses nesting deeper than MAX_DEPTH before any decoder
    recurses into it."""
    depth = 0
    for m in _TOKENS.finditer(text, start):
        c = m.group()
        if c == "{" or c == "[":
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"nesting deeper than {MAX_DEPTH} levels", source, line)
        elif c == "}" or c == "]":
            depth -= 1
            if depth == 0:
                return m.end()
    raise InputError("the JSON array is not closed (truncated file?)", source, line)


def read_json_array(path: str | os.PathLike[str]) -> History:
    """Read a JSON-array history file."""
    return load(path, parse_json_array)


__all__ = ["parse_json_array", "read_json_array", "sniff_head"]
