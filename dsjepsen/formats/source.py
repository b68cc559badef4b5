"""Reading a history file safely: bad input is one line naming the file (and line), in bounded
time and memory, never a hang, a crash or a verdict.

Every reader of dsjepsen.formats gets its text from `read_source`, which refuses what is not a
regular file before opening it for reading (a FIFO would block, /dev/zero never ends), caps the
size, and decodes UTF-8 strictly. The parsers then call `split_lines` (line-length cap) and, for
JSON, `check_json_line` (nesting depth) before handing a line to a recursive decoder.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dsjepsen.edn import MAX_DEPTH
from dsjepsen.errors import InputError
from dsjepsen.files import read_blocks, read_bytes
from dsjepsen.history import History, Op, gc_paused, time_regressions
from dsjepsen.machine import memory_available

#: largest history file read (a 10-million-op Jepsen history is under 1 GiB)
MAX_FILE_BYTES = 1 << 30
#: memory a history takes once read and parsed, per byte of its file (measured with
#: bench/history_parse.py: text, ops and the paired operations)
BYTES_PER_HISTORY_BYTE = 8
#: longest line (characters); a single op is a few hundred
MAX_LINE_CHARS = 16 << 20


def read_source(path: str | os.PathLike[str]) -> str:
    """The text of a history file, or InputError naming it: `decode_source(read_source_bytes(
    path))`."""
    return decode_source(read_source_bytes(path), str(path))


def read_source_bytes(path: str | os.PathLike[str]) -> bytearray:
    """The bytes of a history file, or InputError naming it.

    `files.read_bytes` refuses what is not a regular file before reading (a FIFO never blocks,
    /dev/zero never streams), stops at a NUL byte, and reads at most `history_cap()` bytes.
    Readers that decode JSON straight from bytes (formats.fast) start here and never hold the
    file as text; every other reader takes `decode_source` of these bytes."""
    return read_bytes(path, "history", history_cap())


def decode_source(data: bytes | bytearray, source: str) -> str:
    """The bytes of a history file as text: strict UTF-8, or InputError naming the byte and
    line. A last line cut inside a UTF-8 character (a harness killed mid-write) is cut back to
    the last whole character, so that the reader drops it with a warning like any cut-off
    line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        cut_last_line = e.end == len(data) and b"\n" not in data[e.start :]
        if cut_last_line and e.reason == "unexpected end of data":
            return data[: e.start].decode("utf-8")
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(
            f"not UTF-8 text ({e.reason} at byte {e.start}, line {line})", source
        ) from None


def read_source_chunks(path: str | os.PathLike[str]) -> Iterator[tuple[int, int, bytes, bool]]:
    """A history file a run of whole lines at a time, never whole (`files.read_blocks`: the
    same refusals as read_source_bytes): (first line number, byte offset, the lines without
    the newline that ends them, whether they end the file with no newline after them)."""
    line = 1
    offset = 0
    pending: list[bytes] = []
    for block in read_blocks(path, "history", history_cap()):
        cut = block.rfind(b"\n")
        if cut < 0:
            pending.append(block)  # (joined once a newline comes: a long line costs no more)
            continue
        pending.append(block[:cut])
        chunk = b"".join(pending)
        yield line, offset, chunk, False
        line += chunk.count(b"\n") + 1
        offset += len(chunk) + 1
        pending = [block[cut + 1 :]]
    rest = b"".join(pending)
    if rest:
        yield line, offset, rest, True


def decode_chunk(chunk: bytes, offset: int, line: int, at_end: bool, source: str) -> str:
    """A run of lines of a history file (at byte `offset`, line `line`; `at_end`: it ends the
    file) as text, with the error or the forgiveness `decode_source` gives the whole file at
    that place."""
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        cut_last_line = at_end and e.end == len(chunk) and b"\n" not in chunk[e.start :]
        if cut_last_line and e.reason == "unexpected end of data":
            return chunk[: e.start].decode("utf-8")
        at = line + chunk.count(b"\n", 0, e.start)
        raise InputError(
            f"not UTF-8 text ({e.reason} at byte {offset + e.start}, line {at})", source
        ) from None


