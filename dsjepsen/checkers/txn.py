"""Transactional histories, checked as Elle checks them: what list-append and rw-register share.

A transaction is an op with `f: txn` whose value is a list of micro-ops `[f k v]`. Each
checker (list_append.py, rw_register.py) reads its micro-ops, finds the anomalies a single
transaction or a single key shows (aborted and intermediate reads, internal inconsistency,
lost updates...) and infers dependency edges between transactions:

* ww: T1 installed a version of a key and T2 the next one (T1 < T2 in every serial order);
* wr: T2 read a version T1 installed;
* rw: T1 read a version and T2 installed the next one (T1 did not see T2's write);
* process: T1 and T2 ran on one process, T1 first (for the strong-session models);
* realtime: T1 completed before T2 was invoked (for the strict / strong models).

This module turns those edges into anomalies: the strongly connected components of the graph
(compiled, `graph.components`), then inside each component the shortest cycle of every kind
Elle names (G0, G1c, G-single-item, G-nonadjacent-item, G2-item and their -process / -realtime
variants, searched in order of severity, skipping kinds a cycle already found implies), each
explained step by step; and the verdict for the consistency models asked for, with Elle's
`not` / `also_not` (consistency.py).

Facts follow Elle (jepsen-io/elle `elle.txn`, `elle.core`): process edges join consecutive ok
transactions of one process; real-time order puts an ok transaction before those invoked after
it completed (here as a chain of order points, linear in size, and inside a component as the
covering pairs, which keep every path); an info transaction's writes may have happened, its
reads say nothing; a failed one never happened. A history in which no transaction is ordered
before another is `unknown` (Elle's empty-transaction-graph), and so is a component whose
search did not finish in time (cycle-search-timeout) unless something else decides it.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from dsjepsen.checkers import consistency as cm
from dsjepsen.checkers.graph import Digraph, SearchTimeout, components, constrained_cycle
from dsjepsen.checkers.result import CheckResult
from dsjepsen.errors import InputError
from dsjepsen.history import History, Operation, printable

# relationships, as bits of an edge's label
WW, WR, RW, PROCESS, REALTIME = 1, 2, 4, 8, 16
REL_NAMES = {WW: "ww", WR: "wr", RW: "rw", PROCESS: "process", REALTIME: "realtime"}

# transaction types
OK, INFO, FAIL = 0, 1, 2
TYPE_NAMES = ("ok", "info", "fail")

#: seconds of cycle search per strongly connected component (Elle: 1 s)
SCC_SECONDS = 2.0
#: seconds of cycle search over all components when the context gives no time limit
SEARCH_SECONDS = 60.0
#: cases of each anomaly kind kept in the result (the count of all is in details)
MAX_CASES = 20
#: anomalies that make a verdict unknown rather than false (Elle's)
UNKNOWN_TYPES = ("empty-transaction-graph", "cycle-search-timeout")


class Initial:
    """The state before any write: the empty list, the register never written."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "INIT"


INIT = Initial()


# ---------------------------------------------------------------------------------------------
# Transactions


@dataclass
class Txns:
    """The transactions of a history, each an index into these lists (history order).

    `mops[t]` is what transaction t did: the completion's micro-ops for an ok, info or fail
    completion (a read's value is what it saw), the invocation's for an op that never
    completed. `orphan[t]`: the op has no invocation (Elle's histories of completions only), so
    it has no start in real time."""

    ops: list[Operation]
    mops: list[Any]
    types: bytearray
    source: str

    def __len__(self) -> int:
        return len(self.ops)

    def line(self, t: int) -> int:
        o = self.ops[t]
        op = o.complete if o.complete is not None and o.type != "info" else o.invoke
        return op.line if op.line is not None else op.index + 1

    def orphan(self, t: int) -> bool:
        o = self.ops[t]
        return o.invoke is o.complete


def collect_txns(history: History, checker: str) -> Txns:
    """Every client op of the history as a transaction; InputError for an op that is not one
    (another f, or a value that is not a list of micro-ops)."""
    source = history.source
    ops = history.operations(orphans=True)
    codes = {"ok": OK, "info": INFO, "fail": FAIL}
    types = bytearray(codes[o.type] for o in ops)
    # the completion's micro-ops (what reads saw), else the invocation's
    mops = [o.value if o.output is None else o.output for o in ops]
    for t, o in enumerate(ops):
        value = mops[t]
        if o.f != "txn" or type(value) is not list or (o.output is None and o.type == "ok"):
            _refuse(o, o.output if o.type == "ok" else value, checker, source)
    return Txns(ops, mops, types, source)


