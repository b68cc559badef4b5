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

**Strings with put and append, unique tokens** (`kv_epochs`, Porcupine's kv workload). The
ops of one key are get / put / append, every put and append value is a non-empty string, all
of them pairwise distinct, and every get's result splits into those values in exactly one way
(the parse). The state is always a *base* (the initial empty value, or the value of the last
put) followed by the values appended since, so the parse of a get that read tokens t0..tk says
exactly where it was linearized: in the *epoch* of put t0 (or, when t0 is an append, in epoch
0, before any put), after exactly the appends t1..tk (t0..tk in epoch 0), in that order, and
before any other append of that epoch. (Uniqueness of the parse is what makes the true
decomposition of the state equal to ours.) Hence, without any search:

* (C0) every get parses; a put value appears only first; no token twice; the gets of one epoch
  read prefixes of one sequence (its *observed appends*, in order); an append is observed in at
  most one epoch. Otherwise no linearization exists.
* Every linearization is a sequence of *blocks*: epoch 0's members (its gets and observed
  appends), then for each put read by some get, the put and its members, in some order, with
  each *unobserved* op (a put no get starts from, an append no get returns) as a block of its
  own. Why: an epoch's members are contiguous (an unobserved append linearized between two of
  them would be returned by the later ones; a get or observed append of another epoch would
  need another put in between), and an unobserved append or put sits between blocks (at the
  tail of the previous epoch, or as an epoch nobody reads). Conversely any such sequence of
  blocks that respects real time is a legal linearization: each block's internal order is
  forced by the parses (the put, the gets that read nothing appended, the first observed
  append, the gets that read one, ...: a *chain of groups*, unordered inside a group), an
  unobserved append between blocks only extends a value no get reads, and an unobserved put
  starts an epoch nobody reads.
* (C1) A block's chain fits real time iff no op of a later group returned before an op of an
  earlier group was invoked (per group: its smallest return is after the largest call of the
  groups before it; within a group, ordering by return respects real time).
* Blocks as intervals. With linearization points p (non-decreasing along the order, p in
  [call, ret]), let m = the smallest return and M = the largest call among a block's ops
  (epoch 0 counts a virtual put returning at -infinity). Given C1, a block fits in a time
  window [s, e] iff s <= m and e >= M (greedy points p_i = max(p_{i-1}, call_i, s) stay at or
  below ret_i because s <= m and C1). So block E can precede block F iff M_E < m_F (event
  positions are distinct), and the history is linearizable iff C0, C1 and some order of the
  blocks has M_E < m_F for every E before F.
* Order. Sort blocks by k = min(m, M) (the start of the *zone*: [m, M] when m < M, forward;
  [M, m] otherwise, backward). If some order works, every pair admits one of its two orders,
  and then k_E < k_F implies M_E < m_F (both forward: disjoint zones; E forward, F backward: F
  not inside E; E backward: M_E = k_E < k_F <= m_F). So the sorted order works iff any does,
  and checking it is one pass (running maximum of M against each m). When the pass fails at
  block j with the earlier block i of largest M, neither i before j nor j before i fits: the
  two ops named in the message show why.

