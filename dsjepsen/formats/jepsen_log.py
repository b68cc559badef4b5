"""Jepsen log lines: `INFO  jepsen.util - 3	:invoke	:write	4`, and newer Jepsen's
`INFO [2020-...] jepsen worker 3 - jepsen.util 3	:invoke	:read	nil`.

The op lines of a Jepsen log are the history of the tests that predate history.edn files, and
what Porcupine's etcd corpus is made of. Other lines (setup chatter, stack traces) are skipped.
"""

from __future__ import annotations

import os
import re
from typing import Any

from dsjepsen import edn
from dsjepsen.errors import InputError
from dsjepsen.formats.source import load, split_lines, too_many_digits
from dsjepsen.history import History, Op, printable

NAME = "jepsen-log"
DESCRIPTION = "Jepsen log lines: `INFO  jepsen.util - 3 :invoke :write 4`"

# Matched against a line with its trailing blanks stripped, so the value is simply the rest of
# the line (a lazy `(.*?)\s*$` would backtrack quadratically over long blank runs).
_LOG_OP = re.compile(
    r"jepsen\.util\s+(?:-\s+)?(:?[\w.-]+)\s+:(invoke|ok|fail|info)\s+:?([^\s]+)[ \t]*(.*)"
)
#: a value this short that is all ASCII digits is an integer, read without the EDN reader
_SHORT_INT = 18


def _log_value(text: str, source: str, line: int) -> tuple[Any, Any]:
    """The value of a log line and what follows it (Jepsen prints an error after the value)."""
    if not text or text == "nil":
        return None, None
    if len(text) <= _SHORT_INT and text.isascii() and text.isdigit():
        return int(text), None
    try:
        value, rest = edn.read_prefix(text, finite=True)
    except edn.EdnError as e:
        shown = printable(repr(text[:60]))
        raise InputError(f"cannot parse op value {shown}: {e.reason}", source, line) from None
    error: Any = None
    if rest:
        try:
            error = edn.to_plain(edn.loads(rest, finite=True))
        except edn.EdnError:
            error = rest
    return value, error


def parse_jepsen_log(text: str, source: str) -> History:
    """Parse the op lines of a Jepsen log (`jepsen.util - <process> <type> <f> <value>`).

    The logs carry no clock, so `time` is the op's position. A bare keyword as the value of a
    `fail` or `info` completion (old Jepsen wrote `:info :write :timed-out`) is the error, not a
    value: it goes to `error` and the completion keeps its invocation's value, as Knossos
    expects of a failed op.
    """
    ops: list[Op] = []
    open_values: dict[Any, Any] = {}
    search = _LOG_OP.search
    for n, raw in enumerate(split_lines(text, source), start=1):
        if "jepsen.util" not in raw:
            continue
        m = search(raw.rstrip())
        if m is None:
            continue
        proc_s, typ, f, val_s = m.groups()
        process: int | str
        if proc_s.isascii() and proc_s.isdigit():
            try:
                process = int(proc_s)
            except ValueError:  # past sys.get_int_max_str_digits()
                raise InputError(too_many_digits(), source, n) from None
        else:
            process = proc_s.lstrip(":")
        value, error = _log_value(val_s, source, n)
        if typ == "invoke":
            open_values[process] = value
        elif typ != "ok" and isinstance(value, edn.Keyword) and error is None:
            error = str(value)
            value = open_values.get(process)
        if typ != "invoke":
            open_values.pop(process, None)
        i = len(ops)
        ops.append(
            Op(
                index=i,
                time=i,
                process=process,
                type=typ,
                f=f,
                value=edn.to_plain(value),
                error=error,
                line=n,
            )
        )
    return History(ops, source)


def read_jepsen_log(path: str | os.PathLike[str]) -> History:
    """Read a Jepsen log file (see `parse_jepsen_log`)."""
    return load(path, parse_jepsen_log)


def sniff_any(line: str) -> bool:
    """Is this one of the op lines a log has among its first lines?"""
    return "jepsen.util" in line and _LOG_OP.search(line.rstrip()) is not None