def _refuse(o: Operation, value: Any, checker: str, source: str) -> None:
    """The one-line error for an op that is not a transaction (a tuple of micro-ops, from
    the Python API, is one)."""
    if o.f != "txn":
        raise InputError(
            f"{checker} checks transactions (f txn); this op is {printable(repr(o.f))}",
            source,
            _line(o),
        )
    if not isinstance(value, list | tuple):
        what = "ok txn completion" if o.type == "ok" else "a txn's value"
        raise InputError(
            f"{what} must be a list of micro-ops, got {_shown(value)}", source, _line(o)
        )


def _line(o: Operation) -> int:
    op = o.complete if o.complete is not None else o.invoke
    return op.line if op.line is not None else op.index + 1


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return printable(text if len(text) <= limit else text[: limit - 3] + "...")


def hashable(x: Any) -> Any:
    """Keys and values as dict keys: lists (EDN vectors, JSON arrays) become tuples."""
    if isinstance(x, list | tuple):
        return tuple(hashable(y) for y in x)
    if isinstance(x, dict):
        return tuple(sorted(((hashable(k), hashable(v)) for k, v in x.items()), key=repr))
    return x


def mop_error(txns: Txns, t: int, what: str) -> InputError:
    return InputError(what, txns.source, txns.line(t))


# ---------------------------------------------------------------------------------------------
# Edges


class Edges:
    """Dependency edges, one pair of flat arrays (sources, destinations) per relationship: a
    million transactions have millions of them. Parallel edges are kept; they are merged only
    inside the components that need it."""

    def __init__(self) -> None:
        self._pairs: dict[int, tuple[array[int], array[int]]] = {
            rel: (array("i"), array("i")) for rel in REL_NAMES
        }
        #: real-time order as order points (nodes numbered from the transactions' count on)
        self.points = 0
        self.realtime: RealTime | None = None
        #: transactions some other transaction precedes in real time
        self.realtime_followers = 0

    def add(self, a: int, b: int, rel: int) -> None:
        src, dst = self._pairs[rel]
        src.append(a)
        dst.append(b)

    def appenders(self, rel: int) -> tuple[Callable[[int], None], Callable[[int], None]]:
        """(append source, append destination) of one relationship, for hot loops."""
        src, dst = self._pairs[rel]
        return src.append, dst.append

    def extend(self, src: np.ndarray, dst: np.ndarray, rel: int) -> None:
        s, d = self._pairs[rel]
        s.frombytes(src.astype(np.int32).tobytes())
        d.frombytes(dst.astype(np.int32).tobytes())

    def __len__(self) -> int:
        return sum(len(s) for s, _d in self._pairs.values())

    def empty(self) -> bool:
        """No transaction is ordered before another (Elle's empty transaction graph; the
        order points of real time alone order nothing)."""
        untimed = sum(len(s) for rel, (s, _d) in self._pairs.items() if rel != REALTIME)
        return untimed == 0 and self.realtime_followers == 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sources, destinations, relationship bits) of every edge."""
        srcs = [np.frombuffer(s, dtype=np.int32) for s, _d in self._pairs.values()]
        dsts = [np.frombuffer(d, dtype=np.int32) for _s, d in self._pairs.values()]
        rels = [np.full(len(s), rel, dtype=np.int8) for rel, (s, _d) in self._pairs.items()]
        return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(rels)

    def counts(self) -> dict[str, int]:
        """Edges per relationship (real-time order: the edges of its order points)."""
        return {REL_NAMES[rel]: len(s) for rel, (s, _d) in self._pairs.items()}


def process_edges(txns: Txns, edges: Edges) -> None:
    """Consecutive ok transactions of each process, in history order (Elle's process graph:
    an info transaction ends its process and orders nothing)."""
    last: dict[Any, int] = {}
    for t, o in enumerate(txns.ops):
        if txns.types[t] != OK:
            continue
        p = o.process
        prev = last.get(p)
        if prev is not None:
            edges.add(prev, t, PROCESS)
        last[p] = t


@dataclass
class RealTime:
    """When each transaction began and ended, for real-time order: `call` and `ret`
    positions (-1: never completed), which ones completed ok, and which may follow another in
    real time (they may have happened, and have an invocation)."""

    call: np.ndarray
    ret: np.ndarray
    ok: np.ndarray
    invoked: np.ndarray

    def cover(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The covering real-time pairs among `members`: a -> b when a completed ok before
        b (ok or info, invoked) began and no member c completed ok between them. Every
        real-time path among the members survives (c stands between a and b), and there are
        about as many edges as members times the transactions running at once."""
        call, ret = self.call, self.ret
        targets = members[self.invoked[members]]  # (failed ones never happened: not invoked)
        if len(targets) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        targets = targets[np.argsort(call[targets], kind="stable")]
        tcalls = call[targets]
        # the earliest completion among ok members invoked after each position
        okc = members[self.ok[members] & self.invoked[members]]
        okc = okc[np.argsort(call[okc], kind="stable")]
        sufmin = np.minimum.accumulate(ret[okc][::-1])[::-1] if len(okc) else okc
        sufmin = np.append(sufmin, np.iinfo(np.int64).max)
        sources = members[self.ok[members]]
        r = ret[sources]
        m = sufmin[np.searchsorted(call[okc], r, side="right")]
        lo = np.searchsorted(tcalls, r, side="right")
        hi = np.searchsorted(tcalls, m, side="left")
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        src = np.repeat(sources, counts)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        return src, targets[np.arange(total) + starts]


