"""Polynomial verdicts for one key when every written value is unique (read-mapping).

When each value is written at most once, every read names the write it saw, and the search
over interleavings collapses to checking interval constraints (Gibbons & Korach, *Testing
shared memories*, 1997). The search in linearizable.py is still the reference: these functions
return None whenever their preconditions do not hold, and the property tests check them
against a brute-force oracle.

Ops are duck-typed: `.f`, `.value`, `.output`, `.call`, `.ret` (ret None = indeterminate,
meaning it may take effect at any time after its call, which is a return at +infinity).

**Register, read/write, unique values** (`register_zones`). Group each write with the reads
that return its value (a *cluster*; reads of the initial nil form a cluster with a virtual write
before the history). For a cluster, let m = the smallest return and M = the largest call. If
m < M the cluster has a *forward zone* [m, M], else a *backward zone* [M, m]. The history is
linearizable iff no read returns before its write is invoked, no two forward zones intersect,
and no backward zone lies inside a forward zone. Why: a forward zone is an interval during
which the register must hold the cluster's value continuously (the write must be linearized
before m, some read after M), so two of them cannot overlap, and a cluster with a backward zone
must fit its write and reads together somewhere in [M, m], which a surrounding forward zone
forbids. Conversely, ordering clusters by zone start and linearizing each cluster's write then
its reads at points inside its zone gives a legal linearization.

**Append-only strings, unique tokens** (`append_order`, Porcupine's kv workload): with gets and
appends only, all appends determinate and pairwise distinct, the state is always the
concatenation of the appended tokens in linearization order, so every get's result is a prefix
of the longest result P. Parsing P into tokens (required to be unique) fixes the order of the
observed appends; each get is then pinned between the k-th and (k+1)-th observed append (k =
the number of tokens it returned) and the unobserved appends come after every get. This is a
sequence of groups in which only the order between groups is forced; real time is respected iff
no op in a later group returned before an op of an earlier group was invoked.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

INF = float("inf")


@dataclass
class FastVerdict:
    valid: bool
    method: str
    #: when invalid: the op that cannot be linearized, a sentence, and related ops
    op: Any = None
    message: str = ""
    related: list[Any] = field(default_factory=list)
    #: forced order (op, state after) up to the violation, when the method knows one
    prefix: list[tuple[Any, Any]] = field(default_factory=list)


def _ret(p: Any) -> float:
    return INF if p.ret is None else p.ret


def register_zones(ops: list[Any], init: Any = None) -> FastVerdict | None:
    """The zone test for a read/write register whose written values are all distinct."""
    writes: dict[Any, Any] = {}
    reads: dict[Any, list[Any]] = {}
    for p in ops:
        if p.f == "write":
            if p.value in writes or p.value == init:
                return None
            writes[p.value] = p
        elif p.f == "read":
            if p.ret is None:
                continue
            reads.setdefault(p.output, []).append(p)
        else:
            return None
    method = "register-zones"
    for v, rs in reads.items():
        w = writes.get(v)
        if w is None and v != init:
            return FastVerdict(
                False, method, rs[0], f"read returned {v!r}, but no op ever wrote it"
            )
        if w is not None:
            for r in rs:
                if r.ret < w.call:
                    return FastVerdict(
                        False,
                        method,
                        r,
                        f"read returned {v!r} before the write of {v!r} was invoked",
                        [w],
                    )
    forward: list[tuple[float, float, Any]] = []
    backward: list[tuple[float, float, Any]] = []
    for v in set(writes) | set(reads):
        members = list(reads.get(v, []))
        w = writes.get(v)
        if w is not None:
            members.append(w)
            lo_ret = min(_ret(p) for p in members)
        else:  # the initial value: a virtual write that returned before everything
            lo_ret = -1
        hi_call = max(p.call for p in members)
        if lo_ret < hi_call:
            forward.append((lo_ret, hi_call, v))
        else:
            backward.append((hi_call, lo_ret, v))
    forward.sort(key=lambda z: z[0])
    for a, b in zip(forward, forward[1:], strict=False):
        if b[0] < a[1]:
            return _zone_violation(method, a[2], b[2], writes, reads, "overlap")
    starts = [z[0] for z in forward]
    for lo, hi, v in backward:
        # forward zones are disjoint: only the last one starting before lo can contain [lo, hi]
        n = bisect.bisect_left(starts, lo) - 1
        if n >= 0:
            s, e, fv = forward[n]
            if s < lo and hi < e:
                return _zone_violation(method, fv, v, writes, reads, "inside")
    return FastVerdict(True, method)


def _zone_violation(
    method: str, a: Any, b: Any, writes: dict[Any, Any], reads: dict[Any, list[Any]], how: str
) -> FastVerdict:
    ra = reads.get(a, [])
    rb = reads.get(b, [])
    late = max(rb or ra, key=lambda p: p.call)
    related = [x for x in (writes.get(a), writes.get(b)) if x is not None] + ra + rb
    if how == "overlap":
        msg = (
            f"the register had to hold {a!r} and {b!r} during the same interval "
            f"(each is written before, and read after, that interval)"
        )
    else:
        msg = (
            f"the write of {b!r} and its reads must all happen while the register has to hold {a!r}"
        )
    return FastVerdict(False, method, late, msg, related)


def append_order(ops: list[Any]) -> FastVerdict | None:
    """The group test for get/append histories with distinct appended tokens."""
    appends: dict[str, Any] = {}
    gets: list[Any] = []
    for p in ops:
        if p.ret is None:
            return None
        if p.f == "append":
            v = p.value
            if not isinstance(v, str) or not v or v in appends:
                return None
            appends[v] = p
        elif p.f == "get":
            if not isinstance(p.output, str):
                return None
            gets.append(p)
        else:
            return None
    method = "append-order"
    longest = max((g.output for g in gets), key=len, default="")
    for g in gets:
        if not longest.startswith(g.output):
            other = max(gets, key=lambda x: len(x.output))
            return FastVerdict(
                False,
                method,
                g,
                f"get returned {g.output!r}, which is not a prefix of {other.output!r} "
                "returned by another get: appends cannot produce both",
                [other],
            )
    tokens = _parse(longest, appends)
    if tokens is None:
        return None  # several parses: let the search decide
    if not tokens and longest:
        bad = max(gets, key=lambda x: len(x.output))
        return FastVerdict(
            False,
            method,
            bad,
            f"get returned {bad.output!r}, which no sequence of the appended values produces",
        )
    if len(set(tokens)) != len(tokens):
        bad = max(gets, key=lambda x: len(x.output))
        return FastVerdict(
            False, method, bad, f"get returned {bad.output!r}, which repeats an appended value"
        )
    boundary = {0: 0}
    pos = 0
    for k, t in enumerate(tokens, start=1):
        pos += len(t)
        boundary[pos] = k
    group: dict[int, int] = {}
    order: list[Any] = []
    observed = set(tokens)
    for k, t in enumerate(tokens, start=1):
        group[id(appends[t])] = 2 * k - 1
    for g in gets:
        k = boundary.get(len(g.output))
        if k is None:
            return FastVerdict(
                False,
                method,
                g,
                f"get returned {g.output!r}, which does not end at an appended value",
            )
        group[id(g)] = 2 * k
    last = 2 * len(tokens) + 1
    for t, a in appends.items():
        if t not in observed:
            group[id(a)] = last
    order = sorted(ops, key=lambda p: (group[id(p)], p.call))
    # real time: no op of a later group may return before an op of an earlier group is invoked
    by_group: dict[int, list[Any]] = {}
    for p in order:
        by_group.setdefault(group[id(p)], []).append(p)
    latest_call: Any = None  # the op with the largest call among earlier groups
    for gi in sorted(by_group):
        members = by_group[gi]
        if latest_call is not None:
            early = min(members, key=lambda p: p.ret)
            if early.ret < latest_call.call:
                return _append_violation(method, latest_call, early, order, group)
        top = max(members, key=lambda p: p.call)
        if latest_call is None or top.call > latest_call.call:
            latest_call = top
    return FastVerdict(True, method)


def _append_violation(
    method: str, op: Any, before: Any, order: list[Any], group: dict[int, int]
) -> FastVerdict:
    """`before` returned before `op` was invoked, yet the values force it after `op`."""
    prefix = []
    state = ""
    for p in order:
        if group[id(p)] >= group[id(op)]:
            break
        if p.f == "append":
            state += p.value
        prefix.append((p, state))
    what = f"append {before.value!r}" if before.f == "append" else f"get {before.output!r}"
    if op.f == "get":
        msg = (
            f"get returned {op.output!r}, but {what} had already completed before the get "
            "was invoked and the values returned force it after the get"
        )
    else:
        msg = (
            f"append {op.value!r} must come before {what} (the values returned say so), "
            f"but {what} completed before the append was invoked"
        )
    return FastVerdict(False, method, op, msg, [before], prefix)


def _parse(s: str, tokens: dict[str, Any]) -> list[str] | None:
    """Split s into appended tokens; [] if impossible, None if there are several splits."""
    if not s:
        return []
    lengths = sorted({len(t) for t in tokens})
    n = len(s)
    ways = [0] * (n + 1)
    choice: list[str | None] = [None] * (n + 1)
    ways[n] = 1
    for i in range(n - 1, -1, -1):
        w = 0
        for ln in lengths:
            if i + ln > n:
                break
            t = s[i : i + ln]
            if t in tokens and ways[i + ln]:
                w += ways[i + ln]
                choice[i] = t
        ways[i] = min(w, 2)
    if ways[0] == 0:
        return []
    if ways[0] > 1:
        return None
    out = []
    i = 0
    while i < n:
        t = choice[i]
        assert t is not None
        out.append(t)
        i += len(t)
    return out
