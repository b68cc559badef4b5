"""set-full: Jepsen's rigorous set analysis, per element, for grow-only sets.

Ops: `add` (value = one element) and `read-set` (value = every element, on ok); Jepsen's own
spelling (`add` / `read`) is accepted when a history has no `read-set`. Keys are independent.

For every element of a key (Jepsen's definitions, jepsen.checker/set-full):

- *known*: the first moment it is certain to exist: its add completed ok, or a read that
  returned it completed, whichever is first in the history;
- *last present*: the read, latest by invocation, that returned it;
- *last absent*: the read, latest by invocation, that did not return it.

Outcomes:

- **lost**: known, and then gone. With final reads (the run's reads of every key through every
  node after healing, from `CheckContext.final_from_index` on) that means: absent from the last
  final read of every node. Without final reads (an imported history), Jepsen's rule: some read
  that began after it was known, and after the last read that returned it began, did not
  return it. Invalid.
- **phantom**: a read returned an element that no add ever tried, or whose add failed (`fail`
  means it certainly did not happen). Invalid.
- **duplicate**: one read returned an element twice. Invalid (a set has no duplicates).
- **stable**: every read invoked after the last one that returned it completed before its add
  was even invoked (usually: there is no such read). It is **stale** when some read that
  began after it was known still missed it; its *stale window* runs from known to the
  invocation of the last such read. Stale is normal for an eventually consistent store and is
  reported, not judged (Jepsen's `linearizable? false`).
- **partial** (final reads only): present in the final reads of some nodes and not others;
  the convergence checker judges that.
- **never read**: no read began after it was known.

Jepsen's *stable latency* of a stable element (Maelstrom's `:stable-latencies`, the figure
Gossip Glomers' broadcast challenges grade) is the time from when it was known to the
invocation of the last read that missed it, in whole milliseconds, 0 when no read began after
it was known and missed it; `stable_latencies_ms` gives its quantiles 0, 0.5, 0.95, 0.99 and 1
over every stable element, as Jepsen does (`stale_window_ms` covers the stale ones only).

Elements whose add ended `info` (or never completed) may or may not appear; once some read has
returned one, it is known, and must not be lost afterwards.

Jepsen's reducer updates every element at every read (reads x elements); here each key's
reads are hashed into sets once, and two sweeps over them (in completion order for *known*,
in reverse invocation order for *last present* / *last absent*) use C set operations whose
cost is bounded by the sizes of the reads, so the whole check is O(total size of all reads),
and Python code touches each element a constant number of times. The 1,000,000-op benchmark
(bench/crdt_checkers.py) runs in a few seconds; the result equals the literal reducer's on
random histories (tests/test_crdt_checkers.py).
"""

from __future__ import annotations

import gc
import heapq
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.history import NEMESIS, History

ADD = "add"
READ_SET = "read-set"
JEPSEN_READ = "read"
#: anomalies listed one by one, per type (the counts are always complete)
MAX_ANOMALIES = 100
#: elements listed in details per outcome
MAX_LISTED = 100
PERCENTILES = (0.0, 0.5, 0.95, 0.99, 1.0)
#: Jepsen's quantile points for stable latencies, with the keys its results use
JEPSEN_POINTS = (("0", 0.0), ("0.5", 0.5), ("0.95", 0.95), ("0.99", 0.99), ("1", 1.0))


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a checker builds its indexes.

    A big history is millions of tracked objects; every collection of the oldest generation
    walks all of them, and building per-read sets and records triggers many (the 1,000,000-op
    benchmark spent two thirds of its time there). The structures built here hold no reference
    cycles, so reference counting frees them all the same. Restored on exit, if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def set_vocabulary(history: History) -> tuple[str, str]:
    """(add f, read f): ours (add / read-set), or Jepsen's (add / read) when no op is a
    read-set."""
    for op in history.ops:
        if op.f == READ_SET:
            return ADD, READ_SET
    return ADD, JEPSEN_READ