def realtime_edges(txns: Txns, edges: Edges) -> None:
    """Real-time order (a before b when ok transaction a completed before b, ok or info, was
    invoked) for the components: as a chain of order points, one per ok completion in
    history order, with a -> its completion's point -> the next point ... -> b from the last
    point before b's invocation. That keeps every real-time path in about three edges per
    transaction (the pairs themselves are as many as transactions times concurrency); the
    pairs are drawn only inside the components that need them (`RealTime.cover`). Orphans
    have no invocation: nothing precedes them in real time."""
    n = len(txns)
    ops = txns.ops
    types = np.frombuffer(bytes(txns.types), dtype=np.uint8)
    ok = types == OK
    call = np.fromiter(map(attrgetter("call"), ops), dtype=np.int64, count=n)
    ret = np.array(list(map(attrgetter("ret"), ops)), dtype=np.float64)  # None: nan
    ret = np.where(np.isnan(ret), -1, ret).astype(np.int64)
    # an ok op without invocation is an orphan that began where it ended
    invoked = (call != ret) & ok
    for t in np.flatnonzero(types == INFO):
        invoked[t] = ops[t].invoke is not ops[t].complete
    edges.realtime = RealTime(call, ret, ok, invoked)
    sources = np.flatnonzero(ok)
    if len(sources) == 0:
        return
    sources = sources[np.argsort(ret[sources], kind="stable")]
    rets = ret[sources]
    m = len(sources)
    points = n + np.arange(m)  # point k stands for the k-th ok completion
    edges.points = m
    edges.extend(sources, points, REALTIME)
    edges.extend(points[:-1], points[1:], REALTIME)
    targets = np.flatnonzero(invoked)
    last = np.searchsorted(rets, call[targets], side="left") - 1
    has = last >= 0
    edges.realtime_followers = int(has.sum())
    edges.extend(points[last[has]], targets[has], REALTIME)


# ---------------------------------------------------------------------------------------------
# Cycle kinds


@dataclass(frozen=True)
class CycleSpec:
    """One kind of cycle, as a rule over the relationships of its edges.

    `base`: the relationships any edge may have besides rw and the variant's; `rw`: how many
    anti-dependency (rw) edges the cycle has ("none", "single": exactly one, "nonadjacent": two
    or more, never two in a row, "adjacent": two or more, some two in a row); `needs_wr`: at
    least one wr edge (G1c, not G0); `variant`: PROCESS or REALTIME, which the cycle must use
    at least once (0: neither may appear)."""

    name: str
    base: int
    rw: str
    needs_wr: bool = False
    variant: int = 0


_BASE = (
    ("G0", WW, "none", False),
    ("G1c", WW | WR, "none", True),
    ("G-single-item", WW | WR, "single", False),
    ("G-nonadjacent-item", WW | WR, "nonadjacent", False),
    ("G2-item", WW | WR, "adjacent", False),
)

SPECS: tuple[CycleSpec, ...] = tuple(
    sorted(
        (
            CycleSpec(name + suffix, base, rw, wr, variant)
            for name, base, rw, wr in _BASE
            for suffix, variant in (("", 0), ("-process", PROCESS), ("-realtime", REALTIME))
        ),
        key=lambda s: cm.anomaly_order(s.name),
    )
)
CYCLE_TYPES = frozenset(s.name for s in SPECS)