def history_cap() -> int:
    """The largest history file read: MAX_FILE_BYTES, or less when the memory a history of
    that size takes once parsed (about BYTES_PER_HISTORY_BYTE times its size) is more than
    this process may have, so that a history too big for the machine is refused with the
    figures before it is read, not killed by the kernel half-way."""
    room = memory_available()
    if room is None:
        return MAX_FILE_BYTES
    return max(1 << 20, min(MAX_FILE_BYTES, room // BYTES_PER_HISTORY_BYTE))


def split_lines(text: str, source: str) -> list[str]:
    """The lines of `text` (split at \\n only, a trailing \\r kept for the caller to strip),
    refusing any longer than MAX_LINE_CHARS with its line number."""
    lines = text.split("\n")
    if len(text) > MAX_LINE_CHARS:
        for n, line in enumerate(lines, start=1):
            if len(line) > MAX_LINE_CHARS:
                raise InputError(line_too_long(len(line)), source, n)
    return lines


def line_too_long(length: int) -> str:
    return f"line of {length} characters is longer than the limit of {MAX_LINE_CHARS}"


# ---------------------------------------------------------------------------------------------
# JSON values: the limits Python's json module does not have


_JSON_NEST = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_json_line(text: str, source: str, line: int) -> None:
    """Refuse nesting deeper than MAX_DEPTH before json.loads recurses into it (a deep enough
    line would otherwise be a RecursionError, or worse). Cheap for ordinary lines: only a line
    with more than MAX_DEPTH brackets is scanned."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for m in _JSON_NEST.finditer(text):
        c = m.group()
        if c == "[" or c == "{":
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(f"nesting deeper than {MAX_DEPTH} levels", source, line)
        elif c == "]" or c == "}":
            depth -= 1


class NotFinite(ValueError):
    """NaN or an infinity in a JSON history: not JSON, and never equal to itself."""


def _finite_float(text: str) -> float:
    x = float(text)
    if x != x or x in (float("inf"), float("-inf")):
        raise NotFinite(f"number {text[:40]} is not finite; refused")
    return x


def _no_constant(text: str) -> Any:
    raise NotFinite(f"{text} is not JSON (NaN and Infinity are refused)")


#: json's decoder with JSON's own number rules (no NaN / Infinity, no overflow to inf)
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def decode_json_line(text: str, source: str, line: int) -> tuple[Any, str | None]:
    """(value, None), or (None, the reason) when the text is not JSON at all (the caller decides
    whether a truncated last line is forgiven); InputError for JSON dsjepsen refuses."""
    check_json_line(text, source, line)
    try:
        return _DECODER.decode(text), None
    except json.JSONDecodeError as e:
        return None, e.msg
    except NotFinite as e:
        raise InputError(str(e), source, line) from None
    except ValueError:  # int() past sys.get_int_max_str_digits()
        raise InputError(too_many_digits(), source, line) from None
    except RecursionError:
        raise InputError(f"nesting deeper than {MAX_DEPTH} levels", source, line) from None


def decode_json_objects(lines: list[str]) -> list[dict[str, Any]] | None:
    """The objects of these lines (each stripped, none empty), decoded as one JSON array;
    None when a line does not look like one object (`{` ... `}`), has more brackets than the
    nesting bound allows, or the array does not decode
    into exactly one object per line: the caller then decodes line by line, with the nesting
    bound and the line at fault in every error. (Two lines that are each broken could still
    join into two objects, `{"a": [1` and `2]}, {}`-like lines that cancel out: a file
    written so is read as the JSON its lines join into.)"""
    for s in lines:
        if s[0] != "{" or s[-1] != "}" or s.count("[") + s.count("{") > MAX_DEPTH:
            return None  # (the nesting bound is check_json_line's, applied there)
    try:
        out = _DECODER.decode("[" + ",".join(lines) + "]")
    except (ValueError, RecursionError):  # JSONDecodeError, NotFinite, too many digits
        return None
    if len(out) != len(lines) or not all(type(d) is dict for d in out):
        return None
    return out


def too_many_digits() -> str:
    return f"integer with more than {sys.get_int_max_str_digits()} digits; refused"


# ---------------------------------------------------------------------------------------------
# Fields a format may leave out

#: the f of an op that has none but whose value is a list of micro-ops (Elle's histories)
TXN_F = "txn"


def implied_f(value: Any) -> str | None:
    """ "txn" when `value` is a non-empty list of micro-ops (each a list or tuple starting with
    a name, `["append", 1, 2]` / `[:r :x nil]`): Elle's and elle-cli's histories leave `f` out
    of transactions. None otherwise: an op without f is then an error, as before."""
    if not isinstance(value, list | tuple) or not value:
        return None
    for mop in value:
        if not isinstance(mop, list | tuple) or not mop or not isinstance(mop[0], str):
            return None
    return TXN_F


def require_processes(ops: list[Op], source: str, missing: str) -> None:
    """Elle's histories have no process at all (one client: every op's process is None); a
    file where only some ops lack one is broken: InputError at the first that does."""
    first = next((op for op in ops if op.process is None), None)
    if first is not None and any(op.process is not None for op in ops):
        raise InputError(missing, source, first.line)


# ---------------------------------------------------------------------------------------------
# Finishing a history


def finish(history: History) -> History:
    """Add the warnings every format shares: time that goes backwards.

    Jepsen appends completions in arrival order with the time they were taken, so a history's
    times can step back; real-time order is the order of the lines (Operation.call / ret are
    positions), so such a history is read as it is, with one warning line.
    """
    count, largest, line = time_regressions(history.ops)
    if count:
        at = f"{history.source}:{line}" if line is not None else history.source
        history.warnings.append(
            f"{at}: time goes backwards {count} time{'s' if count != 1 else ''} (largest step "
            f"back {largest} ns); times kept as recorded, real-time order is the order of the "
            "ops in the file"
        )
    return history


def load(path: str | os.PathLike[str], parse: Callable[[str, str], History]) -> History:
    """Read `path` safely and parse it with `parse(text, source)`, the collector paused
    (`history.gc_paused`: it would otherwise walk the history being built, again and again)."""
    with gc_paused():
        return finish(parse(read_source(path), str(path)))


def load_chunks(
    path: str | os.PathLike[str],
    parse: Callable[[Iterable[tuple[int, int, bytes, bool]], str], History],
) -> History:
    """`load` for a reader that parses the file a run of lines at a time
    (`read_source_chunks`), so that it is never held whole."""
    with gc_paused():
        return finish(parse(read_source_chunks(path), str(path)))


def load_bytes(
    path: str | os.PathLike[str], parse: Callable[[bytes | bytearray, str], History]
) -> History:
    """`load` for a reader that parses the file's bytes (`parse(data, source)`)."""
    with gc_paused():
        return finish(parse(read_source_bytes(path), str(path)))


__all__ = [
    "TXN_F",
    "implied_f",
    "require_processes",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_LINE_CHARS",
    "check_json_line",
    "decode_json_line",
    "decode_json_objects",
    "finish",
    "decode_chunk",
    "decode_source",
    "load",
    "load_bytes",
    "load_chunks",
    "read_source_chunks",
    "read_source",
    "read_source_bytes",
    "split_lines",
]
