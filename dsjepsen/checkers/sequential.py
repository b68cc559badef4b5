"""Sequential consistency: is there one total order of all the operations, consistent with each
process's own order, that obeys the model?

Unlike linearizability, real time between processes does not matter, only each process's order
of its own ops. Jepsen's meaning of indeterminate ops holds: a `fail` op never took effect (it
is dropped); an `info` op (or one never completed) may take effect anywhere after its process's
previous op, or never (indeterminate reads constrain nothing and are dropped).

Scope. Sequential consistency is not a local property: every key can be sequentially
consistent on its own while no single order serves all keys at once (the store-buffer history
"p0 wrote x=1, then read y=nil; p1 wrote y=1, then read x=nil"). So a per-key check is a
necessary condition only: a per-key violation is a real violation, a per-key pass is not a
proof. The checker therefore decides in this order, cheapest first:

1. Linearizability (`check_linearizable`, per key, which is exact for the whole history because
   linearizability is local). A linearizable history is sequentially consistent: done, scope
   "whole-history".
2. A graph pass in the spirit of Elle, over all keys together: process order, reads-from (exact
   on keys whose written values are unique, reads and writes only), and the write order those
   reads imply (a write that must precede a read of v precedes the write of v; a write that the
   write of v must precede comes after the read). Keys of get / put / append add what each get's
   string says when it spells one sequence of written values (`_kv_plan`): the writers it saw
   precede it, in the order it saw them, and the appends of its epoch it did not see (every
   append and put, for a get that no put preceded) follow it. Every edge is a constraint any
   sequentially consistent order obeys, so a cycle proves a violation and is the explanation
   (one key's cycle is looked for first, and shortened: it reads as one object's story). No
   cycle proves nothing.
3. The exact search per key: depth-first over the next op of each process (one pointer per
   process), memoised on (pointers, model state), indeterminate ops applied or skipped. A key
   that fails is a violation, explained like a non-linearizable key: the process orders, the op
   that cannot be placed and the longest consistent prefix.
3b. The per-key orders found, merged (`merged_witnesses`): keys touch disjoint state, so when
   the graph of every key's order (its state changes in order, each read between the change
   before it and the one after it) and every process's order has no cycle, a topological order
   of it is one legal order of the whole history: valid, scope "whole-history", method "per-key
   orders merged". If the first orders cross, orders placing indeterminate ops as late as they
   can are tried. No merge proves nothing: step 4 decides.
4. The same search over all keys together (the state is the tuple of every key's state), within
   the time budget (`context.time_limit`, default WHOLE_SECONDS) and a bound on memoised states
   (`max_states`). Pass: valid, scope "whole-history". Fail: invalid.

When step 4 does not fit its budget the verdict is `unknown` with details["scope"] = "per-key"
and the reason "sequentially consistent per key; ...": we chose unknown over valid because a
per-key pass does not imply the property that was asked for, and Jepsen's "unknown" is what a
checker says when it could not decide. `SequentialChecker(accept_per_key=True)` reports such a
history valid instead (scope still "per-key"), for runs that want the necessary condition only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.graph import Digraph
from dsjepsen.checkers.linearizable import (
    check_linearizable,
    op_dict,
    partition_key,
    resolve_model,
    validate_operations,
)
from dsjepsen.checkers.models import ILLEGAL, NOT_GIVEN, UNKNOWN, Model, show
from dsjepsen.checkers.result import CheckResult
from dsjepsen.errors import InputError
from dsjepsen.history import History, Operation

CHECKER = "sequential"
#: memoised (pointers, state) pairs, over all the searches of one check (about 150 B each)
DEFAULT_MAX_STATES = 1_000_000
#: seconds for the whole check when the context gives no time limit
WHOLE_SECONDS = 10.0
#: seconds the linearizability pre-check may take (it is only a shortcut)
LINEARIZABLE_SECONDS = 2.0
#: the write-order inference of the graph pass runs on histories up to this many ops
GRAPH_INFERENCE_OPS = 2000
#: longest prefix entries kept in an explanation (the newest)
MAX_PREFIX = 200
#: the graph pass looks for a shorter cycle from at most this many of a found cycle's nodes
CYCLE_STARTS = 24
#: longest op description in a cycle's sentence (longer ones keep their start and end)
ACT_CHARS = 80

#: what each scope of a verdict means, in words (the CLI and the report print these)
SCOPES = {
    "whole-history": "whole-history (one order of all the ops, all keys together)",
    "per-key": "per key only (sequential consistency is not local: a necessary condition)",
}


class _OutOfBudget(Exception):
    """The search ran past its time or state bound."""


@dataclass(slots=True)
class _SOp:
    """One op, ready for the search."""

    op: Operation
    key: Any  # partition key
    kidx: int  # index of the key in the state tuple (whole-history search)
    f: str
    value: Any
    output: Any  # UNKNOWN for indeterminate ops
    trans: Callable[[Any], Any]
    det: bool
    #: its f never changes the state (the model's read_fs)
    pure: bool


@dataclass
class _Failure:
    """Why a search failed: the op that cannot be placed, in which states, after which prefix."""

    op: _SOp
    prefix: list[tuple[_SOp, Any]]
    states: list[Any]
    next_ops: list[_SOp] = field(default_factory=list)
    #: the op is illegal in the state reached (else it is legal there, but every way on fails)
    blocked: bool = True


def _prepare(operations: Sequence[Operation], model: Model, source: str) -> list[_SOp]:
    """Drop `fail` ops and indeterminate reads; normalise values once (model.prepare)."""
    keys: dict[Any, int] = {}
    out: list[_SOp] = []
    for o in operations:
        if o.type == "fail":
            continue
        det = o.ret is not None
        if not det and o.f in model.read_fs:
            continue
        try:
            value, output = model.prepare(o.f, o.value, o.output if det else UNKNOWN)
        except (ValueError, TypeError) as e:
            line = o.invoke.line if o.invoke.line is not None else o.call + 1
            raise InputError(f"{o.f} op: {e}", source, line) from None
        k = partition_key(o.key)
        kidx = keys.setdefault(k, len(keys))
        out.append(
            _SOp(
                o,
                k,
                kidx,
                o.f,
                value,
                output,
                model.transition(o.f, value, output),
                det,
                o.f in model.read_fs,
            )
        )
    return out


def _by_process(ops: Sequence[_SOp]) -> list[list[_SOp]]:
    """Each process's ops in its own order (invocation order; `operations()` keeps it)."""
    procs: dict[Any, list[_SOp]] = {}
    for p in sorted(ops, key=lambda p: p.op.call):
        procs.setdefault(p.op.process, []).append(p)
    return list(procs.values())