# automaton state: (rw edges so far capped at 2, last edge rw, first edge rw, two rw in a row
# seen, wr seen, variant seen, no edge read yet)
_State = tuple[int, bool, bool, bool, bool, bool, bool]
_START: _State = (0, False, False, False, False, False, True)


def _spec_step(spec: CycleSpec) -> Callable[[_State, int], list[tuple[_State, int]]]:
    allowed = spec.base | spec.variant
    rw_ok = spec.rw != "none"

    def step(q: _State, bits: int) -> list[tuple[_State, int]]:
        rw, last_rw, first_rw, adj, wr, var, start = q
        out: list[tuple[_State, int]] = []
        # non-rw readings: a wr reading or a variant reading is worth more than a ww one
        plain = bits & allowed
        if plain:
            choices = []
            if plain & WR:
                choices.append(WR)
            if plain & spec.variant:
                choices.append(spec.variant)
            if not choices:
                choices.append(WW if plain & WW else plain & -plain)
            for rel in choices:
                out.append(
                    (
                        (
                            rw,
                            False,
                            first_rw,
                            adj,
                            wr or rel == WR,
                            var or rel == spec.variant,
                            False,
                        ),
                        rel,
                    )
                )
        if rw_ok and bits & RW:
            if spec.rw == "single" and rw >= 1:
                return out
            if spec.rw == "nonadjacent" and last_rw:
                return out
            out.append(
                ((min(rw + 1, 2), True, first_rw or start, adj or last_rw, wr, var, False), RW)
            )
        return out

    return step


def _spec_accept(spec: CycleSpec) -> Callable[[_State], bool]:
    def accept(q: _State) -> bool:
        rw, last_rw, first_rw, adj, wr, var, _start = q
        if spec.variant and not var:
            return False
        if spec.needs_wr and not wr:
            return False
        if spec.rw == "none":
            return rw == 0
        if spec.rw == "single":
            return rw == 1
        if spec.rw == "nonadjacent":
            return rw >= 2 and not (last_rw and first_rw)
        return rw >= 2 and (adj or (last_rw and first_rw))

    return accept


def classify(rels: Sequence[int]) -> str:
    """The kind of a cycle from the relationship each edge stands for (Elle's naming: data
    dependencies decide the base kind, any realtime edge makes it -realtime, else any process
    edge -process)."""
    n_rw = sum(1 for r in rels if r == RW)
    adjacent = any(r == RW and rels[i - 1] == RW for i, r in enumerate(rels))
    if n_rw == 1:
        base = "G-single-item"
    elif n_rw > 1:
        base = "G2-item" if adjacent else "G-nonadjacent-item"
    elif WR in rels:
        base = "G1c"
    else:
        base = "G0"
    if REALTIME in rels:
        return base + "-realtime"
    if PROCESS in rels:
        return base + "-process"
    return base


# cycle-exists: for each model, the subgraph that must be acyclic if it holds (Elle's)
_EXISTS: tuple[tuple[str, str, int, int], ...] = (
    # (anomaly, model, relationships, rw extension: 0 = none, else the rw bits one hop adds)
    ("PL-1-cycle-exists", "read-uncommitted", WW, 0),
    ("PL-2-cycle-exists", "read-committed", WW | WR, 0),
    ("PL-SI-cycle-exists", "snapshot-isolation", WW | WR, RW),
    ("PL-2.99-cycle-exists", "repeatable-read", WW | WR | RW, 0),
    ("PL-3-cycle-exists", "serializable", WW | WR | RW, 0),
    ("strong-session-PL-1-cycle-exists", "strong-session-read-uncommitted", WW | PROCESS, 0),
    ("strong-session-PL-2-cycle-exists", "strong-session-read-committed", WW | WR | PROCESS, 0),
    (
        "strong-session-snapshot-isolation-cycle-exists",
        "strong-session-snapshot-isolation",
        WW | WR | PROCESS,
        RW,
    ),
    (
        "strong-session-serializable-cycle-exists",
        "strong-session-serializable",
        WW | WR | RW | PROCESS,
        0,
    ),
    ("strong-PL-1-cycle-exists", "strong-read-uncommitted", WW | REALTIME, 0),
    ("strong-PL-2-cycle-exists", "strong-read-committed", WW | WR | REALTIME, 0),
    (
        "strong-snapshot-isolation-cycle-exists",
        "strong-snapshot-isolation",
        WW | WR | REALTIME,
        RW,
    ),
    ("PL-SS-cycle-exists", "strict-serializable", WW | WR | RW | REALTIME, 0),
)


