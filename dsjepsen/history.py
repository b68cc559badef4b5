"""Histories: the record of every invocation and completion in a test, and its file formats.

A history is the single artefact every later stage consumes (checkers, reports), so it has one
in-memory shape (a list of `Op`) and one on-disk shape (JSONL, one op per line, flushed as it
happens so that a crashed harness still leaves something checkable). Other formats (Jepsen EDN,
Jepsen log lines, Porcupine kv lines) are imported into the same shape.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dsjepsen import edn
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
    for op in ops:
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
    if not isinstance(process, (int, str)) or isinstance(process, bool):
        raise InputError(
            f"field 'process' must be an integer or a string, got {process!r}", source, line
        )
    t = d.get("time", index)
    if not isinstance(t, int) or isinstance(t, bool):
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
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", source) from None
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
                self._fh.close()
                self._fh = None

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Importers: Jepsen log lines, EDN (Jepsen / Knossos history.edn), Porcupine kv lines.


def _read_text(path: str | os.PathLike[str]) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as e:
        raise InputError(f"cannot read history: {e.strerror}", str(path)) from None
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start})", str(path)) from None


# `INFO  jepsen.util - 3\t:invoke\t:write\t4`, and newer Jepsen's
# `INFO [2020-...] jepsen worker 3 - jepsen.util 3\t:invoke\t:read\tnil`.
_LOG_OP = re.compile(
    r"jepsen\.util\s+(?:-\s+)?(:?[\w.-]+)\s+:(invoke|ok|fail|info)\s+:?([^\s]+)[ \t]*(.*?)\s*$"
)


def _log_value(text: str, source: str, line: int) -> tuple[Any, Any]:
    """The value of a log line and what follows it (Jepsen prints an error after the value)."""
    if not text or text == "nil":
        return None, None
    if text.isdigit():
        return int(text), None
    try:
        value, rest = edn.read_prefix(text)
    except edn.EdnError as e:
        raise InputError(f"cannot parse op value {text!r}: {e.reason}", source, line) from None
    error: Any = None
    if rest:
        try:
            error = edn.to_plain(edn.loads(rest))
        except edn.EdnError:
            error = rest
    return value, error


def read_jepsen_log(path: str | os.PathLike[str]) -> History:
    """Read the op lines of a Jepsen log (`jepsen.util - <process> <type> <f> <value>`).

    Other lines (setup chatter, stack traces) are skipped. The logs carry no clock, so `time`
    is the op's position. A bare keyword as the value of a `fail` or `info` completion (old
    Jepsen wrote `:info :write :timed-out`) is the error, not a value: it goes to `error` and
    the completion keeps its invocation's value, as Knossos expects of a failed op.
    """
    source = str(path)
    text = _read_text(path)
    ops: list[Op] = []
    open_values: dict[Any, Any] = {}
    search = _LOG_OP.search
    for n, raw in enumerate(text.splitlines(), start=1):
        if "jepsen.util" not in raw:
            continue
        m = search(raw)
        if m is None:
            continue
        proc_s, typ, f, val_s = m.groups()
        process: int | str
        if proc_s.isdigit():
            process = int(proc_s)
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


_TUPLE_TAGS = ("jepsen.independent.Tuple", "independent.Tuple")


def _is_independent(maps: list[tuple[int, dict[Any, Any]]]) -> bool:
    """Does this EDN history use jepsen.independent `[k v]` tuples as values?

    Jepsen writes an independent tuple (a MapEntry) exactly like a 2-vector, so it is inferred:
    every client invocation's value is `[k v]` with a scalar key, and no op is a `cas` whose
    inner value is not itself a pair (a plain cas-register's `[old new]` has a scalar second).
    """
    seen = False
    for _, m in maps:
        if m.get(_K_PROCESS) == NEMESIS or m.get(_K_TYPE) != "invoke" or _K_KEY in m:
            continue
        v = m.get(_K_VALUE)
        if not isinstance(v, list) or len(v) != 2 or isinstance(v[0], (list, dict, frozenset)):
            return False
        if m.get(_K_F) == "cas" and not (isinstance(v[1], list) and len(v[1]) == 2):
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


def _edn_ops(forms: Iterable[tuple[int, Any]], source: str, independent: bool | None) -> list[Op]:
    maps: list[tuple[int, dict[Any, Any]]] = []
    for line, form in forms:
        # Jepsen >= 0.3 prints each op as a record: #jepsen.history.Op{...}
        if isinstance(form, edn.Tagged) and isinstance(form.value, dict):
            form = form.value
        if not isinstance(form, dict):
            raise InputError(f"expected an op map, found {edn.dumps(form)[:60]}", source, line)
        maps.append((line, form))
    split = _is_independent(maps) if independent is None else independent
    ops: list[Op] = []
    plain = _plain
    for line, m in maps:
        i = len(ops)
        try:
            typ = m[_K_TYPE]
            f = m[_K_F]
            process = m[_K_PROCESS]
        except KeyError as e:
            raise InputError(f"op is missing :{e.args[0]}", source, line) from None
        if not isinstance(typ, str):
            raise InputError(f":type must be a keyword, got {edn.dumps(typ)}", source, line)
        if type(process) is not int:
            if isinstance(process, str):
                process = str(process)
            else:
                raise InputError(
                    f":process must be an integer or a keyword, got {edn.dumps(process)}",
                    source,
                    line,
                )
        t = m.get(_K_TIME, i)
        if type(t) is not int:
            raise InputError(f":time must be an integer, got {edn.dumps(t)}", source, line)
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


def read_edn(path: str | os.PathLike[str], independent: bool | None = None) -> History:
    """Read a Jepsen / Knossos history.edn: one vector or list of op maps, or maps in sequence.

    Keywords become plain strings, sets sorted lists, `:index` is renumbered to the position,
    `:time` is kept when present (else the position). Keyed ops come from a `:key` field, a
    `#jepsen.independent.Tuple{:key k :value v}`, or jepsen.independent `[k v]` values
    (`independent=None` infers the latter; pass True or False to decide). Extra keys are ignored.
    """
    source = str(path)
    text = _read_text(path)
    forms = _edn_lines_fast(text)
    try:
        if forms is None:
            ops = _edn_ops(edn.iter_forms(text, unwrap=True), source, independent)
        else:
            ops = _edn_ops(forms, source, independent)
    except edn.EdnError as e:
        raise InputError(f"invalid EDN: {e.reason}", source, e.line) from None
    return History(ops, source)


# The kv-log lines are simple flat maps; a line-anchored pattern reads those directly and
# anything else on a line goes through the EDN reader.
_FLAT_SCALAR = r'nil|true|false|-?\d+|"[^"\\]*"|:[\w.*+!?<>=-]+'
_FLAT_ATOM = _FLAT_SCALAR + r'|\[(?:[^\[\](){}"#\\;]|"[^"\\]*")*\]'
_FLAT_KEY = r"[\w.*+!?<>=-]+"
_FLAT_FIELD = re.compile(r":(" + _FLAT_KEY + r")\s+(" + _FLAT_ATOM + r")")
_FLAT_MAP = re.compile(r"\{\s*(?::" + _FLAT_KEY + r"\s+(?:" + _FLAT_ATOM + r")\s*,?\s*)*\}")
_FLAT_ITEM = re.compile(r'"[^"\\]*"|[^\s,]+')
_NO_FAST = object()
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
    if c == "-" or c.isdigit():
        try:
            return int(v)
        except ValueError:
            return _NO_FAST
    return _NO_FAST  # a symbol, float, char...: leave it to the EDN reader


def _kv_line(text: str) -> dict[Any, Any] | None:
    """A flat map of keywords to nil / booleans / integers / plain strings / keywords / flat
    vectors of those, or None when the line is anything richer (then the EDN reader takes it).
    Keys and keyword values become plain strings, as the op builder would make them anyway;
    keys hash and compare like the reader's Keywords."""
    if _FLAT_MAP.fullmatch(text) is None:
        return None
    out: dict[Any, Any] = {}
    for k, v in _FLAT_FIELD.findall(text):
        c = v[0]
        if c in _DIGITS:  # the pattern admits only -?\d+ here
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


def _edn_lines_fast(text: str) -> list[tuple[int, Any]] | None:
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
        m = _kv_line(s)
        if m is None:
            return None
        out.append((n, m))
    if closer is not None and not closed:
        return None
    return out


def read_kv_log(path: str | os.PathLike[str]) -> History:
    """Read Porcupine's kv lines, one Clojure map per line (`{:process 0, :type :invoke, :f
    :append, :key "0", :value "x 0 0 y"}`); `:key` goes to Op.key. Blank lines are skipped."""
    source = str(path)
    text = _read_text(path)

    def forms() -> Iterator[tuple[int, Any]]:
        for n, raw in enumerate(text.splitlines(), start=1):
            s = raw.strip()
            if not s or s.startswith(";"):
                continue
            m = _kv_line(s)
            if m is None:
                try:
                    m = edn.loads(s)
                except edn.EdnError as e:
                    raise InputError(f"invalid EDN: {e.reason}", source, n) from None
            yield n, m

    return History(_edn_ops(forms(), source, independent=False), source)


# ---------------------------------------------------------------------------------------------
# EDN exporter: histories Knossos (and Jepsen's checkers) can read back.

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


# ---------------------------------------------------------------------------------------------
# Format detection and dispatch. Importers for other formats register in FORMATS.

FORMATS: dict[str, Any] = {
    "jsonl": read_jsonl,
    "edn": read_edn,
    "jepsen-log": read_jepsen_log,
    "kv-log": read_kv_log,
}


_DETECT_LINES = 2000


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess a history file's format from its content.

    The first line that is not blank or a `;` comment decides between JSONL (`{"`), Porcupine
    kv lines (a whole `{:... :key ...}` map on one line) and EDN (`[`, `(`, `{:`, a `#tag`).
    Anything else is a Jepsen log if one of its first lines is an op line (logs start with
    setup chatter).
    """
    first: str | None = None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for n, raw in enumerate(fh):
                if n >= _DETECT_LINES:
                    break
                s = raw.strip()
                if first is None:
                    if not s or s.startswith(";"):
                        continue
                    first = s
                    if s.startswith('{"') or s.startswith('{ "'):
                        return "jsonl"
                    if s.startswith("{") and ":key " in s and _kv_line(s) is not None:
                        return "kv-log"
                    if s[0] in "[({#":
                        return "edn"
                if "jepsen.util" in s and _LOG_OP.search(s):
                    return "jepsen-log"
    except OSError as e:
        raise InputError(f"cannot read history: {e.strerror}", str(path)) from None
    if first is None:
        raise InputError("history is empty", str(path))
    raise InputError(
        "cannot tell the history format (not JSONL, EDN, kv lines or a Jepsen log); pass --format",
        str(path),
    )


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