# ---------------------------------------------------------------------------------------------
# The exact search


def search(
    procs: list[list[_SOp]],
    init: Any,
    step: Callable[[_SOp, Any], Any],
    deadline: float,
    budget: list[int],
    witness: list[_SOp] | None = None,
    late_info: bool = False,
) -> _Failure | None:
    """Depth-first over the next op of each process, memoised on (pointers, state).

    On success, `witness` (when given) receives the order found: every op that took effect,
    in the order placed (indeterminate ops left out never took effect). `late_info` tries
    indeterminate ops only after every determinate next op, so that the order found makes
    them take effect as late as it can (a write that timed out often committed much later).

    None when some order places every determinate op (indeterminate ops are applied or left
    out), else the failure at the longest prefix reached. `budget[0]` is the number of states
    still allowed to be memoised (shared by the searches of one check); past it, or past
    `deadline`, raises _OutOfBudget. Iterative, so long histories do not hit Python's recursion
    limit; the prefix is a linked list of (op, state, parent, depth) nodes, so remembering the
    longest one costs nothing. Reductions, each sound:

    * Success needs only the determinate ops: an indeterminate op after a process's last
      determinate op may simply never take effect, so no move is spent on leaving it out.
    * A determinate op of a read-only f (the model's `read_fs`) that is legal now is taken at
      once, with no alternative: in any completion that takes it later, moving it to the
      front is legal (it is its process's next op, the ops it jumps over are other processes'
      and see the same states, and it changes no state wherever it stands). Only read-only
      fs qualify: a write of the current value is a no-op here but not where it stood later.
    * An indeterminate op that would leave the state as it is is never applied (leaving it out
      does the same and keeps more options), and of several indeterminate ops of one kind
      (key, f, value), each the last op of its process, only the first is tried: the others
      are interchangeable with it.
    * Next ops are tried in invocation order, so histories that are nearly linearizable find
      their witness early.
    """
    n = len(procs)
    ends = tuple(len(p) for p in procs)
    need = tuple(max((j + 1 for j, p in enumerate(ops) if p.det), default=0) for ops in procs)
    dead: set[tuple[tuple[int, ...], Any]] = set()
    start = (tuple(0 for _ in procs), init)
    best: tuple[Any, tuple[int, ...], Any] = (None, start[0], init)  # node, pointers, state
    best_depth = -1
    counter = 0

    def finished(ptrs: tuple[int, ...]) -> bool:
        return all(ptrs[i] >= need[i] for i in range(n))

    def children(ptrs: tuple[int, ...], s: Any) -> list[tuple[tuple[int, ...], Any, _SOp | None]]:
        out: list[tuple[tuple[int, ...], Any, _SOp | None]] = []
        later: list[tuple[tuple[int, ...], Any, _SOp | None]] = []
        maybe = later if late_info else out
        live = sorted((procs[i][ptrs[i]].op.call, i) for i in range(n) if ptrs[i] < ends[i])
        kinds: set[tuple[Any, ...]] = set()
        for _call, i in live:
            j = ptrs[i]
            p = procs[i][j]
            nptrs = ptrs[:i] + (j + 1,) + ptrs[i + 1 :]
            s2 = step(p, s)
            if p.det:
                if s2 is ILLEGAL:
                    continue
                if p.pure:
                    return [(nptrs, s2, p)]  # take it now (second reduction)
                out.append((nptrs, s2, p))
                continue
            last = j == ends[i] - 1 and j >= need[i]
            if last:
                kind = (p.kidx, p.f, p.value)
                if kind in kinds:
                    continue
                kinds.add(kind)
            if s2 is not ILLEGAL and s2 != s:
                maybe.append((nptrs, s2, p))
            if j < need[i]:
                maybe.append((nptrs, s, None))  # it never took effect
        return out + later

    if finished(start[0]):
        return None
    stack: list[Any] = [(start, iter(children(*start)), None, 0)]
    while stack:
        (ptrs, s), it, node, depth = stack[-1]
        nxt = next(it, None)
        if nxt is None:
            dead.add((ptrs, s))
            stack.pop()
            continue
        nptrs, s2, p = nxt
        if finished(nptrs):
            if witness is not None:
                path = node if p is None else (p, s2, node)
                while path is not None:
                    witness.append(path[0])
                    path = path[2]
                witness.reverse()
            return None
        if (nptrs, s2) in dead:
            continue
        counter += 1
        if not counter & 1023 and time.monotonic() > deadline:
            raise _OutOfBudget("time")
        budget[0] -= 1
        if budget[0] < 0:
            raise _OutOfBudget("states")
        child = node if p is None else (p, s2, node)
        cdepth = depth if p is None else depth + 1
        if cdepth > best_depth:
            best_depth, best = cdepth, (child, nptrs, s2)
        stack.append(((nptrs, s2), iter(children(nptrs, s2)), child, cdepth))
    node, ptrs, s = best
    prefix: list[tuple[_SOp, Any]] = []
    while node is not None:
        prefix.append((node[0], node[1]))
        node = node[2]
    prefix.reverse()
    nexts = [procs[i][ptrs[i]] for i in range(n) if ptrs[i] < ends[i]]
    # the op to blame: a determinate next op the state reached forbids, earliest invoked
    illegal = [p for p in nexts if p.det and step(p, s) is ILLEGAL]
    det_next = illegal or [p for p in nexts if p.det] or nexts
    op = min(det_next, key=lambda p: p.op.call)
    return _Failure(op, prefix, [s], nexts, blocked=bool(illegal))


