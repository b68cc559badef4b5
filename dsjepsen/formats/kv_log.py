"""Porcupine's kv lines: one Clojure map per line, `{:process 0, :type :invoke, :f :append,
:key "0", :value "x 0 0 y"}`, the format of Porcupine's kv test corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from dsjepsen import edn
from dsjepsen.errors import InputError
from dsjepsen.formats.edn import edn_ops, kv_line
from dsjepsen.formats.source import load, split_lines
from dsjepsen.history import History

NAME = "kv-log"
DESCRIPTION = 'Porcupine kv lines: `{:process 0, :type :invoke, :f :get, :key "1", :value nil}`'


def parse_kv_log(text: str, source: str) -> History:
    """Parse kv lines; `:key` goes to Op.key. Blank lines and `;` comments are skipped."""

    def forms() -> Iterator[tuple[int, Any]]:
        for n, raw in enumerate(split_lines(text, source), start=1):
            s = raw.strip()
            if not s or s.startswith(";"):
                continue
            m = kv_line(s)
            if m is None:
                try:
                    m = edn.loads(s, finite=True)
                except edn.EdnError as e:
                    raise InputError(f"invalid EDN: {e.reason}", source, n) from None
            yield n, m

    return History(edn_ops(forms(), source, independent=False), source)


def read_kv_log(path: str | os.PathLike[str]) -> History:
    """Read a file of Porcupine kv lines (see `parse_kv_log`)."""
    return load(path, parse_kv_log)


def sniff_first(line: str) -> bool:
    """Is this first non-blank line a whole flat map with a `:key`?"""
    return line.startswith("{") and ":key " in line and kv_line(line) is not None
