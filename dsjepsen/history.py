"""Histories: the record of every invocation and completion in a test.

A history is the single artefact every later stage consumes (checkers, reports), so it has one
in-memory shape (a list of `Op`) and one on-disk shape (JSONL, one op per line, flushed as it
happens so that a crashed harness still leaves something checkable). This module holds the
shape, the pairing of invocations with completions (Jepsen's process rules) and the JSONL
writer the harness records with; reading files, in JSONL or any other format (Jepsen EDN, Jepsen
log lines, Porcupine kv lines), is dsjepsen.formats' job.
"""

from __future__ import annotations

import gc
import json
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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
    process: int | str | None
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

    An orphan (a completion with no invocation, paired only when asked: `orphans=True`) has
    its completion as `invoke` too (`invoke is complete`) and `call` at the completion's
    position: when it was invoked is unknown, so it must not be read as an op that began there.
    """

    id: int
    process: int | str | None
    f: str
    key: Any
    value: Any
    output: Any
    type: str
    call: int
    ret: int | None
    invoke: Op
    complete: Op | None

    @property
    def node(self) -> str | None:
        """The node that served the op: the completion's node when it names one (a client
        whose request was forwarded to the leader, or redirected to a primary, records the
        node that answered), else the node the client was bound to. None when neither is
        recorded."""
        served = self.complete.node if self.complete is not None else None
        node = served or self.invoke.node
        return str(node) if node else None

    @property
    def bound_node(self) -> str | None:
        """The node the client sent the op to (its invocation's node)."""
        return str(self.invoke.node) if self.invoke.node else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape checkers' anomalies and reports use for one operation."""
        done = self.complete is not None and self.ret is not None
        return {
            "id": self.id,
            "process": self.process,
            "f": self.f,
            "key": self.key,
            "value": self.value,
            "output": self.output,
            "type": self.type,
            "call": self.call,
            "ret": self.ret,
            "call_time": self.invoke.time,
            "ret_time": self.complete.time if done else None,
        }


@dataclass
class History:
    """A whole history, with where it came from (for error messages) and what its reader
    forgave (one line each: a dropped truncated last line, time going backwards), for the
    command to show."""

    ops: list[Op]
    source: str = "<memory>"
    warnings: list[str] = field(default_factory=list)
    #: (include_nemesis, orphans) -> ((id, length) of `ops` when paired, the operations)
    _paired: dict[tuple[bool, bool], tuple[tuple[int, int], list[Operation]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def client_ops(self) -> list[Op]:
        return [op for op in self.ops if op.process != NEMESIS]

    def nemesis_ops(self) -> list[Op]:
        return [op for op in self.ops if op.process == NEMESIS]

    def operations(self, include_nemesis: bool = False, orphans: bool = False) -> list[Operation]:
        """Pair every invocation with its completion, per process, in invocation order.

        Raises InputError naming the file and line for a history that breaks Jepsen's process
        rules; see `validate`. `orphans` accepts completions that have no invocation (see
        `pair_operations`). The pairing is remembered while `ops` is the same list of the same
        length (a command validates, then each checker pairs again): treat the ops of a paired
        history, and the Operations returned, as read-only. Each call returns a new list.
        """
        stamp = (id(self.ops), len(self.ops))
        mode = (include_nemesis, orphans)
        hit = self._paired.get(mode)
        if hit is None or hit[0] != stamp:
            with gc_paused():
                paired = pair_operations(
                    self.ops, self.source, include_nemesis=include_nemesis, orphans=orphans
                )
            hit = (stamp, paired)
            self._paired[mode] = hit
        return list(hit[1])

    def validate(self) -> None:
        """Check the history's shape: op types and per-process pairing."""
        pair_operations(self.ops, self.source, include_nemesis=True)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a large history is built or scanned.

    Reading a million-op history allocates millions of lists and dicts, none of them garbage
    in a cycle; each of the collector's full passes walks all of them, which on such a history
    costs more than the reading itself (it halves the time of reading and checking one). On
    the way out, what is alive is frozen (`gc.freeze`): the history outlives the pause, and
    the collector's next passes would otherwise walk all of it again, once per generation,
    for nothing (objects frozen are still freed when nothing refers to them). So that no
    garbage cycle from before is frozen with it (a long-running process would keep it), the
    outermost pause collects first, which costs little: what earlier pauses froze is not
    walked again. The collector is restored as it was, so nested pauses are harmless."""
    was = gc.isenabled()
    if was:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.freeze()
            gc.enable()


def _where(op: Op) -> int:
    return op.line if op.line is not None else op.index + 1


def printable(value: Any) -> str:
    """`str(value)` with control and other non-printable characters escaped (`\\x1b`), for
    text from a history that ends up on a terminal: an escape sequence in a process name must
    show as text, not recolour or rewrite the screen."""
    s = str(value)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else _escape(c) for c in s)


def _escape(c: str) -> str:
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def time_regressions(ops: Iterable[Op]) -> tuple[int, int, int | None]:
    """(how many ops have a time before that of some op above them, the largest such step
    back in ns, the line of the first). Jepsen appends completions in arrival order, so this happens in real
    histories; it is reported, never refused (order is position, not time)."""
    count = largest = 0
    first: int | None = None
    last: int | None = None
    for op in ops:
        t = op.time
        if last is not None and t < last:
            count += 1
            largest = max(largest, last - t)
            if first is None:
                first = _where(op)
        last = t if last is None else max(last, t)
    return count, largest, first


def pair_operations(
    ops: Iterable[Op],
    source: str = "<memory>",
    include_nemesis: bool = False,
    orphans: bool = False,
) -> list[Operation]:
    """Pair invocations with completions and enforce Jepsen's process semantics.

    Errors (each an InputError at the offending line): unknown type, a completion with no
    open invocation, a completion whose f differs from its invocation, a process that invokes
    again while it has an op open, or after one of its ops ended `info` (a crashed process
    never issues another op; the worker continues under a new id). Time going backwards is
    not an error (see `time_regressions`): positions, not times, order the ops.

    With `orphans`, a client completion with no open invocation is an operation of its own
    (see `Operation`), as Elle reads its test histories of completions only
    (`{:type :ok, :value [[:append :x 1]]}`); a checker that takes them must not give them a
    start in real time.
    """
    open_ops: dict[Any, tuple[Op, int]] = {}
    crashed: set[Any] = set()
    result: list[Operation | None] = []
    for op in ops:
        if op.type not in OP_TYPES:
            raise InputError(
                f"unknown op type {printable(repr(op.type))} "
                f"(expected one of {', '.join(OP_TYPES)})",
                source,
                _where(op),
            )
        is_nemesis = op.process == NEMESIS
        if op.type == "invoke":
            if op.process in open_ops:
                prev = open_ops[op.process][0]
                raise InputError(
                    f"process {printable(op.process)} invokes {printable(op.f)} while its "
                    f"{printable(prev.f)} from line "
                    f"{_where(prev)} is still open",
                    source,
                    _where(op),
                )
            if op.process in crashed and not is_nemesis:
                raise InputError(
                    f"process {printable(op.process)} invokes {printable(op.f)} after one of its "
                    "ops ended 'info' "
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
            if orphans:
                if op.type == "info":
                    crashed.add(op.process)
                result.append(make_operation(op, op))
                continue
            raise InputError(
                f"{op.type} completion of {printable(op.f)} by process "
                f"{printable(op.process)} has no open invocation",
                source,
                _where(op),
            )
        inv, slot = entry
        if op.f != inv.f:
            raise InputError(
                f"completion f {printable(repr(op.f))} does not match invocation f "
                f"{printable(repr(inv.f))} (line {_where(inv)}) for process "
                f"{printable(op.process)}",
                source,
                _where(op),
            )
        if op.type == "info" and not is_nemesis:
            crashed.add(op.process)
        result[slot] = make_operation(inv, op)
    # Invocations never completed are indeterminate, exactly like an info completion.
    for inv, slot in open_ops.values():
        result[slot] = make_operation(inv, None)
    out: list[Operation] = []
    for o in result:
        if o is None:
            continue
        if not include_nemesis and o.process == NEMESIS:
            continue
        o.id = len(out)
        out.append(o)
    return out


def make_operation(inv: Op, comp: Op | None) -> Operation:
    """Pair one invocation with its completion (None: never completed). id is set by the
    caller, which knows the operation's position."""
    if comp is None:
        return Operation(
            -1, inv.process, inv.f, inv.key, inv.value, None, "info", inv.index, None, inv, None
        )
    typ = comp.type
    ret = comp.index if typ != "info" else None
    return Operation(
        -1, inv.process, inv.f, inv.key, inv.value, comp.value, typ, inv.index, ret, inv, comp
    )


# ---------------------------------------------------------------------------------------------
# JSONL writing (the harness's recorder). Reading is dsjepsen.formats' alone (`formats.jsonl.
# read_jsonl`, `formats.read_history`): formats import this module, never the other way.


def dump_op(op: Op) -> str:
    return json.dumps(op.to_dict(), separators=(",", ":"), default=str)


def write_jsonl(history: History | Iterable[Op], path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for op in history:
            fh.write(dump_op(op) + "\n")


class HistoryWriter:
    """Append-only, flushed-per-op JSONL writer used while a test runs.

    Every op is written and flushed as it happens, so a harness killed mid-run leaves a
    readable history with everything recorded up to that moment. Writes are serialised by a
    lock, so worker threads sharing one writer never interleave parts of lines.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, op: Op) -> None:
        line = dump_op(op) + "\n"
        with self._lock:
            if self._fh is None:
                raise ValueError(f"history writer for {self.path} is closed")
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                fh, self._fh = self._fh, None
                fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