def prune_unobservable(ops: list[_SOp], model: Model) -> list[_SOp]:
    """Drop indeterminate writes / cas whose written value nobody can observe (keys whose every
    op has a `register_roles` role), iterated to a fixpoint as in linearizable.py (d).

    Sound for sequential consistency too: in the state v such an op leaves, no read or cas can
    be legal (none observes v), so the next op of the order is a write that overwrites v; the
    order without the op reaches the same states, and removing an op only relaxes process
    order.
    """
    roles = model.register_roles
    by_key: dict[Any, list[_SOp]] = {}
    for p in ops:
        by_key.setdefault(p.key, []).append(p)
    drop: set[int] = set()
    for kops in by_key.values():
        if not roles or not all(p.f in roles for p in kops):
            continue
        observed = {model.start()}
        for p in kops:
            if p.det and roles[p.f] == "read":
                observed.add(p.output)
            elif p.det and roles[p.f] == "cas":
                observed.add(p.value[0])
        maybe = [p for p in kops if not p.det and roles[p.f] != "read"]
        changed = True
        while changed:
            changed = False
            rest = []
            for p in maybe:
                cas = roles[p.f] == "cas"
                if (p.value[1] if cas else p.value) in observed:
                    if cas and p.value[0] not in observed:
                        observed.add(p.value[0])
                        changed = True
                else:
                    rest.append(p)
            maybe = rest
        drop |= {id(p) for p in maybe}
    return [p for p in ops if id(p) not in drop]


# ---------------------------------------------------------------------------------------------
# The graph pass


#: characters of distinct get outputs the graph pass parses into written values, over all keys
#: of one check (about 3 us each; the gets past it add nothing, which is sound). Porcupine's
#: c50-bad has 37,000.
KV_PARSE_CHARS = 100_000
#: most "miss" edges the graph pass adds over all get / put / append keys (a get before every
#: append it did not see is quadratic in append-only histories; leaving edges out is sound)
KV_MISS_EDGES = 40_000


@dataclass
class _KvPlan:
    """What one get/put/append key adds to the graph pass: the indeterminate writers some get
    saw (they happened), and edges (a, b, why) every sequentially consistent order obeys."""

    observed: set[int]
    edges: list[tuple[_SOp, _SOp, str]]


