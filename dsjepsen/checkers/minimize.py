"""The smallest history that is still wrong: a minimal core of a failing key's operations.

A linearizability violation found in 600 operations is a fact nobody can check by hand; the
same violation in 3 or 4 operations is. Given the operations of one failing key, this searches
for a subset that the checker still calls invalid and from which no single operation can be
removed without it becoming valid (1-minimal), by delta debugging (Zeller & Hildebrandt, 2002):
remove halves, then quarters, ... of what is left while the rest stays invalid, then single
operations until none can go.

One rule keeps the core meaningful: an op that observed a value (a read's answer, a successful
cas's expected value) is never kept without a write of that value that may have preceded it.
Taking away the only such write would leave "a read of a value never written" (or one read
from the future), an anomaly of its own that says nothing about the one found; so removing a
write also removes the ops that observed it (and no other kept write of the same value), and
1-minimality is judged with that rule. Values are matched by equality on the same key: exact
when every written value is unique (dsjepsen's workloads); where a value was written more than
once (Jepsen's etcd histories write 0-4 at random), an observer keeps any earlier writer.
Models whose reads are not one written value (an append log's concatenation) get no such
pairs, and every removal is a plain one.

Operations keep their positions in the history (`call` / `ret`), so real-time order is exactly
the original's: a core is a sub-history, not a rewritten one.

The same search serves the sequential-consistency checker (`sequential_core`): a key that is
not sequentially consistent on its own is cut down on that key; a cycle across keys, on the
keys the cycle touches. (A transactional anomaly needs no search: the checker's cycle is
already the few transactions that show it.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.checkers.models import NOT_GIVEN
from dsjepsen.history import Operation

#: fs whose value (or, for cas, whose new value) is the value they write
WRITES = frozenset({"write", "put", "append"})
APPEND = "append"
CAS = "cas"
#: fs whose output is one value read
READS = frozenset({"read", "get"})


@dataclass
class Core:
    """A minimal (or, out of time, the smallest found) invalid subset of a key's operations."""

    key: Any
    ops: list[Operation]
    #: how many operations the key had
    of: int
    #: no single removal (under the read-keeps-its-write rule) leaves it invalid
    one_minimal: bool
    checks: int
    seconds: float
    #: why it is not 1-minimal, when it is not
    note: str | None = None
    #: op id -> the writes it observed (kept with it): groups of op ids, one per value
    sources: dict[int, list[list[int]]] = field(default_factory=dict)
    #: what the core is not (the words the report and the check command use)
    consistency: str = "linearizable"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "op_ids": [o.id for o in self.ops],
            "ops": [o.to_dict() for o in self.ops],
            "of": self.of,
            "one_minimal": self.one_minimal,
            "checks": self.checks,
            "seconds": round(self.seconds, 6),
            "note": self.note,
            "consistency": self.consistency,
        }


def written(op: Operation) -> Any:
    """The value an op writes, or None (not a write, or a value it does not name)."""
    if op.f in WRITES:
        return op.value
    if op.f == CAS and isinstance(op.value, list | tuple) and len(op.value) == 2:
        return op.value[1]
    return None


def observed(op: Operation) -> Any:
    """The value an ok op says the object held: a read's answer, a successful cas's expected
    value; None when it names none."""
    if op.type != "ok":
        return None
    if op.f in READS:
        return op.output
    if op.f == CAS and isinstance(op.value, list | tuple) and len(op.value) == 2:
        return op.value[0]
    return None


def read_sources(ops: Sequence[Operation]) -> dict[int, list[list[int]]]:
    """op id -> the writes it needs kept: a list of groups, each the ids of the ops that may
    have written one value it observed (any one of a group will do, every group must keep
    one). A writer counts only when invoked before the observer returned: a write that began
    after a read ended cannot be what it saw; keeping only such a one would make a different
    anomaly, a read from the future. A register read observed one value (one group); a read of
    an append log (Porcupine's kv: `append` adds a string, `get` returns the concatenation)
    observed every appended string it contains (one group each)."""
    writers: dict[Any, list[Operation]] = {}
    appends = False
    for o in ops:
        v = written(o)
        if v is not None and o.type != "fail":
            writers.setdefault(_hashable(v), []).append(o)
        appends = appends or o.f == APPEND
    out: dict[int, list[list[int]]] = {}
    for o in ops:
        v = observed(o)
        if v is None:
            continue
        if appends and isinstance(v, str):
            values = [w for w in writers if isinstance(w, str) and w and w in v]
        else:
            values = [_hashable(v)]
        ret = o.ret if o.ret is not None else float("inf")
        groups = []
        for value in values:
            ids = [w.id for w in writers.get(value, ()) if w.id != o.id and w.call < ret]
            if ids:
                groups.append(ids)
        if groups:
            out[o.id] = groups
    return out