def cycle_exists(src: np.ndarray, dst: np.ndarray, rel: np.ndarray, n: int) -> list[dict[str, Any]]:
    """Elle's cycle-exists cases for one component (nodes 0..n-1, edges with relationship
    bits): for each model, whether the subgraph it must keep acyclic has a cycle, the weakest
    first (a model stronger than one already ruled out is not looked at). Cheap, so it says
    something even about a component too large to search for each kind of cycle."""
    from scipy.sparse import csr_matrix

    out: list[dict[str, Any]] = []
    redundant: set[str] = set()
    for anomaly, model, rels, ext in _EXISTS:
        canon = cm.canonical(model)
        if canon in redundant:
            continue
        keep = (rel & rels) != 0
        s, d = src[keep], dst[keep]
        if ext:
            a = csr_matrix((np.ones(len(s), dtype=np.int32), (s, d)), shape=(n, n))
            e = (rel & ext) != 0
            b = csr_matrix((np.ones(int(e.sum()), dtype=np.int32), (src[e], dst[e])), shape=(n, n))
            coo = (a @ b).tocoo()
            s = np.concatenate([s, coo.row])
            d = np.concatenate([d, coo.col])
            self_loop = s == d
            if self_loop.any():  # a -ww-> b -rw-> a: a cycle through one hop
                comps = [np.unique(s[self_loop])[:1]]
            else:
                comps = components(n, s, d)
        else:
            comps = components(n, s, d)
        if not comps:
            continue
        smallest = min(comps, key=len)
        out.append(
            {
                "type": anomaly,
                "not": model,
                "scc_size": len(smallest),
                "scc": [int(x) for x in smallest],
            }
        )
        redundant |= cm.impossible_models([anomaly])
    return out


# ---------------------------------------------------------------------------------------------
# Searching components


Explainer = Callable[[int, int, int], dict[str, Any]]


@dataclass
class CycleSearch:
    """What the search over the graph's components found: anomaly kind -> cases."""

    cases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    sccs: int = 0
    largest: int = 0
    timed_out: int = 0
    components_seconds: float = 0.0
    search_seconds: float = 0.0

    def add(self, kind: str, case: dict[str, Any]) -> None:
        self.cases.setdefault(kind, []).append(case)


#: which relationship an edge that has several stands for, first first (Elle explains an edge
#: by the first of its explainers that can: list-append's are ww, wr, rw, then process or
#: realtime order)
PRIORITY = (WW, WR, RW, PROCESS, REALTIME)


def search_cycles(
    n: int,
    edges: Edges,
    variants: int,
    explain: Explainer,
    describe: Callable[[int], dict[str, Any]],
    deadline: float,
    priority: Sequence[int] = PRIORITY,
) -> CycleSearch:
    """Every kind of cycle in each strongly connected component (see the module docstring).

    `variants` are the process / realtime bits present in the graph; `explain(a, b, rel)` the
    checker's reason for one edge (a dict with a `text` sentence); `describe(t)` one
    transaction for the reader. An edge that has several relationships stands for the first
    of them in `priority` when cycles are classified, as in Elle: T1 -rw-> T2 that is also a
    real-time edge is an anti-dependency, and a cycle through it counts its rw edges so."""
    found = CycleSearch()
    t0 = time.monotonic()
    src, dst, rel = edges.arrays()
    # order points (real time) are nodes of their own: a component's transactions are its
    # nodes below n (a cycle through points never returns to one transaction: at least two)
    comps = [r for c in components(n + edges.points, src, dst) if len(r := c[c < n]) > 1]
    found.sccs = len(comps)
    found.components_seconds = time.monotonic() - t0
    if not comps:
        return found
    data = rel != REALTIME
    src, dst, rel = src[data], dst[data], rel[data]
    member = np.full(n, -1, dtype=np.int64)
    for i, c in enumerate(comps):
        member[c] = i
    ms, md = member[src], member[dst]
    inside = (ms >= 0) & (ms == md)
    order = np.argsort(ms[inside], kind="stable")
    e_src, e_dst, e_rel = src[inside][order], dst[inside][order], rel[inside][order]
    bounds = np.searchsorted(ms[inside][order], np.arange(len(comps) + 1))
    specs = [s for s in SPECS if s.variant == 0 or s.variant & variants]
    for i, comp in enumerate(comps):
        found.largest = max(found.largest, len(comp))
        lo, hi = bounds[i], bounds[i + 1]
        c_src, c_dst, c_rel = e_src[lo:hi], e_dst[lo:hi], e_rel[lo:hi]
        if edges.realtime is not None:
            r_src, r_dst = edges.realtime.cover(comp)
            c_src = np.concatenate([c_src, r_src.astype(c_src.dtype)])
            c_dst = np.concatenate([c_dst, r_dst.astype(c_dst.dtype)])
            c_rel = np.concatenate([c_rel, np.full(len(r_src), REALTIME, dtype=c_rel.dtype)])
        _search_component(
            comp,
            c_src,
            c_dst,
            c_rel,
            specs,
            explain,
            describe,
            found,
            deadline,
            priority,
        )
    found.search_seconds = time.monotonic() - t0 - found.components_seconds
    return found