def _parse_values(out: str, values: set[str], lengths: list[int]) -> list[str] | None:
    """`out` as a sequence of written values, when exactly one sequence spells it; None when
    none or several do (then the get says nothing certain about which values it saw)."""
    n = len(out)
    ways = [0] * (n + 1)  # ways[i]: parses of out[i:], counted up to 2
    step = [0] * (n + 1)
    ways[n] = 1
    for i in range(n - 1, -1, -1):
        for length in lengths:
            j = i + length
            if j > n or not ways[j] or out[i:j] not in values:
                continue
            ways[i] = min(2, ways[i] + ways[j])
            step[i] = length
    if ways[0] != 1:
        return None
    toks, i = [], 0
    while i < n:
        toks.append(out[i : i + step[i]])
        i += step[i]
    return toks


def _kv_plan(
    kops: list[_SOp], roles: Mapping[str, str], budget: list[int] | None = None
) -> _KvPlan | None:
    """The graph pass on one key of get / put / append (the model's `string_roles`): the state
    is the last put's value followed by the appends since, so a get whose output spells one
    sequence of written values names its epoch (the put it starts with, or none) and the
    appends before it, in order. With W(v) the op that wrote value v when only one op did:

    * rf: W(v) precedes every get whose output contains v (added for the last such v, and
      before each unknown writer: the seq edges imply the rest);
    * seq: in a get's output, W(v) precedes W(v') for consecutive v, v' (the base put first);
    * miss, no put: a get whose output starts with an appended value (or is "") has no put
      before it, so every put comes after it, and so does every append whose value it does not
      contain (had it come before, with no put between, the get would contain it);
    * miss, epoch of put P: an append W(v) that some get saw after P's value happened after P
      and before the next put; a get of that epoch not containing v precedes it.

    Every edge holds in every sequentially consistent order of the key (values are told apart
    by the op that wrote them only when one op did; gets that do not parse one way, or whose
    first value two ops wrote, add nothing), so a cycle through them is a proof. None when the
    key has other ops or empty / non-string values. `budget` = [miss edges, characters to
    parse] still allowed, shared by the keys of one check and decremented.
    """
    if budget is None:
        budget = [KV_MISS_EDGES, KV_PARSE_CHARS]
    if not roles or not all(p.f in roles for p in kops):
        return None
    writers: dict[str, list[_SOp]] = {}
    gets: list[_SOp] = []
    for p in kops:
        role = roles[p.f]
        if role == "get":
            if p.det:
                if not isinstance(p.output, str):
                    return None
                gets.append(p)
            continue
        if not isinstance(p.value, str) or not p.value:
            return None
        writers.setdefault(p.value, []).append(p)
    only = {v: ws[0] for v, ws in writers.items() if len(ws) == 1}
    lengths = sorted({len(v) for v in writers})
    values = set(writers)
    # each get: (get, base put or None, appended values in order)
    seen: list[tuple[_SOp, _SOp | None, list[str]]] = []
    parses: dict[str, list[str] | None] = {}
    for g in gets:
        out = g.output
        if out not in parses:
            if len(out) > budget[1]:
                continue
            budget[1] -= len(out)
            parses[out] = _parse_values(out, values, lengths)
        toks = parses[out]
        if toks is None:
            continue
        if not toks:
            seen.append((g, None, []))
            continue
        first = writers[toks[0]]
        if all(roles[w.f] == "append" for w in first):
            base = None
        elif toks[0] in only:
            base = only[toks[0]]
        else:
            continue  # which op started the value is not known
        appended = toks[1:] if base is not None else toks
        if any(roles[w.f] == "put" for v in appended for w in writers[v]):
            continue  # a put's value past the start: impossible, left to the search to say
        seen.append((g, base, appended))
    observed = {id(only[v]) for _g, base, app in seen for v in app if v in only}
    observed |= {id(base) for _g, base, _app in seen if base is not None}
    edges: list[tuple[_SOp, _SOp, str]] = []
    in_epoch: dict[int, set[str]] = {}
    pairs: set[tuple[int, int]] = set()
    for g, base, appended in seen:
        chain = ([base] if base is not None else []) + [only.get(v) for v in appended]
        # W(v) -> g for each v follows from the seq edges but across an ambiguous writer
        # (None in the chain): only the writers right before a gap, and the last, need rf
        for n, w in enumerate(chain):
            if w is not None and (n + 1 == len(chain) or chain[n + 1] is None):
                edges.append((w, g, "rf"))
        for a, b in zip(chain, chain[1:], strict=False):
            if a is not None and b is not None and (id(a), id(b)) not in pairs:
                pairs.add((id(a), id(b)))
                edges.append((a, b, "seq"))
        if base is not None:
            in_epoch.setdefault(id(base), set()).update(v for v in appended if v in only)
    for g, base, appended in seen:
        if budget[0] <= 0:
            break
        contained = set(appended)
        before = len(edges)
        if base is None:
            for v, ws in writers.items():
                for w in ws:
                    if roles[w.f] == "put" or v not in contained:
                        edges.append((g, w, "miss"))
        else:
            for v in in_epoch.get(id(base), ()):
                if v not in contained:
                    edges.append((g, only[v], "miss"))
        budget[0] -= len(edges) - before
    return _KvPlan(observed, edges)