class _Unhashable:
    """An element that is a JSON list or object, identified by its canonical JSON text."""

    __slots__ = ("text", "value")

    def __init__(self, value: Any):
        self.value = value
        self.text = json.dumps(value, sort_keys=True, separators=(",", ":"))

    def __hash__(self) -> int:
        return hash(self.text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Unhashable) and other.text == self.text

    def __repr__(self) -> str:
        return self.text


def hashable(x: Any) -> Any:
    try:
        hash(x)
    except TypeError:
        return _Unhashable(x)
    return x


def as_set(values: Iterable[Any]) -> set[Any]:
    try:
        return set(values)
    except TypeError:
        return {hashable(v) for v in values}


def plain(x: Any) -> Any:
    """The JSON value of an element (undoing `hashable`)."""
    return x.value if isinstance(x, _Unhashable) else x


@dataclass(slots=True)
class Read:
    """One ok read: positions in the history (exact real-time order), times, node, output."""

    call: int
    ret: int
    call_time: int
    ret_time: int
    node: str | None
    value: list[Any]
    final: bool
    rank: int = -1  # position among the key's reads sorted by invocation


@dataclass(slots=True)
class Add:
    call: int
    call_time: int
    node: str | None
    type: str = "info"  # ok / fail / info (never completed is info)
    ret: int | None = None
    ret_time: int | None = None
    #: the node that acknowledged it, when the completion names another than the client's
    #: (a write forwarded to a leader, a Redis client sent to the primary its Sentinel named)
    acked_by: str | None = None


@dataclass
class KeyOps:
    """The adds and ok reads of one key."""

    adds: dict[Any, Add] = field(default_factory=dict)  # element -> its (first) add
    reads: list[Read] = field(default_factory=list)  # in completion order
    malformed: int = 0


def collect(
    history: History, add_f: str, read_f: str, final_from_index: int | None
) -> dict[Any, KeyOps]:
    """Pair invocations with completions (per process) and group adds and ok reads by key."""
    keys: dict[Any, KeyOps] = {}
    open_: dict[Any, tuple[int, Any]] = {}
    no_final = final_from_index is None
    fs = (add_f, read_f)
    for pos, op in enumerate(history.ops):
        if op.type == "invoke":
            if op.f in fs and op.process != NEMESIS:
                open_[op.process] = (pos, op)
            continue
        got = open_.pop(op.process, None)
        if got is None:
            continue
        ipos, inv = got
        k = keys.get(inv.key)
        if k is None:
            k = keys[inv.key] = KeyOps()
        if inv.f == add_f:
            v = inv.value
            e = v if type(v) is int else hashable(v)
            add = k.adds.get(e)
            if add is None:
                add = k.adds[e] = Add(ipos, inv.time, inv.node or op.node)
            elif add.type == "ok":
                continue  # a second add of the same element: the first ok one stands
            add.type = op.type
            if op.type == "ok":
                add.ret, add.ret_time = pos, op.time
                if op.node and op.node != add.node:
                    add.acked_by = op.node
        elif op.type == "ok":
            value = op.value
            if type(value) is not list:
                if not isinstance(value, list | tuple | set | frozenset):
                    k.malformed += 1
                    continue
                value = list(value)
            final = not no_final and inv.index >= final_from_index  # type: ignore[operator]
            k.reads.append(Read(ipos, pos, inv.time, op.time, inv.node or op.node, value, final))
    # adds never completed stay "info"; register their keys too
    for ipos, inv in open_.values():
        if inv.f == add_f:
            k = keys.setdefault(inv.key, KeyOps())
            k.adds.setdefault(hashable(inv.value), Add(ipos, inv.time, inv.node))
    return keys


STABLE, LOST, PARTIAL, NEVER_READ = "stable", "lost", "partial", "never-read"
OUTCOMES = (STABLE, LOST, PARTIAL, NEVER_READ)


