"""Histories: the record of every invocation and completion in a test, and its file formats.

A history is the single artefact every later stage consumes (checkers, reports), so it has one
in-memory shape (a list of `Op`) and one on-disk shape (JSONL, one op per line, flushed as it
happens so that a crashed harness still leaves something checkable). Other formats (Jepsen EDN,
Jepsen log lines, Porcupine kv lines) are imported into the same shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dsjepsen.errors import InputError

OP_TYPES = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"


@dataclass(slots=True)
class Op:
    """One line of a history, with Jepsen's meaning for every field.

    `time` is nanoseconds since the test started (monotonic). `type` is invoke, ok, fail (it
    definitely did not happen) or info (unknown: it may take effect at any time after its
    invocation, or never). `line` is where the op came from in its file, kept only so that
    errors found later can still point at the input; it is never written out.
    """

    index: int
    time: int
    process: int | str
    type: str
    f: str
    value: Any = None
    key: Any = None
    node: str | None = None
    error: Any = None
    line: int | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "index": self.index,
            "time": self.time,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
        }
        if self.key is not None:
            d["key"] = self.key
        if self.node is not None:
            d["node"] = self.node
        if self.error is not None:
            d["error"] = self.error
        return d

    @property
    def is_client(self) -> bool:
        return self.process != NEMESIS


@dataclass(slots=True)
class Operation:
    """An invocation paired with its completion: the unit checkers reason about.

    `call` and `ret` are positions in the history (not times), so real-time order is exact even
    for imported histories without timestamps. `ret` is None when the op never completed or
    completed with `info`: such an op may take effect at any point after `call`, or never.
    `output` is the value seen at completion (a read's result); `value` is the invoked value.
    """

    id: int
    process: int | str
    f: str
    key: Any
    value: Any
    output: Any
    type: str
    call: int
    ret: int | None
    invoke: Op
    complete: Op | None


@dataclass
class History:
    """A whole history, with where it came from (for error messages)."""

    ops: list[Op]
    source: str = "<memory>"

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def client_ops(self) -> list[Op]:
        return [op for op in self.ops if op.process != NEMESIS]

    def nemesis_ops(self) -> list[Op]:
        return [op for op in self.ops if op.process == NEMESIS]

    def operations(self, include_nemesis: bool = False) -> list[Operation]:
        """Pair every invocation with its completion, per process, in invocation order.

        Raises InputError naming the file and line for a history that breaks Jepsen's process
        rules; see `validate`.
        """
        return pair_operations(self.ops, self.source, include_nemesis=include_nemesis)

    def validate(self) -> None:
        """Check the history's shape: types, monotonic time, per-process pairing."""
        pair_operations(self.ops, self.source, include_nemesis=True)


def _where(op: Op) -> int:
    return op.line if op.line is not None else op.index + 1


def pair_operations(
    ops: Iterable[Op], source: str = "<memory>", include_nemesis: bool = False
) -> list[Operation]:
    """Pair invocations with completions and enforce Jepsen's process semantics.

    Errors (each an InputError at the offending line): unknown type, time going backwards, a
    completion with no open invocation, a completion whose f differs from its invocation, a
    process that invokes again while it has an op open, or after one of its ops ended `info`
    (a crashed process never issues another op; the worker continues under a new id).
    """
    open_ops: dict[Any, tuple[Op, int]] = {}
    crashed: set[Any] = set()
    result: list[Operation | None] = []
    last_time: int | None = None
    for pos, op in enumerate(ops):
        if op.type not in OP_TYPES:
            raise InputError(
                f"unknown op type {op.type!r} (expected one of {', '.join(OP_TYPES)})",
                source,
                _where(op),
            )
        if last_time is not None and op.time < last_time:
            raise InputError(
                f"time goes backwards ({op.time} after {last_time})", source, _where(op)
            )
        last_time = op.time
        is_nemesis = op.process == NEMESIS
        if op.type == "invoke":
            if op.process in open_ops:
                prev = open_ops[op.process][0]
                raise InputError(
                    f"process {op.process} invokes {op.f} while its {prev.f} from line "
                    f"{_where(prev)} is still open",
                    source,
                    _where(op),
                )
            if op.process in crashed and not is_nemesis:
                raise InputError(
                    f"process {op.process} invokes {op.f} after one of its ops ended 'info' "
                    "(a crashed process must continue under a new process id)",
                    source,
                    _where(op),
                )
            open_ops[op.process] = (op, len(result))
            result.append(None)
            continue
        entry = open_ops.pop(op.process, None)
        if entry is None:
            if is_nemesis:
                # Jepsen logs often record nemesis info lines without invocations.
                continue
            raise InputError(
                f"{op.type} completion of {op.f} by process {op.process} has no open invocation",
                source,
                _where(op),
            )
        inv, slot = entry
        if op.f != inv.f:
            raise InputError(
                f"completion f {op.f!r} does not match invocation f {inv.f!r} "
                f"(line {_where(inv)}) for process {op.process}",
                source,
                _where(op),
            )
        if op.type == "info" and not is_nemesis:
            crashed.add(op.process)
        result[slot] = _make_operation(inv, op, pos)
    # Invocations never completed are indeterminate, exactly like an info completion.
    for inv, slot in open_ops.values():
        result[slot] = _make_operation(inv, None, None)
    out: list[Operation] = []
    for o in result:
        if o is None:
            continue
        if not include_nemesis and o.process == NEMESIS:
            continue
        o.id = len(out)
        out.append(o)
    return out


def _make_operation(inv: Op, comp: Op | None, ret_pos: int | None) -> Operation:
    typ = comp.type if comp is not None else "info"
    output = comp.value if comp is not None else None
    return Operation(
        id=-1,
        process=inv.process,
        f=inv.f,
        key=inv.key,
        value=inv.value,
        output=output,
        type=typ,
        call=inv.index,
        ret=comp.index if (comp is not None and typ != "info") else None,
        invoke=inv,
        complete=comp,
    )


# ---------------------------------------------------------------------------------------------
# JSONL: the native format


def op_from_dict(d: dict[str, Any], source: str, line: int, index: int) -> Op:
    """Build an Op from one decoded JSONL object, naming the line on any missing field."""
    try:
        typ = d["type"]
        f = d["f"]
        process = d["process"]
    except KeyError as e:
        raise InputError(f"op is missing field {e.args[0]!r}", source, line) from None
    if not isinstance(typ, str) or not isinstance(f, str):
        raise InputError("fields 'type' and 'f' must be strings", source, line)
    t = d.get("time", index)
    if not isinstance(t, int):
        raise InputError(f"field 'time' must be an integer, got {t!r}", source, line)
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


def read_jsonl(path: str | os.PathLike[str]) -> History:
    """Read a JSONL history; a truncated last line (a killed writer) is dropped, not fatal."""
    source = str(path)
    ops: list[Op] = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError as e:
        raise InputError(f"cannot read history: {e.strerror}", source) from None
    for n, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            if n == len(lines) and not raw.endswith("\n"):
                break  # the harness died mid-write: everything before is intact
            raise InputError(f"invalid JSON: {e.msg}", source, n) from None
        if not isinstance(d, dict):
            raise InputError("each line must be a JSON object", source, n)
        ops.append(op_from_dict(d, source, n, len(ops)))
    return History(ops, source)


def dump_op(op: Op) -> str:
    return json.dumps(op.to_dict(), separators=(",", ":"), default=str)


def write_jsonl(history: History | Iterable[Op], path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(dump_op(op) + "\n")


class HistoryWriter:
    """Append-only, flushed-per-op JSONL writer used while a test runs.

    Every op is written and flushed as it happens, so a harness killed mid-run leaves a
    readable history with everything recorded up to that moment.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, op: Op) -> None:
        if self._fh is None:
            raise ValueError(f"history writer for {self.path} is closed")
        self._fh.write(dump_op(op) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Format detection and dispatch. Importers for other formats register in FORMATS.

FORMATS: dict[str, Any] = {"jsonl": read_jsonl}


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess a history file's format from its first non-blank line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                s = raw.strip()
                if not s:
                    continue
                if s.startswith('{"') or s.startswith('{ "'):
                    return "jsonl"
                if s.startswith("[") or s.startswith("({") or s.startswith("{:"):
                    return "edn"
                if ":invoke" in s or ":ok" in s or ":info" in s or ":fail" in s:
                    return "jepsen-log"
                break
    except OSError as e:
        raise InputError(f"cannot read history: {e.strerror}", str(path)) from None
    raise InputError("cannot tell the history format; pass --format", str(path))


def read_history(path: str | os.PathLike[str], format: str = "auto") -> History:
    """Read any supported history format into a History."""
    fmt = detect_format(path) if format == "auto" else format
    reader = FORMATS.get(fmt)
    if reader is None:
        raise InputError(
            f"unknown history format {fmt!r} (known: auto, {', '.join(sorted(FORMATS))})",
            str(path),
        )
    return reader(path)