def graph_cycle(ops: Sequence[_SOp], model: Model) -> list[tuple[_SOp, _SOp, str]] | None:
    """A cycle of ordering constraints every sequentially consistent order must obey, or None.

    Edges (each a necessary condition): process order; reads-from, on keys of reads and writes
    only (by `register_roles`) whose written values are unique and differ from the initial
    value, so each read names its write exactly; a read of the initial value precedes every
    write of its key; and the write order reads imply, iterated: if a read r of w's value has
    another write w2 that must precede r, then w2 precedes w; if w must precede w2, r precedes
    w2. An indeterminate write nobody reads is left out (it may never have happened). Keys of
    get / put / append (`string_roles`) add the edges of `_kv_plan`.
    """
    roles = model.register_roles
    init = model.start()
    by_key: dict[Any, list[_SOp]] = {}
    for p in ops:
        by_key.setdefault(p.key, []).append(p)
    exact: dict[Any, tuple[dict[Any, _SOp], list[_SOp]]] = {}
    for k, kops in by_key.items():
        if not all(roles.get(p.f) in ("read", "write") for p in kops):
            continue
        writes: dict[Any, _SOp] = {}
        unique = True
        for p in kops:
            if roles[p.f] == "write":
                if p.value in writes or p.value == init:
                    unique = False
                    break
                writes[p.value] = p
        if unique:
            reads = [p for p in kops if roles[p.f] == "read" and p.det]
            exact[k] = (writes, reads)
    budget = [KV_MISS_EDGES, KV_PARSE_CHARS]
    # the string edges assume every key starts empty (absent reads as "")
    string_roles = model.string_roles if model.starts_at_init else {}
    kv = [
        plan
        for kops in by_key.values()
        if (plan := _kv_plan(kops, string_roles, budget)) is not None and plan.edges
    ]
    if not exact and not kv:
        return None
    observed = {
        id(writes[r.output])
        for writes, reads in exact.values()
        for r in reads
        if r.output in writes
    }
    for plan in kv:
        observed |= plan.observed
    members = [p for p in ops if p.det or id(p) in observed]
    g = Digraph()
    g.add_nodes(range(len(members)))
    index = {id(p): n for n, p in enumerate(members)}

    def edge(a: _SOp, b: _SOp, reason: str) -> bool:
        ia, ib = index.get(id(a)), index.get(id(b))
        if ia is None or ib is None or ia == ib:
            return False
        return g.add_edge(ia, ib, reason)

    for proc in _by_process(members):
        for a, b in zip(proc, proc[1:], strict=False):
            edge(a, b, "process")
    pairs: list[tuple[_SOp, _SOp | None, list[_SOp]]] = []  # (read, its write, other writes)
    for writes, reads in exact.values():
        happened = [w for w in writes.values() if id(w) in index]
        for r in reads:
            if r.output == init:
                for w in happened:
                    edge(r, w, "init")
                pairs.append((r, None, happened))
            elif r.output in writes:
                w = writes[r.output]
                edge(w, r, "rf")
                pairs.append((r, w, [x for x in happened if x is not w]))
    for plan in kv:
        for a, b, reason in plan.edges:
            edge(a, b, reason)
    # one key's cycle first: it is shorter, and reads as one object's story
    for plan in kv:
        found = _key_cycle(plan, members, index)
        if found is not None:
            return found
    for _round in range(4 if len(members) <= GRAPH_INFERENCE_OPS else 0):
        if not g.is_acyclic():
            break
        added = False
        for r, w, others in pairs:
            if w is None:
                continue
            anc_r = g.ancestors(index[id(r)])
            desc_w = g.descendants(index[id(w)])
            for w2 in others:
                i2 = index[id(w2)]
                if i2 in anc_r:
                    added |= edge(w2, w, "ww")
                elif i2 in desc_w:
                    added |= edge(r, w2, "rw")
        if not added:
            break
    cycle = g.find_cycle()
    if cycle is None:
        return None
    pairs_ = zip(cycle, cycle[1:] + cycle[:1], strict=True)
    return [(members[a], members[b], g.label(a, b)) for a, b in pairs_]