def _search_component(
    comp: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    rel: np.ndarray,
    specs: Sequence[CycleSpec],
    explain: Explainer,
    describe: Callable[[int], dict[str, Any]],
    found: CycleSearch,
    deadline: float,
    priority: Sequence[int],
) -> None:
    local = {int(t): j for j, t in enumerate(comp)}
    ls = np.fromiter((local[int(x)] for x in src), dtype=np.int64, count=len(src))
    ld = np.fromiter((local[int(x)] for x in dst), dtype=np.int64, count=len(dst))
    exists = cycle_exists(ls, ld, rel.astype(np.int64), len(comp))
    for case in exists:
        case["scc"] = [int(comp[j]) for j in case["scc"]]
    merged = Digraph()
    merged.add_nodes(int(t) for t in comp)
    for a, b, r in zip(src.tolist(), dst.tolist(), rel.tolist(), strict=True):
        merged.merge_edge(a, b, r)
    g = merged.subgraph(merged.nodes(), keep=lambda bits: next(r for r in priority if bits & r))
    # kinds no model left standing can have: skip them (a cycle-exists case rules models out)
    impossible = cm.impossible_models([c["type"] for c in exists])
    possible = {cm.canonical(m) for _a, m, _r, _e in _EXISTS} - impossible
    absent = set(cm.prohibited_by(frozenset(possible))) & CYCLE_TYPES
    stop = min(deadline, time.monotonic() + SCC_SECONDS)
    redundant: set[str] = set(absent)
    searched: list[str] = []
    cycles: list[tuple[str, list[tuple[int, int, int]]]] = []
    projections: dict[int, tuple[Digraph, list[list[Any]]]] = {}
    try:
        for spec in specs:
            if spec.name in redundant:
                continue
            searched.append(spec.name)
            if time.monotonic() > stop:
                raise SearchTimeout()
            cycle = _find(g, spec, stop, projections)
            if cycle is not None:
                cycles.append((spec.name, cycle))
                redundant |= cm.implied_anomalies([spec.name])
    except SearchTimeout:
        found.timed_out += 1
        found.add(
            "cycle-search-timeout",
            {
                "type": "cycle-search-timeout",
                "anomaly_spec_type": searched[-1] if searched else None,
                "does_not_contain": [s for s in searched[:-1] if s not in {c for c, _ in cycles}],
                "scc_size": len(comp),
            },
        )
        fallback = _fallback_cycle(g)
        if fallback is not None:
            cycles.append((classify([r for _a, _b, r in fallback]), fallback))
    for case in exists:
        found.add(case["type"], case)
    for kind, cycle in cycles:
        found.add(kind, explain_cycle(kind, cycle, explain, describe))


def _find(
    g: Digraph,
    spec: CycleSpec,
    deadline: float,
    projections: dict[int, tuple[Digraph, list[list[Any]]]],
) -> list[tuple[int, int, int]] | None:
    """The shortest cycle of this kind through the first start that has one; starts are only
    nodes that can be on such a cycle: the sources of the edges the kind needs (rw, wr, the
    variant's) inside a component of the edges it may use. `projections` keeps each set of
    usable relationships' subgraph and components for the next kind that uses the same."""
    usable = spec.base | spec.variant | (RW if spec.rw != "none" else 0)
    if usable not in projections:
        sub = g.subgraph(g.nodes(), keep=lambda bits: bits & usable)
        projections[usable] = (sub, sub.strongly_connected())
    sub, comps = projections[usable]
    if not comps:
        return None
    need = RW if spec.rw != "none" else WR if spec.needs_wr else spec.variant
    starts: list[int] = []
    for comp in comps:
        inside = set(comp)
        for a in comp:
            if not need:
                starts.append(a)
                continue
            if any(b in inside and bits & need for b, bits in sub.out_edges(a)):
                starts.append(a)
    return constrained_cycle(
        sub, starts, _START, _spec_step(spec), _spec_accept(spec), deadline=deadline
    )


