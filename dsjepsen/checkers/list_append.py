"""Elle's list-append checker: transactions of `[append k v]` and `[r k [v1 v2 ...]]`.

Every key is a list and every appended value is unique per key, so a read names the whole
order of the appends it saw: `[r x [3 1 2]]` says 3, then 1, then 2 were appended to x, and
nothing in between. The longest read of a key is therefore its version order, as far as reads
saw it; each shorter read must be a prefix of it (else: incompatible-order). From the orders:

* ww: the transaction that appended v to k follows the one that appended the element before v;
* wr: a read of k that ends in v follows the transaction that appended v;
* rw: a read of k that ends in v precedes the transaction that appended the element after v
  (an append never read comes after everything read: it follows the last element);
* a key with a single append and no read has the order [v] (Elle's special case).

Found without the graph: aborted reads (G1a: a read holds an element a failed transaction
appended), intermediate reads (G1b: a read ends in an element its writer appended to again),
internal inconsistency (a read disagrees with the transaction's own earlier micro-ops),
future reads (a read holds what its own transaction appends only later), duplicate elements,
incompatible orders, dirty updates (a committed append after a failed one in some order) and
lost updates (two committed transactions read the same state of a key and both appended).

Facts from Elle (jepsen-io/elle `elle.list-append`); see txn.py for the graph, the cycle
kinds and the verdict. One deliberate difference: only ok transactions' reads are used. Elle
also uses an info transaction's reads when they returned something; but an indeterminate
transaction may have aborted, and what an aborted transaction saw (its own appends among it)
orders nothing, so relying on it could call a correct history invalid.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.consistency import LIST_APPEND, consistency_models
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.txn import (
    FAIL,
    INFO,
    INIT,
    OK,
    PROCESS,
    REALTIME,
    RW,
    SEARCH_SECONDS,
    WR,
    WW,
    Edges,
    Txns,
    collect_txns,
    describe,
    hashable,
    mop_error,
    name,
    needed_variants,
    order_step,
    process_edges,
    realtime_edges,
    search_cycles,
    shown,
    summary,
    verdict,
)
from dsjepsen.errors import InputError
from dsjepsen.history import History, gc_paused, printable

CHECKER = LIST_APPEND
APPEND, READ = "append", "r"
_SCALAR = (int, str)


class ListAppend:
    """One list-append history, analysed: anomalies by kind and the dependency edges."""

    def __init__(self, txns: Txns) -> None:
        started = time.monotonic()
        self.txns = txns
        types = txns.types
        #: key -> appended value -> the transaction that appended it (any type)
        self.appended: dict[Any, dict[Any, int]] = {}
        #: key -> last element read (INIT: the empty list) -> the ok transactions that read it
        self.readers: dict[Any, dict[Any, list[int]]] = {}
        #: key -> the longest list read
        self.longest: dict[Any, list[Any]] = {}
        self.cases: dict[str, list[dict[str, Any]]] = {}
        #: (key, the state first read) -> ok transactions that read it, then appended to key
        self._lost: dict[tuple[Any, Any], list[int]] = {}
        failed = self._failed_appends()
        incompatible: dict[Any, tuple[list[Any], list[Any]]] = {}
        dup_keys: set[Any] = set()  # keys some read of which holds an element twice
        structured: set[Any] = set()  # keys whose elements are lists (EDN vectors)
        multi: list[int] = []
        appended, readers, longest = self.appended, self.readers, self.longest
        # the loop below runs once per micro-op of the history: names it uses are locals
        scalar, append_f, read_f, init = _SCALAR, APPEND, READ, INIT
        appended_get, readers_get, longest_get = appended.get, readers.get, longest.get
        for t, mops in enumerate(txns.mops):
            typ = types[t]
            keys: list[Any] = []  # this transaction's keys so far: does it touch one twice?
            repeats = False
            for mop in mops:
                try:
                    f, k, v = mop
                except (TypeError, ValueError):
                    f, k, v = self._odd_mop(t, mop)
                if type(k) not in scalar:
                    k = self._key(t, k)
                if k in keys:
                    repeats = True
                keys.append(k)
                if f == append_f:
                    if type(v) not in scalar:
                        v = self._element(t, k, v)
                    d = appended_get(k)
                    if d is None:
                        appended[k] = {v: t}
                    elif v in d:
                        raise self._duplicate(t, k, v, d[v])
                    else:
                        d[v] = t
                    continue
                if f != read_f:
                    raise self._unknown(t, mop)
                if typ != OK:
                    # a failed transaction saw nothing that counts; an indeterminate one may
                    # have aborted, so its reads (usually nil anyway) order nothing either
                    continue
                if v is None:
                    last: Any = init
                elif v:
                    if type(v) is not list or k in structured:
                        v = self._read_list(t, k, v, mop, structured)
                    last = v[-1]
                    old = longest_get(k)
                    # each read is a prefix of the longest (checked once for duplicates),
                    # or it becomes the longest, or the two are incompatible
                    if old is not None and len(v) <= len(old):
                        if old[len(v) - 1] != last or old[: len(v)] != v:
                            incompatible.setdefault(k, (v, old))
                            v = self._check_duplicates(t, k, v, structured, dup_keys)
                        elif k in dup_keys:
                            v = self._check_duplicates(t, k, v, structured, dup_keys)
                    else:
                        if old is not None and (v[len(old) - 1] != old[-1] or v[: len(old)] != old):
                            incompatible.setdefault(k, (old, v))
                        v = self._check_duplicates(t, k, v, structured, dup_keys)
                        longest[k] = v
                        last = v[-1]
                    if typ == OK and k in failed:
                        self._aborted_read(t, k, v, failed[k])
                elif type(v) is list or isinstance(v, tuple):
                    last = init
                else:
                    self._read_list(t, k, v, mop, structured)  # refuses it
                rk = readers_get(k)
                if rk is None:
                    readers[k] = {last: [t]}
                else:
                    rs = rk.get(last)
                    if rs is None:
                        rk[last] = [t]
                    else:
                        rs.append(t)
            if repeats:
                multi.append(t)
        for k, (a, b) in incompatible.items():
            self._case(
                "incompatible-order",
                {
                    "key": k,
                    "values": [a, b],
                    "message": f"key {shown(k)} was read as {shown(a)} and as {shown(b)}: no one "
                    "order of its appends explains both (one is not a prefix of the other)",
                },
            )
        #: key -> version order (distinct elements of the longest read, or a lone append)
        self.orders: dict[Any, list[Any]] = {}
        for k, seq in longest.items():
            self.orders[k] = list(dict.fromkeys(seq)) if k in dup_keys else seq
        for k, d in appended.items():
            if k not in self.orders:
                live = [v for v, w in d.items() if types[w] != FAIL]
                if len(live) == 1:
                    self.orders[k] = live
        self._intermediate: dict[tuple[Any, Any], int] = {}
        for t in multi:
            self._within(t)
        self._intermediate_reads()
        self._dirty_updates()
        self.read_seconds = time.monotonic() - started

    # -----------------------------------------------------------------------------------------
    # Reading micro-ops

    def _failed_appends(self) -> dict[Any, dict[Any, int]]:
        failed: dict[Any, dict[Any, int]] = {}
        for t, typ in enumerate(self.txns.types):
            if typ != FAIL:
                continue
            for mop in self.txns.mops[t]:
                if isinstance(mop, list | tuple) and len(mop) == 3 and mop[0] == APPEND:
                    failed.setdefault(hashable(mop[1]), {})[hashable(mop[2])] = t
        return failed

    def _odd_mop(self, t: int, mop: Any) -> tuple[Any, Any, Any]:
        """A micro-op that is not a 3-element list: a 2-element read (`[:r :x]`, as Elle's
        invocations may be written) is one; anything else is refused."""
        if not isinstance(mop, list | tuple):
            raise mop_error(self.txns, t, f"micro-op is not a list: {_brief(mop)}")
        if len(mop) == 2 and mop[0] == READ:
            return READ, mop[1], None
        if mop and mop[0] not in (APPEND, READ):
            raise self._unknown(t, mop)
        raise mop_error(
            self.txns,
            t,
            f"micro-op {_brief(mop)} has {len(mop)} elements; list-append takes "
            "[append key value] and [r key list]",
        )

    def _unknown(self, t: int, mop: Any) -> InputError:
        if not isinstance(mop, list | tuple):
            return mop_error(self.txns, t, f"micro-op is not a list: {_brief(mop)}")
        f = mop[0] if mop else mop
        return mop_error(
            self.txns,
            t,
            f"unknown micro-op {printable(repr(f))} in {_brief(mop)} "
            "(list-append takes append and r)",
        )

    def _key(self, t: int, k: Any) -> Any:
        try:
            return hashable(k)
        except TypeError:
            raise mop_error(self.txns, t, f"key {_brief(k)} cannot be a key") from None

    def _element(self, t: int, k: Any, v: Any) -> Any:
        if v is None:
            raise mop_error(self.txns, t, f"append of nil to key {shown(k)}")
        return hashable(v)

    def _read_list(self, t: int, k: Any, v: Any, mop: Any, structured: set[Any]) -> list[Any]:
        """A read's value as a list of dict keys (lists become tuples); refused when it is
        not a list at all."""
        if not isinstance(mop, list | tuple):
            raise mop_error(self.txns, t, f"micro-op is not a list: {_brief(mop)}")
        if isinstance(v, list | tuple):
            return [hashable(x) for x in v] if k in structured else list(v)
        raise mop_error(
            self.txns,
            t,
            f"read of key {shown(k)} is not a list: {_brief(v)} (list-append reads return "
            "the list of appended values, or nil)",
        )

    def _duplicate(self, t: int, k: Any, v: Any, first: int) -> InputError:
        return mop_error(
            self.txns,
            t,
            f"value {shown(v)} is appended to key {shown(k)} more than once (also at line "
            f"{self.txns.line(first)}); list-append needs every appended value unique per key",
        )

    # -----------------------------------------------------------------------------------------
    # Anomalies without the graph

    def _case(self, kind: str, case: dict[str, Any]) -> None:
        self.cases.setdefault(kind, []).append(case)

    def _check_duplicates(
        self, t: int, k: Any, v: list[Any], structured: set[Any], dup_keys: set[Any]
    ) -> list[Any]:
        """Report a read that holds an element twice; returns the read with its elements
        hashable (a key whose elements are lists is `structured` from then on)."""
        try:
            distinct = len(set(v))
        except TypeError:
            structured.add(k)
            v = [hashable(x) for x in v]
            distinct = len(set(v))
        if distinct != len(v):
            dup_keys.add(k)
            self._duplicates(t, k, v)
        return v

    def _duplicates(self, t: int, k: Any, v: list[Any]) -> None:
        counts: dict[Any, int] = {}
        for x in v:
            counts[x] = counts.get(x, 0) + 1
        dups = {x: c for x, c in counts.items() if c > 1}
        self._case(
            "duplicate-elements",
            {
                "op_id": self.txns.ops[t].id,
                "txn": describe(self.txns, t),
                "key": k,
                "read": v,
                "duplicates": [[x, c] for x, c in dups.items()],
                "message": f"{name(self.txns, t)} read key {shown(k)} = {shown(v)}, which holds "
                + ", ".join(f"{shown(x)} {c} times" for x, c in dups.items())
                + " (each value is appended once)",
            },
        )

    def _aborted_read(self, t: int, k: Any, v: list[Any], failed: dict[Any, int]) -> None:
        for x in v:
            w = failed.get(x)
            if w is not None:
                self._case(
                    "G1a",
                    {
                        "op_id": self.txns.ops[t].id,
                        "txn": describe(self.txns, t),
                        "writer": describe(self.txns, w),
                        "key": k,
                        "element": x,
                        "read": v,
                        "message": f"{name(self.txns, t)} read key {shown(k)} = {shown(v)}, "
                        f"which holds {shown(x)}, appended only by the failed "
                        f"{name(self.txns, w)} (aborted read)",
                    },
                )

    def _within(self, t: int) -> None:
        """Internal consistency, future reads, intermediate appends and lost updates of one
        transaction that touches some key more than once."""
        txns = self.txns
        ok = txns.types[t] == OK
        state: dict[Any, Any] = {}  # key -> expected list; a leading INIT: unknown prefix
        seen: dict[Any, set[Any]] = {}  # key -> elements its reads saw
        appends: dict[Any, list[Any]] = {}
        first_read: dict[Any, Any] = {}
        wrote: set[Any] = set()
        internal = future = False
        for mop in txns.mops[t]:
            f, k, v = (mop[0], mop[1], mop[2] if len(mop) > 2 else None)
            k = hashable(k)
            if f == APPEND:
                v = hashable(v)
                appends.setdefault(k, []).append(v)
                if ok and not future and v in seen.get(k, ()):
                    future = True
                    self._case(
                        "future-read",
                        {
                            "op_id": txns.ops[t].id,
                            "txn": describe(txns, t),
                            "key": k,
                            "element": v,
                            "message": f"{name(txns, t)} read key {shown(k)} holding "
                            f"{shown(v)} before it appended {shown(v)} itself (future read)",
                        },
                    )
                if k not in state or state[k] is None:
                    state[k] = ([] if k in state else [INIT]) + [v]
                else:
                    state[k] = [*state[k], v]
                if k in first_read and k not in wrote and ok:
                    wrote.add(k)
                    self._lost.setdefault((k, _frozen(first_read[k])), []).append(t)
                continue
            read = None if v is None else [hashable(x) for x in v]
            if not ok:
                continue
            first_read.setdefault(k, read)
            expected = state.get(k, _ABSENT)
            if expected is not _ABSENT and expected is not None and not internal:
                got = read or []
                if expected and expected[0] is INIT:
                    suffix = expected[1:]
                    bad = len(got) < len(suffix) or got[len(got) - len(suffix) :] != suffix
                else:
                    bad = expected != got
                if bad:
                    internal = True
                    shown_expected = (
                        "[... " + " ".join(shown(x) for x in expected[1:]) + "]"
                        if expected and expected[0] is INIT
                        else shown(expected)
                    )
                    self._case(
                        "internal",
                        {
                            "op_id": txns.ops[t].id,
                            "txn": describe(txns, t),
                            "key": k,
                            "read": read,
                            "expected": shown_expected,
                            "message": f"{name(txns, t)} read key {shown(k)} = {shown(read)}, "
                            f"but its own earlier micro-ops on that key imply "
                            f"{shown_expected} (internal inconsistency)",
                        },
                    )
            state[k] = read
            if read:
                seen.setdefault(k, set()).update(read)
        for k, vs in appends.items():
            for v in vs[:-1]:
                self._intermediate[(k, v)] = t

    def _intermediate_reads(self) -> None:
        txns = self.txns
        for (k, v), w in self._intermediate.items():
            for r in self.readers.get(k, {}).get(v, ()):
                if r != w and txns.types[r] == OK:
                    self._case(
                        "G1b",
                        {
                            "op_id": txns.ops[r].id,
                            "txn": describe(txns, r),
                            "writer": describe(txns, w),
                            "key": k,
                            "element": v,
                            "message": f"{name(txns, r)} read key {shown(k)} ending in "
                            f"{shown(v)}, which {name(txns, w)} appended and then appended to "
                            "again: a state no committed transaction left (intermediate read)",
                        },
                    )

    def lost_updates(self) -> None:
        txns = self.txns
        for (k, seen), ts in self._lost.items():
            if len(ts) < 2:
                continue
            names = ", ".join(name(txns, t) for t in ts)
            self._case(
                "lost-update",
                {
                    "op_id": txns.ops[ts[0]].id,
                    "txns": [describe(txns, t) for t in ts],
                    "key": k,
                    "value": list(seen) if isinstance(seen, tuple) else seen,
                    "message": f"{names} all read key {shown(k)} = {shown(seen)} and each "
                    "appended to it, yet each committed: every update but one was lost",
                },
            )

    def _dirty_updates(self) -> None:
        """A committed append directly on top of a failed one, along each key's order
        (Elle's dirty update: the failed transaction's state was built upon)."""
        txns = self.txns
        types = txns.types
        for k, order in self.orders.items():
            d = self.appended.get(k, {})
            t1: int | None = None  # None: the initial state, committed
            t1_type = OK
            vs: list[Any] = []
            for v in order:
                t2 = d.get(v)
                if t2 is None:
                    continue
                t2_type = types[t2]
                if t2_type == OK:
                    if t1_type == FAIL:
                        assert t1 is not None
                        self._case(
                            "dirty-update",
                            {
                                "op_id": txns.ops[t2].id,
                                "key": k,
                                "values": [*vs, v],
                                "txns": [describe(txns, t1), "...", describe(txns, t2)],
                                "message": f"key {shown(k)} went {shown([*vs, v])}: "
                                f"{name(txns, t2)} committed its append of {shown(v)} on "
                                f"top of the failed {name(txns, t1)}'s append of "
                                f"{shown(vs[0])} (dirty update)",
                            },
                        )
                    t1, t1_type, vs = t2, OK, [v]
                elif t2_type == INFO or t1_type == FAIL:
                    vs = [*vs, v]
                else:
                    t1, t1_type, vs = t2, FAIL, [v]

    # -----------------------------------------------------------------------------------------
    # The graph

    def edges(self, variants: int) -> Edges:
        """ww, wr and rw edges from the version orders, plus process or realtime order."""
        txns = self.txns
        types = txns.types
        edges = Edges()
        ww_a, ww_b = edges.appenders(WW)
        wr_a, wr_b = edges.appenders(WR)
        rw_a, rw_b = edges.appenders(RW)
        orders, readers = self.orders, self.readers
        init, fail = INIT, FAIL
        for k, d in self.appended.items():
            order = orders.get(k) or ()
            rk = readers.get(k)
            # along the order: each append follows the one before (ww) and every read that
            # ended there (rw); w is the writer of prev (None: the initial state, or no writer)
            prev: Any = init
            w: int | None = None
            placed = 0
            for v in order:
                t = d.get(v)
                if t is not None:
                    placed += 1
                    if types[t] != fail:
                        if w is not None and w != t and types[w] != fail:
                            ww_a(w)
                            ww_b(t)
                        if rk is not None:
                            rs = rk.get(prev)
                            if rs:
                                for r in rs:
                                    if r != t:
                                        rw_a(r)
                                        rw_b(t)
                prev, w = v, t
            if placed == len(d):
                continue
            # appends no read saw: after everything read of the key (prev: the last element)
            seen = set(order)
            rs = rk.get(prev) if rk is not None else None
            for v, t in d.items():
                if v in seen or types[t] == fail:
                    continue
                if w is not None and w != t and types[w] != fail:
                    ww_a(w)
                    ww_b(t)
                if rs:
                    for r in rs:
                        if r != t:
                            rw_a(r)
                            rw_b(t)
        for k, rk in readers.items():
            d = self.appended.get(k)
            if not d:
                continue
            for last, rs in rk.items():
                w = d.get(last)
                if w is None or types[w] == FAIL:
                    continue
                for r in rs:
                    if r != w:
                        wr_a(w)
                        wr_b(r)
        if variants & REALTIME:
            realtime_edges(txns, edges)
        elif variants & PROCESS:
            process_edges(txns, edges)
        return edges

    def previous(self, k: Any, v: Any) -> Any:
        """The element before v in k's order (INIT: none); for an append never read, the last
        element read."""
        order = self.orders.get(k) or []
        if v not in order:
            return order[-1] if order else INIT
        i = order.index(v)
        return order[i - 1] if i else INIT

    def explain(self, a: int, b: int, rel: int) -> dict[str, Any]:
        """Why a < b by `rel`: the micro-ops that say so, in words ({a} and {b} stand for the
        transactions' names)."""
        txns = self.txns
        if rel == WW:
            for k, v in _appends(txns.mops[b]):
                prev = self.previous(k, v)
                if prev is not INIT and self.appended.get(k, {}).get(prev) == a:
                    return {
                        "key": k,
                        "value": prev,
                        "value'": v,
                        "text": f"{{a}} appended {shown(prev)} to key {shown(k)} and {{b}} "
                        f"appended {shown(v)} right after it, so {{a}} < {{b}} (ww)",
                    }
        elif rel == WR:
            for k, read in _reads(txns.mops[b]):
                if read and self.appended.get(k, {}).get(read[-1]) == a:
                    return {
                        "key": k,
                        "value": read[-1],
                        "text": f"{{b}}'s read of key {shown(k)} saw {{a}}'s append of "
                        f"{shown(read[-1])}, so {{a}} < {{b}} (wr)",
                    }
        elif rel == RW:
            for k, v in _appends(txns.mops[b]):
                prev = self.previous(k, v)
                for k2, read in _reads(txns.mops[a]):
                    if k2 == k and (read[-1] if read else INIT) == prev:
                        return {
                            "key": k,
                            "value": None if prev is INIT else prev,
                            "value'": v,
                            "text": f"{{b}} appended {shown(v)} to key {shown(k)} and {{a}}'s "
                            f"read of key {shown(k)} ({shown(read or [])}) did not see it, so "
                            "{a} < {b} (rw)",
                        }
        return order_step(txns, a, b, rel)

    def check(self, models: Sequence[str], deadline: float, started: float) -> CheckResult:
        self.lost_updates()
        variants = needed_variants(models)
        t0 = time.monotonic()
        edges = self.edges(variants)
        edges_s = time.monotonic() - t0
        txns = self.txns
        cases = {k: list(v) for k, v in self.cases.items()}
        if edges.empty():
            cases["empty-transaction-graph"] = [{}]
        found = search_cycles(
            len(txns),
            edges,
            variants,
            self.explain,
            lambda t: describe(txns, t),
            deadline,
        )
        for kind, cs in found.cases.items():
            cases.setdefault(kind, []).extend(cs)
        details = summary(txns, edges, found, started - self.read_seconds)
        details["keys"] = len(set(self.appended) | set(self.readers))
        details["phase_seconds"] = {
            "micro-ops": round(self.read_seconds, 3),
            "edges": round(edges_s, 3),
            "components": round(found.components_seconds, 3),
            "cycles": round(found.search_seconds, 3),
        }
        return verdict(CHECKER, models, cases, details)


_ABSENT = object()


def _frozen(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _brief(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return printable(text if len(text) <= limit else text[: limit - 3] + "...")


def _appends(mops: Any) -> list[tuple[Any, Any]]:
    return [(hashable(m[1]), hashable(m[2])) for m in mops if len(m) > 2 and m[0] == APPEND]


def _reads(mops: Any) -> list[tuple[Any, list[Any] | None]]:
    out = []
    for m in mops:
        if m[0] == READ:
            v = m[2] if len(m) > 2 else None
            out.append((hashable(m[1]), None if v is None else [hashable(x) for x in v]))
    return out


def check_list_append(
    history: History,
    consistency: str | Sequence[str] | None = None,
    time_limit: float | None = None,
) -> CheckResult:
    """The list-append verdict for the given models (default: strict-serializable)."""
    started = time.monotonic()
    models = consistency_models(consistency)
    txns = collect_txns(history, CHECKER)
    deadline = started + (time_limit if time_limit is not None else SEARCH_SECONDS)
    with gc_paused():
        return ListAppend(txns).check(models, deadline, started)


class ListAppendChecker(Checker):
    """Elle's list-append checker for the context's consistency models."""

    name: ClassVar[str] = CHECKER
    orphans: ClassVar[bool] = True
    description: ClassVar[str] = (
        "transactions of append / read-list micro-ops against Elle's isolation models"
    )

    def __init__(self) -> None:
        self._read: tuple[tuple[int, int], ListAppend] | None = None

    def _analysis(self, history: History) -> ListAppend:
        """The history analysed once for validate_input and check (a million transactions
        take seconds to read)."""
        stamp = (id(history.ops), len(history.ops))
        if self._read is None or self._read[0] != stamp:
            with gc_paused():
                self._read = (stamp, ListAppend(collect_txns(history, CHECKER)))
        return self._read[1]

    def validate_input(self, history: History, context: CheckContext) -> None:
        consistency_models(context.consistency)
        self._analysis(history)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        started = time.monotonic()
        models = consistency_models(context.consistency)
        analysis = self._analysis(history)
        self._read = None  # check() may add cases: an analysis is used once
        limit = context.time_limit if context.time_limit is not None else SEARCH_SECONDS
        with gc_paused():
            return analysis.check(models, started + limit, started)