def _key_cycle(
    plan: _KvPlan, members: list[_SOp], index: dict[int, int]
) -> list[tuple[_SOp, _SOp, str]] | None:
    """A short cycle among one key's ops alone, or None: the key's edges, and process order
    between consecutive ops of one process on that key (a consequence of process order)."""
    mine = {id(p) for a, b, _r in plan.edges for p in (a, b) if id(p) in index}
    ops = [p for p in members if id(p) in mine]
    g = Digraph()
    for proc in _by_process(ops):
        for a, b in zip(proc, proc[1:], strict=False):
            g.add_edge(index[id(a)], index[id(b)], "process")
    for a, b, reason in plan.edges:
        ia, ib = index.get(id(a)), index.get(id(b))
        if ia is None or ib is None or ia == ib:
            continue
        g.add_edge(ia, ib, reason)
    if g.is_acyclic():  # linear, and much faster than looking for a cycle
        return None
    found = g.find_cycle() or []
    nodes = g.shortest_cycle(found, CYCLE_STARTS) or found
    pairs = list(zip(nodes, nodes[1:] + nodes[:1], strict=True))
    return [(members[a], members[b], g.label(a, b)) for a, b in pairs]


def _act(p: _SOp, model: Model) -> str:
    """ "wrote x=1", "read y=nil": one op in the words of a cycle."""
    key = "" if p.key is None else f"{p.key if isinstance(p.key, str) else show(p.key)}="
    role = model.register_roles.get(p.f)
    if role == "read":
        return f"read {key}{show(p.output)}"
    if role == "write":
        return f"wrote {key}{show(p.value)}"
    text = model.describe_op(p.f, p.value, p.output)
    if len(text) > ACT_CHARS:  # a get of a long string: its start and end say enough
        half = ACT_CHARS // 2
        text = f"{text[:half]}...{text[-half:]}"
    return f"{text} (key {show(p.key)})" if p.key is not None else text


def describe_cycle(cycle: list[tuple[_SOp, _SOp, str]], model: Model) -> str:
    """The cycle in words: runs of one process's ops, then why each run must precede the
    next ("p0 wrote x=1, then read y=nil; p1 wrote y=1, then read x=nil")."""
    # start at the beginning of a process run, so each run reads as one clause
    start = next((n for n, (_a, _b, why) in enumerate(cycle) if why != "process"), 0)
    edges = cycle[start + 1 :] + cycle[: start + 1]
    clauses: list[str] = []
    run: list[_SOp] = [edges[0][0]]
    for a, b, why in edges:
        if why == "process":
            run.append(b)
            continue
        clauses.append(f"p{run[0].op.process} " + ", then ".join(_act(x, model) for x in run))
        link = {
            "rf": f"{_act(b, model)} read what {_act(a, model)} wrote",
            "init": f"so {_act(a, model)} came before p{b.op.process} {_act(b, model)}",
            "ww": f"so {_act(a, model)} came before {_act(b, model)}, which that read saw",
            "rw": f"so {_act(a, model)} came before it was overwritten by {_act(b, model)}",
            "seq": f"so {_act(a, model)} came before {_act(b, model)}, as a get saw them",
            "miss": f"so {_act(a, model)} came before {_act(b, model)}, which it did not see",
        }[why]
        clauses.append(link)
        run = [b]
    text = "; ".join(c for c in clauses)
    return f"{text}: these orders form a cycle, so no single order of all the ops exists"


# ---------------------------------------------------------------------------------------------
# The check


def _anomaly(
    kind: str, key: Any, model: Model, fail: _Failure, procs: list[list[_SOp]]
) -> dict[str, Any]:
    o = fail.op
    # the op's own key's state (the whole-history search's state holds every key's)
    states = [
        st.states[st.keys.index(o.key)] if isinstance(st, _Whole) else st for st in fail.states
    ]
    where = "" if o.key is None else f" (key {show(o.key)})"
    if fail.blocked:
        message = model.explain(o.f, o.value, o.output, states).replace(
            "cannot be linearized", "cannot be placed"
        )
        message += (
            f"{where}, after the longest consistent prefix any order of the processes' ops reaches"
        )
    else:
        message = (
            f"{model.describe_op(o.f, o.value, o.output)}{where} cannot be placed: every order of "
            "the processes' ops fails after the longest consistent prefix"
        )
    dropped = max(0, len(fail.prefix) - MAX_PREFIX)
    return {
        "type": kind,
        "key": None if key is None else show(key),
        "message": message,
        "op": op_dict(o.op),
        "op_description": model.describe_op(o.f, o.value, o.output),
        "process_orders": {
            str(proc[0].op.process): [
                model.describe_op(p.f, p.value, p.output)
                + ("" if p.key is None else f" on {show(p.key)}")
                for p in proc
            ]
            for proc in procs
            if proc
        },
        "prefix": [
            {
                "op": op_dict(p.op),
                "key": None if p.key is None else show(p.key),
                "description": model.describe_op(p.f, p.value, p.output),
                "state": _describe_state(model, s),
            }
            for p, s in fail.prefix[dropped:]
        ],
        "prefix_length": len(fail.prefix),
        "prefix_omitted": dropped,
        "next_ops": [op_dict(p.op) for p in fail.next_ops],
        "states": [_describe_state(model, s) for s in fail.states],
    }


