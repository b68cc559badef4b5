"""Elle's rw-register checker: transactions of `[w k v]` and `[r k v]` over registers.

Knossos's spelling of the same micro-ops (`[write k v]`, `[read k v]`, its multi-register
histories) is read too: `dsjepsen check --consistency serializable` on such a history checks it
here rather than for linearizability.

Written values are unique per key, so a read names the one write it saw (wr edges are exact).
A register read says nothing about the order of the writes before it, so the version order of
each key is known only where something fixes it (Elle's inference, jepsen-io/elle
`elle.rw-register`):

* initial state: nil, the value of a key never written, precedes every other version
  (always on);
* writes follow reads (`--wfr-keys`): an ok transaction that reads v and then writes v' of one
  key installed v' after v (holds in every history that is at least read committed: the
  opposite order is a G1c cycle; Maelstrom's txn-rw-register checks with it);
* sequential keys / linearizable keys (`--sequential-keys`, `--linearizable-keys`): assuming
  each key is sequentially consistent / linearizable on its own, process / real-time order
  between transactions that touch a key orders the versions they saw.

Each source is added in that order; one that would make some key's version order cyclic is
left out, and the cycle is reported (cyclic-versions). From the version orders: ww (the ok
transactions that wrote v, then those that wrote a later v') and rw (the ok transactions that
read v, then those that wrote a later v'). Only a transaction's external reads (before it
writes the key) and final writes take part.

Found without the graph: internal inconsistency (a read disagrees with the transaction's own
earlier write or read of the key), aborted reads (G1a), intermediate reads (G1b) and lost
updates. See txn.py for the graph, the cycle kinds and the verdict.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.consistency import RW_REGISTER, consistency_models
from dsjepsen.checkers.graph import Digraph
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.txn import (
    FAIL,
    INFO,
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

CHECKER = RW_REGISTER
WRITE, READ = "w", "r"
_SCALAR = (int, str)
#: the version-order sources, in the order they are added
SOURCES = ("initial-state", "wfr-keys", "sequential-keys", "linearizable-keys")


class RwRegister:
    """One rw-register history, analysed: anomalies by kind, and who wrote and read what."""

    def __init__(self, txns: Txns) -> None:
        started = time.monotonic()
        self.txns = txns
        types = txns.types
        #: key -> value -> the transaction that wrote it (any type, any write of it)
        self.written: dict[Any, dict[Any, int]] = {}
        #: key -> value -> the ok transaction whose final write of the key it was (not nil)
        self.writers: dict[Any, dict[Any, int]] = {}
        #: key -> value -> ok transactions that read it before writing the key (external)
        self.readers: dict[Any, dict[Any, list[int]]] = {}
        #: (key, value read, value written after) of ok transactions: writes follow reads
        self.wfr: list[tuple[Any, Any, Any]] = []
        self.cases: dict[str, list[dict[str, Any]]] = {}
        #: key -> value -> ok transactions that read it after writing the key (internal)
        later_reads: dict[Any, dict[Any, list[int]]] = {}
        intermediate: dict[tuple[Any, Any], int] = {}
        lost: dict[tuple[Any, Any], list[int]] = {}
        written, writers, readers = self.written, self.writers, self.readers
        for t in range(len(txns)):
            typ = types[t]
            ext_r: dict[Any, Any] = {}
            ext_w: dict[Any, Any] = {}
            state: dict[Any, Any] = {}
            internal = False
            for mop in txns.mops[t]:
                try:
                    f, k, v = mop
                except (TypeError, ValueError):
                    f, k, v = self._odd_mop(t, mop)
                if type(k) not in _SCALAR:
                    k = self._hashable(t, k)
                if v is not None and type(v) not in _SCALAR:
                    v = self._hashable(t, v)
                if f == WRITE or f == "write":
                    if v is not None:
                        d = written.get(k)
                        if d is None:
                            written[k] = {v: t}
                        elif v in d:
                            raise self._duplicate(t, k, v, d[v])
                        else:
                            d[v] = t
                    if k in ext_w:
                        intermediate[(k, ext_w[k])] = t
                    elif typ == OK and k in ext_r:
                        lost.setdefault((k, ext_r[k]), []).append(t)
                    ext_w[k] = v
                    state[k] = v
                elif f == READ or f == "read":
                    if typ != OK:
                        continue  # only an ok transaction's reads say what it saw
                    expected = state.get(k)
                    if expected is not None and expected != v and not internal:
                        internal = True
                        self._internal(t, k, v, expected)
                    state[k] = v
                    if k in ext_w or k in ext_r:
                        index = later_reads
                    else:
                        ext_r[k] = v
                        index = readers
                    rk = index.get(k)
                    if rk is None:
                        index[k] = {v: [t]}
                    else:
                        rk.setdefault(v, []).append(t)
                else:
                    raise self._unknown(t, mop)
            if typ == OK:
                for k, v in ext_w.items():
                    if v is None:
                        # a write of nil reads like the initial state: no read names it
                        continue
                    d = writers.get(k)
                    if d is None:
                        writers[k] = {v: t}
                    else:
                        d[v] = t
                    if k in ext_r and ext_r[k] is not None:
                        self.wfr.append((k, ext_r[k], v))
        self._reads_of_others(readers, later_reads, intermediate)
        for (k, v), ts in lost.items():
            if len(ts) > 1:
                self._case(
                    "lost-update",
                    {
                        "op_id": txns.ops[ts[0]].id,
                        "txns": [describe(txns, t) for t in ts],
                        "key": k,
                        "value": v,
                        "message": ", ".join(name(txns, t) for t in ts)
                        + f" all read key {shown(k)} = {shown(v)} and each wrote it, yet "
                        "each committed: every update but one was lost",
                    },
                )
        self.read_seconds = time.monotonic() - started

    def _internal(self, t: int, k: Any, v: Any, expected: Any) -> None:
        txns = self.txns
        self._case(
            "internal",
            {
                "op_id": txns.ops[t].id,
                "txn": describe(txns, t),
                "key": k,
                "read": v,
                "expected": expected,
                "message": f"{name(txns, t)} read key {shown(k)} = {shown(v)}, but its own "
                f"earlier micro-ops on that key left it {shown(expected)} (internal "
                "inconsistency)",
            },
        )

    def _reads_of_others(
        self,
        readers: Mapping[Any, Mapping[Any, list[int]]],
        later_reads: Mapping[Any, Mapping[Any, list[int]]],
        intermediate: Mapping[tuple[Any, Any], int],
    ) -> None:
        """Aborted reads (of a value only a failed transaction wrote) and intermediate reads
        (of a value its writer overwrote), by ok transactions."""
        txns = self.txns
        suspects = {
            (k, v): w
            for k, d in self.written.items()
            for v, w in d.items()
            if txns.types[w] == FAIL
        }
        suspects.update(intermediate)
        for (k, v), w in suspects.items():
            rs = readers.get(k, {}).get(v, []) + later_reads.get(k, {}).get(v, [])
            for t in rs:
                if t == w:
                    continue
                if txns.types[w] == FAIL:
                    self._case(
                        "G1a",
                        {
                            "op_id": txns.ops[t].id,
                            "txn": describe(txns, t),
                            "writer": describe(txns, w),
                            "key": k,
                            "value": v,
                            "message": f"{name(txns, t)} read key {shown(k)} = {shown(v)}, "
                            f"written only by the failed {name(txns, w)} (aborted read)",
                        },
                    )
                if intermediate.get((k, v)) == w:
                    self._case(
                        "G1b",
                        {
                            "op_id": txns.ops[t].id,
                            "txn": describe(txns, t),
                            "writer": describe(txns, w),
                            "key": k,
                            "value": v,
                            "message": f"{name(txns, t)} read key {shown(k)} = {shown(v)}, "
                            f"which {name(txns, w)} wrote and then overwrote: a state no "
                            "committed transaction left (intermediate read)",
                        },
                    )

    def external(self, t: int) -> tuple[dict[Any, Any], dict[Any, Any]]:
        """(external reads, final writes) of one transaction: key -> value; reads only for an
        ok transaction, nothing for a failed one."""
        typ = self.txns.types[t]
        ext_r: dict[Any, Any] = {}
        ext_w: dict[Any, Any] = {}
        if typ == FAIL:
            return ext_r, ext_w
        for mop in self.txns.mops[t]:
            f, k = mop[0], hashable(mop[1])
            v = hashable(mop[2]) if len(mop) > 2 else None
            if f in (WRITE, "write"):
                ext_w[k] = v
            elif typ == OK and k not in ext_w and k not in ext_r:
                ext_r[k] = v
        return ext_r, ext_w

    # -----------------------------------------------------------------------------------------
    # Reading micro-ops

    def _odd_mop(self, t: int, mop: Any) -> tuple[Any, Any, Any]:
        if not isinstance(mop, list | tuple):
            raise mop_error(self.txns, t, f"micro-op is not a list: {_brief(mop)}")
        if len(mop) == 2 and mop[0] in (READ, "read"):
            return READ, mop[1], None
        if mop and mop[0] not in (WRITE, READ, "write", "read"):
            raise self._unknown(t, mop)
        raise mop_error(
            self.txns,
            t,
            f"micro-op {_brief(mop)} has {len(mop)} elements; rw-register takes "
            "[w key value] and [r key value]",
        )

    def _unknown(self, t: int, mop: Any) -> InputError:
        if not isinstance(mop, list | tuple):
            return mop_error(self.txns, t, f"micro-op is not a list: {_brief(mop)}")
        return mop_error(
            self.txns,
            t,
            f"unknown micro-op {printable(repr(mop[0] if mop else mop))} in {_brief(mop)} "
            "(rw-register takes w and r, or write and read)",
        )

    def _hashable(self, t: int, x: Any) -> Any:
        try:
            return hashable(x)
        except TypeError:
            raise mop_error(self.txns, t, f"{_brief(x)} cannot be a key or value") from None

    def _duplicate(self, t: int, k: Any, v: Any, first: int) -> InputError:
        return mop_error(
            self.txns,
            t,
            f"value {shown(v)} is written to key {shown(k)} more than once (also at line "
            f"{self.txns.line(first)}); rw-register needs every written value unique per key",
        )

    def _case(self, kind: str, case: dict[str, Any]) -> None:
        self.cases.setdefault(kind, []).append(case)

    # -----------------------------------------------------------------------------------------
    # Version orders

    def version_graphs(self, sources: Sequence[str]) -> tuple[dict[Any, Digraph], list[str]]:
        """Each key's version graph from the sources asked for (SOURCES order), for the keys
        a source beyond the initial state orders (for the others, nil before every version is
        all there is, and it is not stored); a source that makes some key's graph cyclic is
        left out and its cycles become cyclic-versions cases. Returns the graphs and the
        sources used."""
        graphs: dict[Any, Digraph] = {}
        used: list[str] = ["initial-state"]
        for source in SOURCES[1:]:
            if source not in sources:
                continue
            by_key: dict[Any, list[tuple[Any, Any]]] = {}
            for k, a, b in self._source_edges(source):
                if a != b:
                    by_key.setdefault(k, []).append((a, b))
            trial: dict[Any, Digraph] = {}
            for k, pairs in by_key.items():
                g = _copy(graphs[k]) if k in graphs else self._initial(k)
                for a, b in pairs:
                    g.add_edge(a, b)
                trial[k] = g
            cyclic = [(k, comp) for k, g in trial.items() for comp in g.strongly_connected()]
            if cyclic:
                for k, comp in cyclic:
                    self._case(
                        "cyclic-versions",
                        {
                            "key": k,
                            "scc": comp,
                            "sources": [*used, source],
                            "message": f"the version order of key {shown(k)} would be cyclic "
                            f"({' -> '.join(shown(v) for v in comp)} -> {shown(comp[0])}) by "
                            f"{', '.join([*used, source])}",
                        },
                    )
                continue
            graphs.update(trial)
            used.append(source)
        return graphs, used

    def _initial(self, k: Any) -> Digraph:
        """Key k's version graph from the initial state alone: nil before every version
        written (ok or info) or read (ok)."""
        g = Digraph()
        g.add_node(None)
        values = set(self.readers.get(k, ())) | set(self.writers.get(k, ()))
        values |= {v for v, w in self.written.get(k, {}).items() if self.txns.types[w] != FAIL}
        for v in values:
            if v is not None:
                g.add_edge(None, v)
        return g

    def _source_edges(self, source: str) -> list[tuple[Any, Any, Any]]:
        if source == "wfr-keys":
            return list(self.wfr)
        if source == "sequential-keys":
            return self._order_edges(self._process_successors())
        return self._order_edges(self._realtime_successors())

    def _touching(self, t: int) -> dict[Any, tuple[Any, Any]]:
        """key -> (the last value t left the key in, the first value t saw of it) for each
        key t touched externally (an info transaction: its writes only)."""
        r, w = self.external(t)
        out: dict[Any, tuple[Any, Any]] = {}
        for k in set(r) | set(w):
            if k in w and w[k] is None:
                continue  # a write of nil is no version we can tell from the initial state
            out[k] = (w[k] if k in w else r[k], r[k] if k in r else w[k])
        return out

    def _order_edges(self, successors: Mapping[Any, list[tuple[int, int]]]) -> list[Any]:
        """Version edges from an order on the transactions touching each key: the value a
        transaction left precedes the first value the next one saw."""
        out: list[tuple[Any, Any, Any]] = []
        cache: dict[int, dict[Any, tuple[Any, Any]]] = {}
        for k, pairs in successors.items():
            for a, b in pairs:
                ta = cache[a] if a in cache else cache.setdefault(a, self._touching(a))
                tb = cache[b] if b in cache else cache.setdefault(b, self._touching(b))
                out.append((k, ta[k][0], tb[k][1]))
        return out

    def _by_key(self) -> dict[Any, list[int]]:
        keys: dict[Any, list[int]] = {}
        for t in range(len(self.txns)):
            if self.txns.types[t] == FAIL:
                continue
            for k in self._touching(t):
                keys.setdefault(k, []).append(t)
        return keys

    def _process_successors(self) -> dict[Any, list[tuple[int, int]]]:
        """Consecutive ok transactions of one process touching each key."""
        out: dict[Any, list[tuple[int, int]]] = {}
        for k, ts in self._by_key().items():
            last: dict[Any, int] = {}
            for t in ts:
                if self.txns.types[t] != OK:
                    continue
                p = self.txns.ops[t].process
                if p in last:
                    out.setdefault(k, []).append((last[p], t))
                last[p] = t
        return out

    def _realtime_successors(self) -> dict[Any, list[tuple[int, int]]]:
        """For each key, the pairs a < b in real time among the transactions touching it with
        no such transaction c completed between them (a ok; b ok or info, with an
        invocation): what is left of real-time order once the other transactions are taken
        out."""
        ops = self.txns.ops
        types = self.txns.types
        out: dict[Any, list[tuple[int, int]]] = {}
        for k, ts in self._by_key().items():
            known = [t for t in ts if ops[t].invoke is not ops[t].complete]
            targets = sorted((ops[t].call, t) for t in known)
            calls = [c for c, _t in targets]
            done = sorted((ops[t].call, ops[t].ret or 0) for t in known if types[t] == OK)
            dcalls = [c for c, _r in done]
            sufmin = [1 << 62] * (len(done) + 1)
            for i in range(len(done) - 1, -1, -1):
                sufmin[i] = min(sufmin[i + 1], done[i][1])
            for a in ts:
                r = ops[a].ret
                if types[a] != OK or r is None:
                    continue
                m = sufmin[bisect.bisect_right(dcalls, r)]
                lo, hi = bisect.bisect_right(calls, r), bisect.bisect_left(calls, m)
                out.setdefault(k, []).extend((a, targets[i][1]) for i in range(lo, hi))
        return out

    # -----------------------------------------------------------------------------------------
    # The graph

    def edges(self, graphs: Mapping[Any, Digraph], variants: int) -> Edges:
        """wr edges from the unique writes, ww and rw from the version graphs (ok transactions
        only), plus process or realtime order."""
        txns = self.txns
        edges = Edges()
        add = edges.add
        writers, readers = self.writers, self.readers
        for k, by_value in readers.items():
            wk = writers.get(k)
            if not wk:
                continue
            for v, rs in by_value.items():
                w = wk.get(v)
                if w is not None:
                    for r in rs:
                        if r != w:
                            add(w, r, WR)
        for k, wk in writers.items():
            g = graphs.get(k)
            rk = readers.get(k, {})
            if g is None:
                # the initial state only: whoever read nil precedes every write
                nil = rk.get(None)
                if nil:
                    for v, b in wk.items():
                        if v is not None:
                            for a in nil:
                                if a != b:
                                    add(a, b, RW)
                continue
            for v1, v2, _lab in g.edges():
                b = wk.get(v2)
                if b is None:
                    continue
                a = wk.get(v1)
                if a is not None and a != b:
                    add(a, b, WW)
                for a in rk.get(v1, ()):
                    if a != b:
                        add(a, b, RW)
        if variants & REALTIME:
            realtime_edges(txns, edges)
        elif variants & PROCESS:
            process_edges(txns, edges)
        self.graphs = graphs
        return edges

    def _version_edge(self, k: Any, v1: Any, v2: Any) -> bool:
        g = self.graphs.get(k)
        if g is None:
            return v1 is None and v2 is not None
        return g.has_edge(v1, v2)

    def explain(self, a: int, b: int, rel: int) -> dict[str, Any]:
        """Why a < b by `rel`, in words ({a} and {b} stand for the transactions' names)."""
        ra, wa = self.external(a)
        rb, wb = self.external(b)
        if rel == WR:
            for k, v in wa.items():
                if rb.get(k, _NONE) == v:
                    return {
                        "key": k,
                        "value": v,
                        "text": f"{{b}} read key {shown(k)} = {shown(v)}, which {{a}} wrote, so "
                        "{a} < {b} (wr)",
                    }
        elif rel in (WW, RW):
            for k, v in (wa if rel == WW else ra).items():
                v2 = wb.get(k, _NONE)
                if v2 is _NONE or not self._version_edge(k, v, v2):
                    continue
                if rel == WW:
                    text = (
                        f"{{a}} wrote key {shown(k)} = {shown(v)} and {{b}} wrote {shown(v2)}, "
                        "the next version, so {a} < {b} (ww)"
                    )
                elif v is None:
                    text = (
                        f"{{a}} read key {shown(k)} = nil (never written) and {{b}} wrote "
                        f"{shown(v2)}, so {{a}} < {{b}} (rw)"
                    )
                else:
                    text = (
                        f"{{a}} read key {shown(k)} = {shown(v)} and {{b}} wrote {shown(v2)}, "
                        "the next version, so {a} < {b} (rw)"
                    )
                return {"key": k, "value": v, "value'": v2, "text": text}
        return order_step(self.txns, a, b, rel)

    def check(
        self, models: Sequence[str], sources: Sequence[str], deadline: float, started: float
    ) -> CheckResult:
        graphs, used = self.version_graphs(sources)  # cases before the copy below
        variants = needed_variants(models)
        t0 = time.monotonic()
        edges = self.edges(graphs, variants)
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
            priority=(WR, WW, RW, PROCESS, REALTIME),  # Elle explains rw-register edges so
        )
        for kind, cs in found.cases.items():
            cases.setdefault(kind, []).extend(cs)
        details = summary(txns, edges, found, started - self.read_seconds)
        details["keys"] = len(set(self.written) | set(self.readers))
        details["version_sources"] = used
        details["phase_seconds"] = {
            "micro-ops": round(self.read_seconds, 3),
            "edges": round(edges_s, 3),
            "components": round(found.components_seconds, 3),
            "cycles": round(found.search_seconds, 3),
        }
        return verdict(CHECKER, models, cases, details)