def _fallback_cycle(g: Digraph) -> list[tuple[int, int, int]] | None:
    """Some cycle of the component, from the smallest set of relationships that has one (what
    a component whose search timed out is shown with)."""
    for rels in (
        WW,
        WW | REALTIME | PROCESS,
        WW | WR,
        WW | WR | REALTIME | PROCESS,
        WW | WR | RW,
        WW | WR | RW | REALTIME | PROCESS,
    ):
        sub = g.subgraph(g.nodes(), keep=lambda bits, rels=rels: bits & rels)
        nodes = sub.find_cycle()
        if nodes is None:
            continue
        nodes = sub.shortest_cycle(nodes) or nodes
        out = []
        for a, b in zip(nodes, nodes[1:] + nodes[:1], strict=True):
            bits = sub.label(a, b)
            out.append((a, b, next(r for r in (WW, WR, RW, PROCESS, REALTIME) if bits & r)))
        return out
    return None


def explain_cycle(
    kind: str,
    cycle: list[tuple[int, int, int]],
    explain: Explainer,
    describe: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """A cycle as a case: its transactions named T1, T2... in cycle order, each step's reason
    and the whole in words ("T2's read of key 1 saw T1's append of 3, so T1 < T2 (wr); ...")."""
    # start at the transaction that comes first in the history: T1 is the oldest
    first = min(range(len(cycle)), key=lambda i: cycle[i][0])
    cycle = cycle[first:] + cycle[:first]
    name = {a: f"T{i + 1}" for i, (a, _b, _r) in enumerate(cycle)}
    steps = []
    for a, b, r in cycle:
        step = explain(a, b, r)
        step["type"] = REL_NAMES[r]
        step["from"] = name[a]
        step["to"] = name[b]
        step["text"] = step["text"].replace("{a}", name[a]).replace("{b}", name[b])
        steps.append(step)
    sentence = "; ".join(s["text"] for s in steps) + ": so T1 < T1, a cycle"
    txns = []
    for a, _b, _r in cycle:
        d = describe(a)
        d["name"] = name[a]
        txns.append(d)
    return {
        "type": kind,
        "message": sentence,
        "cycle": txns,
        "steps": steps,
        "op_id": txns[0]["op_id"],
    }


# ---------------------------------------------------------------------------------------------
# Naming transactions


def shown(v: Any) -> str:
    """A key, value or list as the explanations write them, in Elle's way: strings bare, nil
    for None, [1 2 3] for lists, [] for the initial state."""
    if v is None:
        return "nil"
    if v is INIT:
        return "[]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(shown(x) for x in v) + "]"
    if isinstance(v, str):
        return printable(v)
    return printable(repr(v))


def name(txns: Txns, t: int) -> str:
    """How a sentence names a transaction outside a cycle: `txn 12 (index 25, process 3)`."""
    o = txns.ops[t]
    done = o.complete if o.complete is not None else o.invoke
    return f"txn {o.id} (index {done.index}, process {shown(o.process)})"


def describe(txns: Txns, t: int) -> dict[str, Any]:
    """One transaction for the reader: the op (its id in the history's operations, the index
    of its completion, process, node, type) and the micro-ops it did."""
    o = txns.ops[t]
    done = o.complete if o.complete is not None else o.invoke
    node = o.node
    return {
        "op_id": o.id,
        "index": done.index,
        "line": txns.line(t),
        "process": o.process,
        "node": node,
        "type": TYPE_NAMES[txns.types[t]],
        "call": None if o.invoke is o.complete else o.call,
        "ret": o.ret,
        "mops": txns.mops[t],
    }


def order_step(txns: Txns, a: int, b: int, rel: int) -> dict[str, Any]:
    """Why a < b by process or real-time order (the data edges have their checker's words)."""
    oa, ob = txns.ops[a], txns.ops[b]
    if rel == PROCESS:
        return {
            "process": oa.process,
            "text": f"process {shown(oa.process)} ran {{a}} before {{b}}, so {{a}} < {{b}} "
            "(process)",
        }
    if rel == REALTIME:
        done = oa.complete.index if oa.complete is not None else oa.call
        return {
            "completed": done,
            "invoked": ob.call,
            "text": f"{{a}} completed (index {done}) before {{b}} was invoked (index "
            f"{ob.invoke.index}), so {{a}} < {{b}} (realtime)",
        }
    raise AssertionError(f"no reason for edge {a} -> {b} ({rel})")