These are Gibbons and Korach's zones with an epoch in place of a register value. Indeterminate
appends and puts take ret = +infinity; an unobserved one is dropped (it may never have
happened, and removing an unobserved op from a linearization leaves a linearization, since
nothing read the values it produced). Cost: one parse per distinct get result plus a sort.
"""

from __future__ import annotations

import bisect
import itertools
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


#: most combinations of candidate appends tried when repeated values leave a choice
MAX_ASSIGNMENTS = 64
#: most ops writing one value for the epoch test to try telling them apart by real time
MAX_REPEATS = 4


def kv_epochs(ops: list[Any]) -> FastVerdict | None:
    """The epoch/zone test for get/put/append on one key (see the module docstring)."""
    by_value: dict[str, list[Any]] = {}
    puts: list[Any] = []
    gets: list[Any] = []
    for p in ops:
        if p.f == "get":
            if not isinstance(p.output, str):
                return None
            gets.append(p)
        elif p.f in ("put", "append"):
            if not isinstance(p.value, str) or not p.value:
                return None
            same = by_value.setdefault(p.value, [])
            same.append(p)
            if len(same) > MAX_REPEATS:
                return None  # values this common are no evidence of which op wrote them
            if p.f == "put":
                puts.append(p)
        else:
            return None
    method = "kv-epochs"
    resolve = _Resolver(puts)
    lengths = sorted({len(v) for v in by_value})
    parses: dict[str, list[str] | None] = {}
    # slot (epoch id, position) -> [value, candidate appends]; epoch = base put op or None
    slots: dict[tuple[int, int], list[Any]] = {}
    epochs: dict[int, tuple[Any, list[tuple[Any, int]]]] = {}  # id -> (base, [(get, n read)])
    for g in gets:
        out = g.output
        if out in parses:
            toks = parses[out]
        else:
            toks = parses[out] = _parse(out, by_value, lengths)
        if toks is None:
            return None  # several parses: the search decides
        if out and not toks:
            return FastVerdict(
                False,
                method,
                g,
                f"get returned {out!r}, which no sequence of the put and appended values produces",
            )
        base = None
        rest = toks
        if toks:
            first = [p for p in by_value[toks[0]] if p.f == "put" or not resolve.put_before(g)]
            first = resolve.filter(first, g, None) if len(first) > 1 else first
            only_appends = all(p.f == "append" for p in by_value[toks[0]])
            if not first and only_appends and resolve.put_before(g):
                q = resolve.first_put
                return FastVerdict(
                    False,
                    method,
                    g,
                    f"get returned {out!r}, which starts with appended {toks[0]!r} and so "
                    f"comes before any put, but put {q.value!r} completed before the get was "
                    "invoked",
                    [q],
                )
            if not first:
                return FastVerdict(
                    False,
                    method,
                    g,
                    f"get returned {out!r}, but no put or append of {toks[0]!r} can have "
                    "started the value it read",
                    by_value[toks[0]],
                )
            kinds = {p.f for p in first}
            if kinds == {"put"}:
                if len(first) > 1:
                    return None  # which put started it: let the search decide
                base = first[0]
                rest = toks[1:]
            elif len(kinds) > 1:
                return None
        for j, t in enumerate(rest):
            appends = [a for a in by_value[t] if a.f == "append"]
            if not appends:
                return FastVerdict(
                    False,
                    method,
                    g,
                    f"get returned {out!r}, but {t!r} was written by a put, which replaces the "
                    "whole value, so it can only come first",
                    by_value[t],
                )
            if len(appends) > 1:
                appends = resolve.filter(appends, g, base)
            slot = slots.get((id(base), j))
            if slot is None:
                slots[(id(base), j)] = [t, appends]
                continue
            if slot[0] != t:
                other = next(h for h, n in epochs[id(base)][1] if n > j)
                return FastVerdict(
                    False,
                    method,
                    g,
                    f"get returned {out!r}, but another get returned {other.output!r}: "
                    f"{_epoch_words(base)}, appends cannot produce both",
                    [other],
                )
            if len(slot[1]) > 1 or len(appends) > 1:
                slot[1] = [a for a in slot[1] if any(a is b for b in appends)]
        epochs.setdefault(id(base), (base, []))[1].append((g, len(rest)))
    choices = []
    for (eid, j), (t, cands) in slots.items():
        if not cands:
            base = epochs[eid][0]
            g = next(h for h, n in epochs[eid][1] if n > j)
            return FastVerdict(
                False,
                method,
                g,
                f"get returned {g.output!r}, but no append of {t!r} can have taken effect "
                f"{_epoch_words(base)} before it",
                by_value[t],
            )
        if len(cands) > 1:
            choices.append((eid, j))
    n_assign = 1
    for key in choices:
        n_assign *= len(slots[key][1])
    if n_assign > MAX_ASSIGNMENTS:
        return None
    first_failure: FastVerdict | None = None
    for pick in itertools.product(*(slots[key][1] for key in choices)):
        chosen = dict(zip(choices, pick, strict=True))
        seq = {
            eid: [
                chosen.get((eid, j)) or slots[(eid, j)][1][0] for j in range(max(n for _g, n in m))
            ]
            for eid, (_b, m) in epochs.items()
        }
        verdict = _epoch_blocks(method, ops, epochs, seq)
        if verdict.valid:
            return verdict
        first_failure = first_failure or verdict
    assert first_failure is not None
    return first_failure


def _epoch_blocks(
    method: str,
    ops: list[Any],
    epochs: dict[int, tuple[Any, list[tuple[Any, int]]]],
    seq: dict[int, list[Any]],
) -> FastVerdict:
    """C0 (an append observed once), C1 (chains) and the zone order, for one assignment."""
    observed: dict[int, Any] = {}
    blocks: list[tuple[float, float, list[list[Any]], str]] = []
    for eid, (base, members) in epochs.items():
        longest = seq[eid]
        for pos, a in enumerate(longest):
            if id(a) in observed:
                g = next(g for g, n in members if n > pos)
                if observed[id(a)] is base:
                    return FastVerdict(
                        False,
                        method,
                        max((h for h, _n in members), key=lambda h: len(h.output)),
                        f"a get returned {a.value!r} twice {_epoch_words(base)}, but only one "
                        "append of it can be there",
                        [a],
                    )
                return FastVerdict(
                    False,
                    method,
                    g,
                    f"append {a.value!r} is read {_epoch_words(base)} and also "
                    f"{_epoch_words(observed[id(a)])}, but it took effect only once",
                    [a],
                )
            observed[id(a)] = base
        groups: list[list[Any]] = [[] for _ in range(2 * len(longest) + 1)]
        for g, n in members:
            groups[2 * n].append(g)
        for n, a in enumerate(longest):
            groups[2 * n + 1].append(a)
        if base is not None:
            groups.insert(0, [base])
        groups = [grp for grp in groups if grp]
        bad = _chain_violation(groups)
        if bad is not None:
            return _chain_message(method, base, *bad)
        m = min(_ret(p) for grp in groups for p in grp) if base is not None else -INF
        big = max(p.call for grp in groups for p in grp)
        what = "the ops before any put" if base is None else f"the ops after put {base.value!r}"
        blocks.append((m, big, groups, what))
    for p in ops:
        if p.f == "get" or id(p) in observed or id(p) in epochs or p.ret is None:
            continue  # observed, or indeterminate and unobserved (it may never have happened)
        blocks.append((p.ret, p.call, [[p]], f"{p.f} {p.value!r} (never read)"))
    blocks.sort(key=lambda b: min(b[0], b[1]))
    top: tuple[float, float, list[list[Any]], str] | None = None
    for b in blocks:
        if top is not None and top[1] >= b[0]:
            return _zone_message(method, top, b)
        if top is None or b[1] > top[1]:
            top = b
    return FastVerdict(True, method)


class _Resolver:
    """Which op wrote a value a get returned, when several ops wrote that value.

    An op is ruled out when it cannot precede the get (invoked after the get returned), when
    it returned before the epoch's put was invoked (so it cannot follow that put), or when
    some put is forced between it and the get (invoked after it returned, returned before
    the get was invoked). All are necessary conditions: every linearization uses one of the
    remaining candidates; with none left the history is invalid.
    """

    def __init__(self, puts: list[Any]):
        order = sorted(puts, key=lambda p: p.call)
        self.first_put = min(puts, key=_ret, default=None)  # the put that returned first
        self.calls = [p.call for p in order]
        # suffix minimum of returns: the earliest return among puts invoked after a position
        self.min_ret = [INF] * (len(order) + 1)
        for n in range(len(order) - 1, -1, -1):
            self.min_ret[n] = min(_ret(order[n]), self.min_ret[n + 1])

    def put_between(self, after: float, before: float) -> bool:
        """Is some put invoked after `after` and returned before `before`?"""
        return self.min_ret[bisect.bisect_right(self.calls, after)] < before

    def put_before(self, g: Any) -> bool:
        """Did some put return before g was invoked (so g cannot be in epoch 0)?"""
        return self.min_ret[0] < g.call

    def filter(self, cands: list[Any], g: Any, base: Any) -> list[Any]:
        return [
            p
            for p in cands
            if p.call < g.ret
            and not (base is not None and _ret(p) < base.call)
            and not (p.ret is not None and self.put_between(p.ret, g.call))
        ]


def _epoch_words(base: Any) -> str:
    return "from the start (before any put)" if base is None else f"after put {base.value!r}"


def _chain_violation(groups: list[list[Any]]) -> tuple[Any, Any] | None:
    """(x, y): y in a later group returned before x in an earlier one was invoked."""
    latest: Any = None
    for grp in groups:
        early = min(grp, key=_ret)
        if latest is not None and _ret(early) < latest.call:
            return latest, early
        top = max(grp, key=lambda p: p.call)
        if latest is None or top.call > latest.call:
            latest = top
    return None


def _describe(p: Any) -> str:
    if p.f == "get":
        return f"get {p.output!r}"
    return f"{p.f} {p.value!r}"


def _chain_message(method: str, base: str | None, x: Any, y: Any) -> FastVerdict:
    op, other = (x, y) if (x.f == "get" or y.f != "get") and x.ret is not None else (y, x)
    msg = (
        f"{_describe(x)} must take effect before {_describe(y)} (the values the gets "
        f"returned {_epoch_words(base)} fix that order), but {_describe(y)} completed before "
        f"{_describe(x)} was invoked"
    )
    return FastVerdict(False, method, op, msg, [other])


def _zone_message(method: str, e: Any, f: Any) -> FastVerdict:
    """Blocks e and f (e first in zone order) admit neither order."""

    def witness(blk: Any, pick: Any) -> Any:
        return pick((p for grp in blk[2] for p in grp), key=lambda p: (_ret(p), p.call))

    last_e = max((p for grp in e[2] for p in grp), key=lambda p: p.call)
    first_f = witness(f, min)
    last_f = max((p for grp in f[2] for p in grp), key=lambda p: p.call)
    first_e = witness(e, min)
    parts = [f"{_describe(first_f)} completed before {_describe(last_e)} was invoked"]
    if e[0] != -INF:
        parts.append(f"{_describe(first_e)} completed before {_describe(last_f)} was invoked")
    msg = f"{e[3]} and {f[3]} cannot be ordered either way: " + ", and ".join(parts)
    cands = [p for p in (last_e, first_f, last_f, first_e) if p.ret is not None]
    op = next((p for p in cands if p.f == "get"), cands[0])
    return FastVerdict(
        False, method, op, msg, [p for p in (first_e, first_f, last_f) if p is not op]
    )


def _parse(s: str, tokens: dict[str, Any], lengths: list[int] | None = None) -> list[str] | None:
    """Split s into tokens; [] if impossible, None if there are several splits.

    Forward over the positions a split can reach (few, when tokens delimit themselves), then
    backward counting the splits from each of them (capped at 2).
    """
    if not s:
        return []
    if lengths is None:
        lengths = sorted({len(t) for t in tokens})
    n = len(s)
    reach = bytearray(n + 1)
    reach[0] = 1
    edges: dict[int, list[str]] = {}
    for i in range(n):
        if not reach[i]:
            continue
        out = []
        for ln in lengths:
            if i + ln > n:
                break
            t = s[i : i + ln]
            if t in tokens:
                out.append(t)
                reach[i + ln] = 1
        if out:
            edges[i] = out
    if not reach[n]:
        return []
    ways = {n: 1}
    choice: dict[int, str] = {}
    for i in sorted(edges, reverse=True):
        w = 0
        for t in edges[i]:
            x = ways.get(i + len(t), 0)
            if x:
                w += x
                choice[i] = t
        if w:
            ways[i] = min(w, 2)
    if ways.get(0, 0) > 1:
        return None
    toks = []
    i = 0
    while i < n:
        t = choice[i]
        toks.append(t)
        i += len(t)
    return toks