_NONE = object()


def _copy(g: Digraph) -> Digraph:
    c = Digraph()
    c.add_nodes(g.nodes())
    for a, b, lab in g.edges():
        c.add_edge(a, b, lab)
    return c


def _brief(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return printable(text if len(text) <= limit else text[: limit - 3] + "...")


def version_sources(extra: Mapping[str, Any]) -> tuple[str, ...]:
    """The version-order sources a context asks for: initial state always, the others by
    `extra` flags wfr_keys, sequential_keys, linearizable_keys."""
    return ("initial-state",) + tuple(s for s in SOURCES[1:] if extra.get(s.replace("-", "_")))


def check_rw_register(
    history: History,
    consistency: str | Sequence[str] | None = None,
    time_limit: float | None = None,
    sources: Sequence[str] = ("initial-state",),
) -> CheckResult:
    """The rw-register verdict for the given models (default: strict-serializable), with the
    version orders the given sources infer."""
    started = time.monotonic()
    models = consistency_models(consistency)
    deadline = started + (time_limit if time_limit is not None else SEARCH_SECONDS)
    with gc_paused():
        return RwRegister(collect_txns(history, CHECKER)).check(models, sources, deadline, started)


class RwRegisterChecker(Checker):
    """Elle's rw-register checker for the context's consistency models; `context.extra` may
    turn on wfr_keys, sequential_keys, linearizable_keys (see the module docstring)."""

    name: ClassVar[str] = CHECKER
    orphans: ClassVar[bool] = True
    description: ClassVar[str] = (
        "transactions of write / read register micro-ops against Elle's isolation models"
    )

    def __init__(self) -> None:
        self._read: tuple[tuple[int, int], RwRegister] | None = None

    def _analysis(self, history: History) -> RwRegister:
        stamp = (id(history.ops), len(history.ops))
        if self._read is None or self._read[0] != stamp:
            with gc_paused():
                self._read = (stamp, RwRegister(collect_txns(history, CHECKER)))
        return self._read[1]

    def validate_input(self, history: History, context: CheckContext) -> None:
        consistency_models(context.consistency)
        self._analysis(history)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        started = time.monotonic()
        models = consistency_models(context.consistency)
        analysis = self._analysis(history)
        self._read = None
        limit = context.time_limit if context.time_limit is not None else SEARCH_SECONDS
        with gc_paused():
            return analysis.check(models, version_sources(context.extra), started + limit, started)


__all__ = ["INFO", "RwRegister", "RwRegisterChecker", "check_rw_register"]