@dataclass(slots=True)
class ElementResult:
    key: Any
    element: Any
    outcome: str  # stable / lost / partial / never-read
    add: Add | None
    known: int | None  # history position
    known_time: int | None
    last_present: Read | None
    last_absent: Read | None
    first_seen: Read | None = None
    stale_ns: int | None = None

    def timeline(self) -> dict[str, Any]:
        """When it was added, known, first and last returned, last missed (history ns)."""
        add, fs, lp, la = self.add, self.first_seen, self.last_present, self.last_absent
        return {
            "key": self.key,
            "element": self.element,
            "outcome": self.outcome,
            "add": add.type if add else None,
            "add_node": add.node if add else None,
            "added_at": add.call_time if add else None,
            "known_at": self.known_time,
            "first_seen_at": fs.ret_time if fs else None,
            "first_seen_node": fs.node if fs else None,
            "last_seen_at": lp.ret_time if lp else None,
            "last_seen_node": lp.node if lp else None,
            "last_absent_at": la.call_time if la else None,
            "last_absent_node": la.node if la else None,
            "stale_ms": None if self.stale_ns is None else self.stale_ns / 1e6,
        }


@dataclass
class KeyAnalysis:
    """The outcome counts of one key's elements, and the elements worth reporting."""

    counts: dict[str, int]
    notable: list[ElementResult]  # every element that is not stable, or is stale
    info_seen: int  # elements whose add was indeterminate, returned by some read
    phantoms: list[tuple[Any, Read]]  # never added: (element, first read returning it)
    failed_seen: list[tuple[Any, Read, Add]]  # add failed, yet returned
    duplicates: list[tuple[Any, Read]]
    finals: dict[Any, Read]  # node -> its last final read of the key


def analyse_key(key: Any, k: KeyOps) -> KeyAnalysis:
    """Every element's outcome for one key, plus the phantoms and duplicates found."""
    reads = k.reads
    # Each read's elements hashed once (only this key's sets are alive at a time).
    sets = [as_set(r.value) for r in reads]
    # Pass 1, in completion order: when each element was first returned; phantoms; dups.
    first_seen: dict[Any, Read] = {}
    seen: set[Any] = set()
    duplicates: list[tuple[Any, Read]] = []
    for r, s in zip(reads, sets, strict=True):
        if len(s) != len(r.value):
            dup = _duplicates(r.value)
            duplicates.extend((e, r) for e in dup)
        if seen.issuperset(s):
            continue  # the common case: nothing new (a lookup per element, no allocation)
        fresh = s - seen
        seen |= fresh
        for e in fresh:
            first_seen[e] = r
    adds = k.adds
    phantoms = [(e, first_seen[e]) for e in seen - adds.keys()]
    failed_seen = [
        (e, first_seen[e], a) for e, a in adds.items() if a.type == "fail" and e in first_seen
    ]
    # Pass 2, latest invocation first: last present and last absent of every element.
    order = sorted(range(len(reads)), key=lambda i: reads[i].call)
    by_call = [reads[i] for i in order]
    later_ret = [-1] * len(by_call)  # latest completion among reads invoked after rank i
    latest = -1
    for i in range(len(by_call) - 1, -1, -1):
        by_call[i].rank = i
        later_ret[i] = latest
        if by_call[i].ret > latest:
            latest = by_call[i].ret
    universe = seen | adds.keys()
    last_present: dict[Any, Read] = {}
    last_absent: dict[Any, Read] = {}
    present: set[Any] = set()
    everything = len(universe)
    candidates = set(universe)  # elements present in every read so far (from the end)
    for i in reversed(order):
        r, s = reads[i], sets[i]
        # once every element has its last present read (usually after the final reads), the
        # earlier reads need no lookups for it
        if len(present) < everything and not present.issuperset(s):
            fresh = s - present
            present |= fresh
            for e in fresh:
                last_present[e] = r
        if candidates:
            gone = candidates - s
            if gone:
                for e in gone:
                    last_absent[e] = r
                candidates -= gone
    # The final reads: each node's last one.
    finals: dict[Any, Read] = {}
    last_final: dict[Any, int] = {}
    for i, r in enumerate(reads):
        if r.final:
            finals[r.node] = r
            last_final[r.node] = i
    final_union: set[Any] | None = None
    if finals:
        final_union = set()
        for i in last_final.values():
            final_union |= sets[i]
    counts = dict.fromkeys(OUTCOMES, 0)
    notable: list[ElementResult] = []
    info_seen = 0
    for e, add in adds.items():
        fs = first_seen.get(e)
        if add.type == "fail" and fs is None:
            continue  # certainly never added, and never seen: nothing to judge
        if add.type == "info" and fs is not None:
            info_seen += 1
        known, known_time = add.ret, add.ret_time
        if fs is not None and (known is None or fs.ret < known):
            known, known_time = fs.ret, fs.ret_time
        lp = last_present.get(e)
        # Stable: every read invoked after the last one that returned it lacks it, so it is
        # stable when all of those completed before its add was even invoked (Jepsen follows
        # an element from its add's invocation on; an earlier read says nothing about it).
        stable = lp is not None and later_ret[lp.rank] < add.call
        la = last_absent.get(e)
        if final_union is not None:
            if known is not None and e not in final_union:
                outcome = LOST
            elif stable:
                outcome = STABLE
            elif e in final_union:
                outcome = PARTIAL
            else:
                outcome = NEVER_READ
        elif stable:
            outcome = STABLE
        elif known is not None and la is not None and known < la.call:
            # Jepsen's rule: a read that began after it was known, and after the last read that
            # returned it began (la is the latest read lacking it), did not return it
            outcome = LOST
        else:
            outcome = NEVER_READ
        counts[outcome] += 1
        # stale: a read that began after it was known still missed it
        stale = outcome is STABLE and la is not None and known is not None and la.call > known
        if outcome is STABLE and not stale:
            continue  # the common case, only counted
        res = ElementResult(key, plain(e), outcome, add, known, known_time, lp, la, fs)
        if stale and known_time is not None and la is not None:
            res.stale_ns = max(0, la.call_time - known_time)
        notable.append(res)
    return KeyAnalysis(counts, notable, info_seen, phantoms, failed_seen, duplicates, finals)