def summary(txns: Txns, edges: Edges, found: Any, started: float) -> dict[str, Any]:
    """The details every transactional check reports."""
    types = bytes(txns.types)
    return {
        "txns": len(txns),
        "ok": types.count(OK),
        "info": types.count(INFO),
        "fail": types.count(FAIL),
        "edges": edges.counts(),
        "sccs": found.sccs,
        "largest_scc": found.largest,
        "search_timeouts": found.timed_out,
        "max_cases_per_kind": MAX_CASES,
        "seconds": round(time.monotonic() - started, 6),
    }


# ---------------------------------------------------------------------------------------------
# Models and the verdict


def needed_variants(models: Iterable[str]) -> int:
    """Which ordering edges the models need: realtime when they forbid a -realtime cycle
    (process order is then covered: a process runs one transaction at a time), else process
    when they forbid a -process cycle, else neither (Elle's additional graphs)."""
    forbidden = cm.prohibited_by(frozenset(models))
    if any(t.endswith("-realtime") for t in forbidden & CYCLE_TYPES):
        return REALTIME
    if any(t.endswith("-process") for t in forbidden & CYCLE_TYPES):
        return PROCESS
    return 0


def verdict(
    checker: str,
    models: Sequence[str],
    cases: Mapping[str, list[dict[str, Any]]],
    details: dict[str, Any],
) -> CheckResult:
    """Elle's result: invalid when an anomaly the models forbid was found, unknown when only
    an undecided one was (no edges, a search that timed out), else valid; `not` / `also_not`
    from every anomaly found, forbidden or not."""
    forbidden = cm.prohibited_by(frozenset(models))
    # a cycle-exists case says less than a cycle: dropped where the other anomalies found
    # already rule its model out (Elle keeps them out of what it reports too)
    ruled_out = cm.impossible_models([k for k in cases if not k.endswith("-cycle-exists")])
    cases = {
        k: v
        for k, v in cases.items()
        if not (k.endswith("-cycle-exists") and cm.canonical(v[0]["not"]) in ruled_out)
    }
    reportable = {k: v for k, v in cases.items() if k in forbidden or k in UNKNOWN_TYPES}
    bad = sorted(k for k in reportable if k in forbidden)
    if bad:
        valid: Any = False
    elif reportable:
        valid = "unknown"
    else:
        valid = True
    is_not, also_not = cm.boundary(cases)
    details["consistency_models"] = list(models)
    details["anomaly_types"] = sorted(reportable)
    details["not"] = is_not
    details["also_not"] = also_not
    details["strongest_possible"] = cm.strongest_possible(cases)
    details["anomaly_counts"] = {k: len(v) for k, v in sorted(cases.items())}
    details["forbidden"] = {
        m: sorted(k for k in cases if k in cm.prohibited_by(frozenset([m]))) for m in models
    }
    details["unreported_types"] = sorted(k for k in cases if k not in reportable)
    anomalies: list[dict[str, Any]] = []
    for kind in sorted(reportable, key=cm.anomaly_order):
        for case in reportable[kind][:MAX_CASES]:
            a = dict(case)
            a["type"] = kind
            a.setdefault("message", _case_message(kind, case))
            anomalies.append(a)
    if valid is False:
        reason = f"{', '.join(bad)}: not {' / '.join(is_not) or ', '.join(models)}"
    elif valid == "unknown":
        reason = "; ".join(_unknown_reason(k, reportable[k]) for k in sorted(reportable))
    else:
        reason = None
    return CheckResult(checker, valid, reason, anomalies, details)


def _unknown_reason(kind: str, cases: list[dict[str, Any]]) -> str:
    if kind == "empty-transaction-graph":
        return "no dependency between any two transactions could be inferred (empty graph)"
    if kind == "cycle-search-timeout":
        return (
            f"the cycle search timed out in {len(cases)} strongly connected "
            f"component{'s' if len(cases) != 1 else ''}"
        )
    return kind


def _case_message(kind: str, case: Mapping[str, Any]) -> str:
    if kind == "empty-transaction-graph":
        return "no dependency between any two transactions could be inferred"
    if kind == "cycle-search-timeout":
        return (
            f"the search for {case.get('anomaly_spec_type')} cycles in a component of "
            f"{case.get('scc_size')} transactions ran out of time"
        )
    if kind.endswith("-cycle-exists"):
        return (
            f"a cycle that {case.get('not')} forbids exists among these "
            f"{case.get('scc_size')} transactions (the search did not single it out)"
        )
    return kind