def minimize(
    ops: Sequence[Operation],
    invalid: Callable[[list[Operation]], bool],
    deadline: float,
    key: Any = None,
) -> Core:
    """A 1-minimal invalid subset of `ops` (which `invalid` must call invalid), or the
    smallest found by `deadline` (time.monotonic()), with a note saying so."""
    started = time.monotonic()
    sources = read_sources(ops)
    checks = 0

    def closed(keep: list[Operation]) -> list[Operation]:
        # drop observers whose every writer is gone, until none is left: a cas both observes
        # and writes, so dropping one may orphan the reads of what it wrote
        while True:
            ids = {o.id for o in keep}
            kept = [o for o in keep if all(any(s in ids for s in g) for g in sources.get(o.id, ()))]
            if len(kept) == len(keep):
                return kept
            keep = kept

    def still_invalid(keep: list[Operation]) -> bool:
        nonlocal checks
        checks += 1
        return bool(keep) and invalid(keep)

    current = list(ops)
    out_of_time = False
    # ddmin's complement steps: remove chunks of decreasing size while the rest stays invalid
    chunks = 2
    while len(current) >= 2 and not out_of_time:
        size = max(1, len(current) // chunks)
        removed_any = False
        for start in range(0, len(current), size):
            if time.monotonic() > deadline:
                out_of_time = True
                break
            drop = {o.id for o in current[start : start + size]}
            candidate = closed([o for o in current if o.id not in drop])
            if len(candidate) < len(current) and still_invalid(candidate):
                current = candidate
                removed_any = True
                break
        if out_of_time:
            break
        if removed_any:
            chunks = max(chunks - 1, 2)
        elif size == 1:
            break  # every single removal was tried in the last round: 1-minimal
        else:
            chunks = min(len(current), chunks * 2)
    # (a core of one op is 1-minimal too: its only removal is the empty history, valid)
    one_minimal = not out_of_time
    kept = {o.id for o in current}
    return Core(
        key=key,
        ops=current,
        of=len(ops),
        one_minimal=one_minimal,
        checks=checks,
        seconds=time.monotonic() - started,
        note=None if one_minimal else "out of time: the smallest invalid subset found so far",
        sources={
            r: [[s for s in g if s in kept] for g in gs] for r, gs in sources.items() if r in kept
        },
    )


def linearizable_core(
    operations: Sequence[Operation],
    key: Any,
    model: Any,
    deadline: float,
    initial: Any = NOT_GIVEN,
    upto: int | None = None,
) -> Core:
    """The minimal core of one failing key of a linearizability check (`operations` are the
    whole history's; `model` as check_linearizable takes it; `upto`, the history position
    where the op the checker could not place returned)."""
    from dsjepsen.checkers.linearizable import check_linearizable, partition_key

    wanted = partition_key(key)
    ops = [o for o in operations if partition_key(o.key) == wanted]

    def invalid(subset: list[Operation]) -> bool:
        left = max(0.05, deadline - time.monotonic())
        result = check_linearizable(
            subset, model=model, time_limit=left, explain=False, all_keys=False, initial=initial
        )
        return result.valid is False

    of = len(ops)
    if upto is not None:
        # the ops invoked before the op the checker could not place returned: the core is
        # then about the first violation, the one the explanation shows (a long history
        # may hold others later)
        early = [o for o in ops if o.call <= upto]
        if early and invalid(early):
            ops = early
    core = minimize(ops, invalid, deadline, key=key)
    core.of = of
    return core


def sequential_core(
    operations: Sequence[Operation],
    anomaly: dict[str, Any],
    model: Any,
    deadline: float,
    initial: Any = NOT_GIVEN,
) -> Core | None:
    """The minimal core of a sequential-consistency violation: `anomaly` is the checker's
    first (a key's, or a cycle across keys). None when the ops it names are not invalid
    without the rest of the history (the search has nothing to start from)."""
    from dsjepsen.checkers.models import show
    from dsjepsen.checkers.sequential import check_sequential

    def shown(o: Operation) -> str | None:
        return None if o.key is None else show(o.key)

    if anomaly.get("key") is not None:
        keys = {anomaly["key"]}
    else:  # a cycle: the keys of its ops
        keys = {
            step[end]["key"] if step[end].get("key") is None else show(step[end]["key"])
            for step in anomaly.get("cycle") or []
            for end in ("op", "then")
            if isinstance(step.get(end), dict)
        }
    ops = [o for o in operations if shown(o) in keys] if keys else list(operations)

    def invalid(subset: list[Operation]) -> bool:
        left = max(0.05, deadline - time.monotonic())
        result = check_sequential(subset, model=model, time_limit=left, initial=initial)
        return result.valid is False

    if not ops or not invalid(ops):
        return None
    core = minimize(ops, invalid, deadline, key=anomaly.get("key"))
    core.of = len(operations) if not keys else len(ops)
    core.consistency = "sequentially consistent"
    return core


def attach_minimal_core(
    result: Any,
    operations: Sequence[Operation],
    time_limit: float | None,
    initial: Any = NOT_GIVEN,
) -> None:
    """details["minimal"] of an invalid linearizability or sequential-consistency result: the
    minimal core of its first failing key (the one explained first), or of its cycle, found
    within `time_limit` seconds (None: the checker's default)."""
    from dsjepsen.checkers.base import DEFAULT_TIME_LIMIT
    from dsjepsen.checkers.linearizable import CHECKER
    from dsjepsen.checkers.sequential import CHECKER as SEQUENTIAL

    if result.valid is not False or not result.anomalies:
        return
    deadline = time.monotonic() + (time_limit if time_limit is not None else DEFAULT_TIME_LIMIT)
    if result.checker == SEQUENTIAL:
        found = sequential_core(
            operations, result.anomalies[0], result.details["model"], deadline, initial
        )
        if found is not None:
            result.details["minimal"] = found.to_dict()
        return
    if result.checker != CHECKER:
        return
    first = result.anomalies[0]
    op = first.get("op") or {}
    upto = op.get("ret") if op.get("ret") is not None else op.get("call")
    core = linearizable_core(
        operations, first["key"], result.details["model"], deadline, initial, upto
    )
    result.details["minimal"] = core.to_dict()


def _hashable(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v