def _duplicates(values: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    dup: list[Any] = []
    for v in values:
        h = hashable(v)
        if h in seen:
            dup.append(h)
        seen.add(h)
    return dup


def _s(ns: int | None) -> str:
    return "?" if ns is None else f"{ns / 1e9:.3f} s"


def _node(node: str | None) -> str:
    return node or "an unnamed node"


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    n = len(values)
    return {str(p): values[min(n - 1, int(p * n))] for p in PERCENTILES}


def stable_latency_ms(known_time: int | None, last_absent: Read | None) -> int:
    """Jepsen's stable latency of a stable element: from known to just after the invocation
    of the last read that missed it, floored to whole ms, never below 0."""
    if last_absent is None or known_time is None:
        return 0
    return max(0, last_absent.call_time + 1 - known_time) // 1_000_000


def jepsen_quantiles(zeros: int, values: list[int]) -> dict[str, int]:
    """Jepsen's frequency-distribution of `zeros` zeros and `values`: at each point p the
    element at index min(n - 1, floor(n p)) of the sorted values; {} when there are none."""
    n = zeros + len(values)
    if not n:
        return {}
    ordered = sorted(values)

    def at(i: int) -> int:
        return 0 if i < zeros else ordered[i - zeros]

    return {k: at(min(n - 1, int(n * p))) for k, p in JEPSEN_POINTS}


def _where_lost(
    lost: list[ElementResult], reads: list[Read]
) -> dict[Any, dict[str, tuple[int, int]]]:
    """For lost elements only: {element: {node: (first, last) ret time it was returned}}."""
    want = {hashable(r.element) for r in lost}
    out: dict[Any, dict[str, tuple[int, int]]] = {}
    for r in reads:
        hit = want & as_set(r.value)
        for e in hit:
            per = out.setdefault(e, {})
            node = _node(r.node)
            first = per.get(node, (r.ret_time, r.ret_time))[0]
            per[node] = (first, r.ret_time)
    return out


def _lost_anomaly(
    res: ElementResult,
    sightings: dict[str, tuple[int, int]],
    finals: dict[Any, Read],
) -> dict[str, Any]:
    key, e, add = res.key, res.element, res.add
    if add is not None and add.type == "ok":
        acked = f", acknowledged by {add.acked_by}," if add.acked_by else ""
        origin = f"its add through {_node(add.node)}{acked} completed ok at {_s(add.ret_time)}"
    elif add is not None and add.type == "fail":
        origin = f"its add through {_node(add.node)} failed, yet a read returned it"
    else:
        origin = f"its add through {_node(add.node if add else None)} was indeterminate"
    final_nodes = ", ".join(sorted(_node(n) for n in finals))
    lost_by: str | None
    if sightings:
        last_node, (_, last_t) = max(sightings.items(), key=lambda kv: kv[1][1])
        others = sorted(n for n in sightings if n != last_node)
        also = f" (also seen through {', '.join(others)})" if others else ""
        lost_by = last_node
        seen_text = f"last returned at {_s(last_t)} through {last_node}{also}"
    else:
        lost_by = _node(add.node) if add is not None else None
        seen_text = "no read ever returned it"
    if add is not None and add.type == "ok" and add.acked_by:
        lost_by = add.acked_by  # it acknowledged the element, then did not keep it
    if finals:
        gone = f"absent from the final reads of every node ({final_nodes})"
    else:
        la = res.last_absent
        gone = (
            f"a read through {_node(la.node)} that began at {_s(la.call_time)} did not return "
            "it, nor did any read that began later"
            if la is not None
            else "no later read returned it"
        )
    who = f"; lost by {lost_by}" if lost_by else ""
    return {
        "type": "lost",
        "key": key,
        "element": e,
        "node": lost_by,
        "seen_on": {n: {"first": f, "last": last} for n, (f, last) in sorted(sightings.items())},
        "add": _add_dict(add),
        "message": f"element {e!r} of key {key!r} was lost: {origin}; {seen_text}; {gone}{who}.",
    }


def _read_anomaly(kind: str, key: Any, e: Any, rd: Read, how: str) -> dict[str, Any]:
    """An anomaly shown by one read: it returned element e, and `how` says what is wrong."""
    return {
        "type": kind,
        "key": key,
        "element": plain(e),
        "node": rd.node,
        "message": (
            f"a read of key {key!r} through {_node(rd.node)} completed at {_s(rd.ret_time)} "
            f"returned element {plain(e)!r}, {how}."
        ),
    }


def _add_dict(add: Add | None) -> dict[str, Any] | None:
    if add is None:
        return None
    return {
        "type": add.type,
        "node": add.node,
        "acked_by": add.acked_by,
        "call_time": add.call_time,
        "ret_time": add.ret_time,
    }


class SetFullChecker(Checker):
    name = "set-full"
    needs = (frozenset({ADD, READ_SET}), frozenset({ADD, JEPSEN_READ}))
    description = (
        "grow-only sets, per element: lost, phantom, stale (with its window), never read "
        "(Jepsen's set-full)"
    )

    def check(self, history: History, context: CheckContext | None = None) -> CheckResult:
        with paused_gc():
            return self._check(history, context or CheckContext())

    def _check(self, history: History, context: CheckContext) -> CheckResult:
        add_f, read_f = set_vocabulary(history)
        keys = collect(history, add_f, read_f, context.final_from_index)
        anomalies: list[dict[str, Any]] = []
        counts = dict.fromkeys(OUTCOMES, 0)
        totals = {"lost": 0, "phantom": 0, "duplicate": 0}
        adds_by_type = {"ok": 0, "info": 0, "fail": 0}
        stale: list[ElementResult] = []
        stable_zero = 0  # stable elements whose stable latency is 0 ms, counted
        stable_late: list[int] = []  # the others' stable latencies (ms)
        listed: dict[str, list[dict[str, Any]]] = {"lost": [], "never-read": [], "partial": []}
        info_seen = 0
        malformed = 0
        n_reads = 0
        for key, k in keys.items():
            malformed += k.malformed
            n_reads += len(k.reads)
            for a in k.adds.values():
                adds_by_type[a.type] = adds_by_type.get(a.type, 0) + 1
            ka = analyse_key(key, k)
            info_seen += ka.info_seen
            for outcome, n in ka.counts.items():
                counts[outcome] += n
            # stable elements not listed as notable were never missed after they were known
            stable_zero += ka.counts[STABLE] - sum(r.outcome is STABLE for r in ka.notable)
            lost = [r for r in ka.notable if r.outcome == LOST]
            sightings = _where_lost(lost, k.reads) if lost else {}
            for r in ka.notable:
                if r.outcome is STABLE:
                    ms = stable_latency_ms(r.known_time, r.last_absent)
                    if ms:
                        stable_late.append(ms)
                    else:
                        stable_zero += 1
                if r.stale_ns is not None:
                    stale.append(r)
                if r.outcome in listed and len(listed[r.outcome]) < MAX_LISTED:
                    listed[r.outcome].append(r.timeline())
            found: list[tuple[str, dict[str, Any]]] = [
                ("lost", _lost_anomaly(r, sightings.get(hashable(r.element), {}), ka.finals))
                for r in lost
            ]
            found += [
                ("phantom", _read_anomaly("phantom", key, e, rd, "which was never added"))
                for e, rd in ka.phantoms
            ]
            found += [
                (
                    "phantom",
                    _read_anomaly(
                        "phantom",
                        key,
                        e,
                        rd,
                        f"although its add through {_node(a.node)} failed (certainly not done)",
                    )
                    | {"add": _add_dict(a)},
                )
                for e, rd, a in ka.failed_seen
            ]
            found += [
                ("duplicate", _read_anomaly("duplicate", key, e, rd, "more than once"))
                for e, rd in ka.duplicates
            ]
            for kind, anomaly in found:
                totals[kind] += 1
                if totals[kind] <= MAX_ANOMALIES:
                    anomalies.append(anomaly)
        worst = heapq.nlargest(MAX_LISTED, stale, key=lambda r: r.stale_ns or 0)
        details: dict[str, Any] = {
            "vocabulary": {"add": add_f, "read": read_f},
            "keys": len(keys),
            "reads": n_reads,
            "final_reads": context.final_from_index is not None,
            "adds": adds_by_type,
            "attempt_count": sum(adds_by_type.values()),
            "outcomes": counts,
            "lost_count": totals["lost"],
            "phantom_count": totals["phantom"],
            "duplicate_count": totals["duplicate"],
            "indeterminate_adds_seen": info_seen,
            "stale_count": len(stale),
            "stale_window_ms": _quantiles([(r.stale_ns or 0) / 1e6 for r in stale]),
            "stable_latencies_ms": jepsen_quantiles(stable_zero, stable_late),
            "worst_stale": [r.timeline() for r in worst],
            "lost": listed["lost"],
            "partial": listed["partial"],
            "never_read": listed["never-read"],
            "malformed_reads": malformed,
        }
        invalid = totals["lost"] + totals["phantom"] + totals["duplicate"]
        if invalid:
            parts = [f"{n} {t}" for t, n in totals.items() if n]
            first = anomalies[0]["message"] if anomalies else ""
            return CheckResult(
                self.name,
                False,
                f"{', '.join(parts)} element(s); first: {first}",
                anomalies,
                details,
            )
        if malformed:
            return CheckResult(
                self.name,
                "unknown",
                f"{malformed} ok {read_f} op(s) did not return a list of elements",
                anomalies,
                details,
            )
        if counts["stable"] == 0:
            return CheckResult(
                self.name,
                "unknown",
                "no element was ever read stably (nothing added, or nothing read)",
                anomalies,
                details,
            )
        return CheckResult(self.name, True, None, anomalies, details)