def _describe_state(model: Model, s: Any) -> str:
    if isinstance(s, _Whole):
        return ", ".join(
            f"{show(k)}={model.describe_state(v)}" for k, v in zip(s.keys, s.states, strict=True)
        )
    return model.describe_state(s)


@dataclass(frozen=True, slots=True)
class _Whole:
    """The whole history's state in explanations: every key's state."""

    keys: tuple[Any, ...]
    states: tuple[Any, ...]


def _own_step(p: _SOp, s: Any) -> Any:
    """The step of a per-key search: the op's own transition of its key's state."""
    return p.trans(s)


def merged_witnesses(ops: Sequence[_SOp], witnesses: Mapping[Any, list[_SOp]]) -> bool:
    """Whether one order of the whole history follows from the per-key orders found: a proof
    of sequential consistency when True (nothing when False).

    The ops of different keys touch different parts of the state, so any total order that
    keeps each key's found order and each process's order is legal everywhere: each key's
    state goes through exactly the states of its own witness. Such an order exists iff the
    graph of both chains (each witness's state changes in order, each of its reads after the
    change before it and before the change after it; consecutive placed ops of each process)
    has no cycle. Ops a witness left out (indeterminate ones that never took effect)
    are left out of the whole order too. When the per-key choices happen to cross, the exact
    whole-history search still decides."""
    g = Digraph()
    placed: set[int] = set()
    for order in witnesses.values():
        placed.update(id(p) for p in order)
        g.add_nodes(id(p) for p in order)
        # reads between the same two state changes see the same state in any order among
        # themselves: chaining them would add orders the witness does not need
        last: _SOp | None = None
        reads: list[_SOp] = []
        for p in order:
            if last is not None:
                g.add_edge(id(last), id(p))
            if p.pure:
                reads.append(p)
                continue
            for r in reads:
                g.add_edge(id(r), id(p))
            last, reads = p, []
    for proc in _by_process([p for p in ops if id(p) in placed]):
        for a, b in zip(proc, proc[1:], strict=False):
            g.add_edge(id(a), id(b))
    return g.is_acyclic()


def check_sequential(
    history: History | Sequence[Operation],
    model: Model | str | None = None,
    time_limit: float | None = None,
    max_states: int = DEFAULT_MAX_STATES,
    accept_per_key: bool = False,
    skip_linearizable: bool = False,
    initial: Any = NOT_GIVEN,
) -> CheckResult:
    """Sequential consistency of a history against `model` (inferred when None), every object
    starting in the state `initial` names; see the module docstring for the order of the steps
    and what each scope means.

    `skip_linearizable` leaves out step 1 (tests use it to exercise the graph pass and the
    searches on histories that happen to be linearizable).
    """
    started = time.monotonic()
    if isinstance(history, History):
        operations, source = history.operations(), history.source
    else:
        operations, source = list(history), "<memory>"
    m = resolve_model(model, operations, initial)
    deadline = started + (time_limit if time_limit is not None else WHOLE_SECONDS)
    ops = prune_unobservable(_prepare(operations, m, source), m)
    keys = list(dict.fromkeys(p.key for p in ops))
    details: dict[str, Any] = {
        "consistency": "sequential",
        "model": m.name,
        **({"initial": initial} if initial is not NOT_GIVEN else {}),
        "ops": len(operations),
        "keys": len(keys),
        "processes": len({o.process for o in operations}),
        "time_limit": time_limit,
    }

    def done(
        valid: Any,
        scope: str,
        method: str,
        reason: str | None = None,
        anomalies: list[dict[str, Any]] | None = None,
    ) -> CheckResult:
        details["scope"] = scope
        details["method"] = method
        details["seconds"] = round(time.monotonic() - started, 6)
        return CheckResult(CHECKER, valid, reason, anomalies or [], details)

    if not skip_linearizable:
        lin_limit = max(0.05, min(LINEARIZABLE_SECONDS, deadline - time.monotonic()))
        lin = check_linearizable(operations, m, time_limit=lin_limit, explain=False, source=source)
        details["linearizable"] = lin.valid
        if lin.valid is True:
            return done(True, "whole-history", "linearizable")

    cycle = graph_cycle(ops, m)
    details["graph_cycle"] = cycle is not None
    if cycle is not None:
        sentence = describe_cycle(cycle, m)
        anomaly = {
            "type": "cycle",
            "key": None,
            "message": sentence,
            "cycle": [
                {"op": op_dict(a.op), "then": op_dict(b.op), "because": why} for a, b, why in cycle
            ],
        }
        return done(
            False, "whole-history", "graph", f"not sequentially consistent: {sentence}", [anomaly]
        )

    # Each key gets its own state bound (a search's memo is freed when it ends) and a fair
    # share of the time left, so one hard key cannot hide another key's violation.
    per_key: dict[str, Any] = {}
    anomalies: list[dict[str, Any]] = []
    undecided: list[str] = []
    witnesses: dict[Any, list[_SOp]] = {}
    for n, k in enumerate(keys):
        kops = [p for p in ops if p.key == k]
        procs = _by_process(kops)
        t0 = time.monotonic()
        share = max(0.0, deadline - t0) / (len(keys) - n)
        witnesses[k] = []
        try:
            fail = search(procs, m.start(), _own_step, t0 + share, [max_states], witnesses[k])
        except _OutOfBudget as e:
            what = "time share" if str(e) == "time" else f"state bound ({max_states})"
            per_key[show(k)] = {"valid": "unknown", "reason": f"{what} reached"}
            undecided.append(f"{what} reached on key {show(k)}")
            continue
        per_key[show(k)] = {"valid": fail is None, "ms": round((time.monotonic() - t0) * 1000, 3)}
        if fail is not None:
            anomalies.append(_anomaly("not-sequential", k, m, fail, procs))
    details["per_key"] = per_key
    if anomalies:
        first = anomalies[0]
        reason = f"key {first['key']}: {first['message']}"
        if undecided:
            details["undecided_keys"] = undecided
        return done(False, "per-key", "search", reason, anomalies)
    if undecided:
        reason = "; ".join(undecided[:3]) + (
            f" (and {len(undecided) - 3} more)" if len(undecided) > 3 else ""
        )
        return done("unknown", "per-key", "search", f"not decided: {reason}")
    if len(keys) <= 1:
        return done(True, "whole-history", "search")
    if merged_witnesses(ops, witnesses):
        return done(True, "whole-history", "per-key orders merged")
    # the orders found may cross only through where they placed indeterminate ops: look for
    # orders that make those take effect as late as they can, and merge again
    late: dict[Any, list[_SOp]] = {}
    try:
        for k in keys:
            late[k] = []
            kprocs = _by_process([p for p in ops if p.key == k])
            share = max(0.0, deadline - time.monotonic()) / 4 / len(keys)
            until = time.monotonic() + share
            if search(kprocs, m.start(), _own_step, until, [max_states], late[k], True):
                late = {}  # cannot happen (the key passed above); never merge a failed order
                break
    except _OutOfBudget:
        late = {}
    if late and merged_witnesses(ops, late):
        return done(True, "whole-history", "per-key orders merged")

    index = {k: n for n, k in enumerate(keys)}
    init = _Whole(tuple(keys), tuple(m.start() for _ in keys))

    def whole_step(p: _SOp, s: _Whole) -> Any:
        n = index[p.key]
        s2 = p.trans(s.states[n])
        if s2 is ILLEGAL:
            return ILLEGAL
        return _Whole(s.keys, s.states[:n] + (s2,) + s.states[n + 1 :])

    procs = _by_process(ops)
    try:
        fail = search(procs, init, whole_step, deadline, [max_states])
    except _OutOfBudget as e:
        what = "the time budget" if str(e) == "time" else f"the state bound ({max_states})"
        reason = (
            f"sequentially consistent per key; the whole-history search did not fit {what}, "
            "and sequential consistency is not a local property"
        )
        return done(True if accept_per_key else "unknown", "per-key", "search", reason)
    if fail is None:
        return done(True, "whole-history", "search")
    a = _anomaly("not-sequential", None, m, fail, procs)
    a["message"] += "; every key is sequentially consistent on its own, but not all together"
    return done(
        False, "whole-history", "search", f"not sequentially consistent: {a['message']}", [a]
    )


class SequentialChecker(Checker):
    """Sequential consistency against the context's model, within the context's time limit;
    see check_sequential and the module docstring for the scope of each verdict."""

    name: ClassVar[str] = CHECKER
    description: ClassVar[str] = (
        "one order of all the ops, consistent with each process's order, obeys the model"
    )

    def __init__(
        self, *, max_states: int = DEFAULT_MAX_STATES, accept_per_key: bool = False
    ) -> None:
        self.max_states = max_states
        self.accept_per_key = accept_per_key

    def validate_input(self, history: History, context: CheckContext) -> None:
        operations = history.operations()
        model = resolve_model(context.model, operations, context.initial)
        validate_operations(operations, model, history.source)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        return check_sequential(
            history,
            context.model,
            initial=context.initial,
            time_limit=context.time_limit,
            max_states=self.max_states,
            accept_per_key=self.accept_per_key,
        )
