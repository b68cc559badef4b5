"""Linearizability checking: does some total order of the ops, consistent with real time, obey
the model?

The engine is Lowe's "just-in-time" linearization (G. Lowe, *Testing for linearizability*,
2017), the breadth-first sibling of the Wing-Gong/Lowe (WGL) depth-first search that Porcupine
implements, run per key (P-compositionality, Horn & Kroening 2015), with Jepsen's meaning of
indeterminate ops and a few extra prunings. We chose it over a WGL port because it walks the
history once, return after return, and the point where it fails is exactly "the op that cannot
be linearized", which is what the explanation needs. It is run depth-first (below), so its
memory grows with the history: one entry per return on the current path, and the memo of
exhausted configurations (a few hundred bytes per return in all).

Definitions (per key). An op is *determinate* if it completed `ok` (it has a return position),
*indeterminate* if it completed `info` or never completed. `fail` ops are dropped (they did not
happen), and so are indeterminate ops of read-only fs (they constrain nothing). A
*configuration* is (model state, L, U): L = the pending determinate ops already linearized, U =
the indeterminate ops already used.

The search. Walk the call/return events in history order, keeping the set C of configurations
consistent with the history so far. A call adds a pending op (no new configurations). At the
return of op o, every configuration must have linearized o: those with o in L keep going (o
leaves L); from the others we explore every sequence of pending ops (determinate not in L,
indeterminate not in U) that ends with o, memoising configurations seen during this return
(this is WGL's cache of (linearized set, state), scoped to one return). If C becomes empty, o
cannot be linearized: the history is not linearizable, and C just before is the explanation.

Why this is complete (JIT lemma). Take any valid linearization. Move every op's linearization
point as late as possible while keeping the order: o_k lands just before the return of the
first determinate op at or after it in the order. That is legal because if o_j comes before o_k
in the order, o_k's return cannot precede o_j's call (real time would force o_k first), so o_j
is already invoked when o_k returns. Indeterminate ops after the last determinate op are simply
never linearized ("it may never have happened"). The lazy schedule only linearizes ops at
returns, in sequences ending with the returning op, which is what the search enumerates.

Prunings beyond Porcupine, each with its soundness argument:

(a) Interchangeable indeterminate ops. Indeterminate ops with the same f and value form a
    class; they never return, so they impose no real-time constraint on anything after them and
    can take effect at any point after their call. If a configuration uses instance B of a class
    while an earlier-invoked instance A is unused, swapping A for B gives the same model states
    at every step and A is invoked whenever B is. So we only ever use a class's instances in
    call order: U is a per-class prefix, and the search never explores permutations of
    interchangeable ops.
(b) Dominance. Using an indeterminate op is never obligatory, so a configuration (s, L, U)
    can simulate every continuation of (s, L, U') when U is a subset of U' (it relabels each
    class's instances to earlier-invoked, hence already-invoked, ones). After each return we keep
    only the configurations whose U is minimal for their (s, L).
(c) No-op indeterminate steps. Applying an indeterminate op that leaves the state unchanged
    gives (s, L, U + op), dominated by (s, L, U) under (b); it is never explored.
(d) Unobservable indeterminate writes (models that declare `register_roles`: register,
    cas-register, kv's read/write/cas; see Model.register_roles for what is relied on). An
    indeterminate write/cas whose written value v is never observed (no determinate read
    returns v, no cas expects v, no kept indeterminate cas expects v) can be removed: once the
    state is v, the only legal steps are writes (a read or cas would have to observe v), which
    overwrite v whatever it was, so the configuration that skipped it reaches the same states
    with more unused ops. Iterated to a fixpoint (a cas [v w] dropped can make w unobservable).
(e) Polynomial fast paths (fastpath.py, proofs there), chosen by the model's hooks, never by
    its name. Register read/write (`register_roles`) with unique values: Gibbons & Korach's
    zones. get/put/append (`string_roles`) whose values parse every get result one way:
    the *epoch* test (each get's result names the put it started from and the appends since,
    so every epoch is a forced chain of groups, and epochs plus unread ops are ordered by
    their zones, like Gibbons & Korach's clusters); repeated values are told apart by real
    time when only one op can have written them (a few combinations are tried otherwise),
    and anything it cannot pin down falls back to this search. On the Porcupine kv corpus
    every key is decided by it.

Budgets. `time_limit` (seconds, whole check) and `max_configs` (configurations alive or
explored at one return; about 150-250 bytes each) turn into verdict "unknown" with the key and
the number of configurations explored. Memory reported: the peak configuration count, the
estimate in bytes, and the process's max RSS before and after (resource.getrusage; the delta is
zero when the check never exceeded an earlier peak).

Cost on large histories (bench/checker_big.py; none of these changes a verdict):
* from GC_PAUSE_OPS operations on, the cyclic garbage collector is paused (history.gc_paused):
  its passes over the search's tuples cost as much as the search did;
* ops with equal plain (f, value, output) share one prepared value and transition (`_plain`);
* a level whose returning op can go alone, with no pending op invoked before it able to step
  (what the closure would yield first), is stepped without making its closure; the closure is
  made only if the search comes back (it yields that configuration again, which the memo
  skips). The search's path then holds a pair per level, not a generator;
* a closure makes the successors by indeterminate ops only once its bucket of determinate
  steps is exhausted (`_expand_indeterminate` says why that prunes no less);
* the failed memo stores a lone used-set bare, and `_levels` sorts events packed as ints.

Explanations are capped so that the explained verdict costs at most about twice the plain one
(bench/checker_corpus.py prints the ratio): the first EXPLAIN_KEYS failing keys are explained,
the rest listed (details["unexplained_keys"]); traced searches share EXPLAIN_RATIO times the
verdict's time, except the rerun a key only the search refuted needs (EXPLAIN_SECONDS).
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dsjepsen.checkers.base import DEFAULT_TIME_LIMIT, CheckContext, Checker
from dsjepsen.checkers.fastpath import FastVerdict, kv_epochs, register_zones
from dsjepsen.checkers.models import (
    FALSE,
    ILLEGAL,
    NOT_GIVEN,
    TRUE,
    UNKNOWN,
    Model,
    get_model,
    infer_model,
    show,
)
from dsjepsen.checkers.result import CheckResult, merge_validity
from dsjepsen.errors import ConfigError, InputError
from dsjepsen.history import History, Operation, gc_paused

CHECKER = "linearizable"
DEFAULT_MAX_CONFIGS = 2_000_000
#: rough bytes per configuration held in the per-return cache (tuple + dict slot + ints)
BYTES_PER_CONFIG = 200
#: maximal prefix entries kept in an explanation (the newest ones)
MAX_PREFIX = 200
#: failing keys explained (anomalies); the others are listed in details["unexplained_keys"]
EXPLAIN_KEYS = 3
#: seconds the traced rerun of the first failing key that only the search refuted may take
EXPLAIN_SECONDS = 1.0
#: every other traced search of the explanations shares this fraction of the verdict's time
#: (a key a fast path refuted is explained by its violation when the budget is spent)
EXPLAIN_RATIO = 0.5
#: ... but never less than this many seconds (tiny histories)
EXPLAIN_FLOOR_SECONDS = 0.005
#: a traced search looks at the clock every this many configurations (the verdict's
#: searches every 4096), so that a short try stops near its end
EXPLAIN_TICK = 256
#: with a time limit, the first explanation may overrun it by this much
MIN_EXPLAIN_SECONDS = 0.5
#: the first time slice of every key, in seconds (later rounds get 2x the previous, up to 1 s)
FIRST_SLICE = 0.05
#: without a time limit, how long undecided keys still run once another key has failed
AFTER_FAILURE_SECONDS = 1.5
#: from this many operations on, the check runs with the cyclic garbage collector paused
#: (history.gc_paused): the search allocates a tuple or two per configuration and a frame per
#: return, none of them in a cycle, and the collector's passes over them cost as much as the
#: search itself on a million-op history; below it, the pause's own collection is the larger cost
GC_PAUSE_OPS = 20_000

ProgressFn = Callable[[Any, int, float], None]


class _OutOfBudget(Exception):
    def __init__(self, reason: str, explored: int = 0, memory: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.explored = explored
        self.memory = memory


@dataclass(slots=True)
class _Op:
    """One op of a partition, ready for the search (slots: a million-op history has one per
    op)."""

    op: Operation
    f: str
    value: Any
    output: Any  # UNKNOWN for indeterminate ops
    trans: Callable[[Any], Any]
    call: int
    ret: int | None


@dataclass
class _Failure:
    op: _Op
    prefix: list[tuple[_Op, Any]]
    states: list[Any]
    pending: list[_Op]


@dataclass
class _Outcome:
    valid: bool | str
    explored: int = 0
    peak: int = 0
    reason: str | None = None
    failure: _Failure | None = None
    ops: list[_Op] = field(default_factory=list)
    #: the op at the deepest return the search reached (invalid histories)
    deepest: _Op | None = None


# ---------------------------------------------------------------------------------------------
# Preparing a partition


_PLAIN = (int, str)


def _plain(v: Any) -> Any:
    """`v` itself (or as a tuple, for a list) when it is None, an int, a string, or a short
    list of those: values whose equality means they are the same JSON value, so that an op's
    prepared value and transition can be shared by every op with an equal (f, value, output).
    None for anything else (floats, where 1 == 1.0; booleans; nested values)."""
    t = type(v)
    if v is None or t in _PLAIN:
        return v
    if (t is list or t is tuple) and len(v) <= 4:
        for x in v:
            if x is not None and type(x) not in _PLAIN:
                return None
        return (t.__name__, *v)
    return None


def _prepare(ops: Iterable[Operation], model: Model, source: str) -> list[_Op]:
    out: list[_Op] = []
    # (f, value, output) -> (prepared value, prepared output, transition), for plain values
    # (`_plain`): a register history repeats a few values, and one closure per op cost about
    # 100 bytes each and a third of the preparation's time on a million ops
    shared: dict[tuple[Any, ...], tuple[Any, Any, Callable[[Any], Any]]] = {}
    for o in ops:
        if o.type == "fail":
            continue
        det = o.ret is not None
        f = o.f
        if not det and f in model.read_fs:
            continue
        if f not in model.fs:
            line = o.invoke.line if o.invoke.line is not None else o.call + 1
            raise InputError(
                f"model {model.name} has no operation {f!r} (it knows "
                f"{', '.join(sorted(model.fs))}); pass another --model",
                source,
                line,
            )
        output = o.output if det else UNKNOWN
        vk = _plain(o.value)
        ok = output if output is UNKNOWN else _plain(output)
        key = None
        if (vk is not None or o.value is None) and (ok is not None or output is None):
            key = (f, vk, ok)
            hit = shared.get(key)
            if hit is not None:
                out.append(_Op(o, f, hit[0], hit[1], hit[2], o.call, o.ret))
                continue
        try:
            value, output = model.prepare(f, o.value, output)
        except (ValueError, TypeError) as e:
            line = o.invoke.line if o.invoke.line is not None else o.call + 1
            raise InputError(f"{f} op: {e}", source, line) from None
        trans = model.transition(f, value, output)
        if key is not None:
            shared[key] = (value, output, trans)
        out.append(_Op(o, f, value, output, trans, o.call, o.ret))
    out.sort(key=lambda p: p.call)
    return out


def _prune_unobservable(ops: list[_Op], model: Model) -> list[_Op]:
    """Pruning (d): drop indeterminate writes/cas whose value nobody can observe.

    Sound only for the register shape the model declares in `register_roles` (the state is the
    last value written; reads and cas observe it by equality), and only when every op of the key
    has a role: any other op (kv's append) reads the state in its own way.
    """
    roles = model.register_roles
    if not roles or not {p.f for p in ops} <= roles.keys():
        return ops
    observed: set[Any] = set()
    for p in ops:
        if p.ret is not None:
            role = roles[p.f]
            if role == "read":
                observed.add(p.output)
            elif role == "cas":
                observed.add(p.value[0])
    observed.add(model.start())
    kept = [p for p in ops if p.ret is not None]
    maybe = [p for p in ops if p.ret is None]
    changed = True
    while changed:
        changed = False
        rest = []
        for p in maybe:
            role = roles[p.f]
            if role == "read":  # not in read_fs: not ours to drop
                kept.append(p)
                continue
            written = p.value if role == "write" else p.value[1]
            if written in observed:
                kept.append(p)
                if role == "cas" and p.value[0] not in observed:
                    observed.add(p.value[0])
                    changed = True
            else:
                rest.append(p)
        maybe = rest
    # an indeterminate cas [a b] is kept only if b is observed; its old value a becomes
    # observed (it must have held a), which can keep more writes: hence the fixpoint.
    kept.sort(key=lambda p: p.call)
    return kept


# ---------------------------------------------------------------------------------------------
# The search


def _levels(ops: list[_Op]) -> tuple[list[tuple[Any, ...]], dict[int, int]]:
    """Precompute, for every return event, what the search needs there.

    A level is (op index, op's slot bit, op's transition, invoked indeterminate classes as
    (transition, mask), pending determinate ops other than it as (bit, transition, index,
    invoked before it), latest-invoked first). Slots are reused after a return, so L stays
    as small as the concurrency.
    """
    CALL, RET, INFO = 0, 1, 2
    # events as ints (position, kind, op index < 2**32) packed so that their order is the
    # tuples' (call before return at one position, as an orphan has them): sorting ints is
    # several times faster than sorting tuples, and a million-op history has two events per op
    events: list[int] = []
    for i, p in enumerate(ops):
        if p.ret is None:
            events.append(p.call << 34 | INFO << 32 | i)
        else:
            events.append(p.call << 34 | CALL << 32 | i)
            events.append(p.ret << 34 | RET << 32 | i)
    events.sort()
    # indeterminate classes: same f and value -> interchangeable (pruning a)
    class_index: dict[tuple[str, Any], int] = {}
    class_trans: list[Callable[[Any], Any]] = []
    class_mask: list[int] = []
    op_of_info_bit: dict[int, int] = {}
    active: tuple[tuple[Callable[[Any], Any], int], ...] = ()
    order: list[int] = []  # active class ids in first-invocation order
    levels: list[tuple[Any, ...]] = []
    pending: list[tuple[int, Callable[[Any], Any], int, int]] = []  # bit, trans, index, call
    slot_bit: dict[int, int] = {}
    free_bits: list[int] = []
    next_bit = 1
    nbits = 0
    for e in events:
        i = e & 0xFFFFFFFF
        kind = e >> 32 & 3
        p = ops[i]
        if kind == CALL:
            if free_bits:
                bit = free_bits.pop()
            else:
                bit = next_bit
                next_bit <<= 1
            slot_bit[i] = bit
            pending.append((bit, p.trans, i, p.call))
        elif kind == INFO:
            k = class_index.get((p.f, p.value))
            if k is None:
                k = class_index[(p.f, p.value)] = len(class_trans)
                class_trans.append(p.trans)
                class_mask.append(0)
                order.append(k)
            bit = 1 << nbits
            nbits += 1
            op_of_info_bit[bit] = i
            class_mask[k] |= bit
            active = tuple((class_trans[c], class_mask[c]) for c in order)
        else:
            obit = slot_bit.pop(i)
            pending = [e for e in pending if e[2] != i]
            # the closure's push order, precomputed: latest-invoked first, each with
            # whether it was invoked before op i (those are popped first, WGL's order)
            call = p.call
            rpending = tuple([(b, tr, j, c < call) for b, tr, j, c in reversed(pending)])
            levels.append((i, obit, p.trans, active, rpending))
            free_bits.append(obit)
    return levels, op_of_info_bit


#: yielded by a paused search (its time slice is over); the driver resumes it later
PAUSE: Any = object()
#: a level of the search's path with no other configuration to try
DONE: Any = object()


class _Budget:
    """What a running search checks every few thousand configurations: the end of its time
    slice (it then pauses, to be resumed where it was), the configuration cap (memory), and
    when to report progress."""

    def __init__(
        self,
        key: Any,
        max_configs: int,
        progress: ProgressFn | None,
        started: float,
        pool: list[int] | None = None,
    ):
        self.key = key
        #: configurations memoised by every paused search of this check (they all hold
        #: memory at once), counted against the same cap
        self.pool = pool if pool is not None else [0]
        self.max_configs = max_configs
        self.progress = progress
        self.started = started
        self.progress_at = started
        self.stop = float("inf")
        self.counters = [0, 0]  # configurations explored, largest closure queue
        #: the searches look at the clock once every mask + 1 configurations; a short
        #: explanation try lowers it so that it stops close to its end
        self.mask = 4095
        self.n_failed = 0

    def tick(self, alive: int) -> bool:
        """True when the slice is over; raises _OutOfBudget past the configuration cap."""
        explored = self.counters[0]
        if self.pool[0] + alive > self.max_configs:
            raise _OutOfBudget(
                f"more than {self.max_configs} configurations held at one point (memory cap), "
                f"on key {show(self.key)} after exploring {explored}",
                explored,
                memory=True,
            )
        now = time.monotonic()
        if self.progress is not None and now - self.progress_at > 1.0 and now - self.started > 2.0:
            self.progress(self.key, explored, now - self.started)
            self.progress_at = now
        return now > self.stop


class _Task:
    """One key's search, resumable: `run(stop)` works until `stop` (monotonic seconds) and
    returns the outcome, or None when the slice ended first (the next call continues)."""

    def __init__(
        self,
        ops: list[_Op],
        model: Model,
        key: Any,
        max_configs: int,
        trace: bool,
        progress: ProgressFn | None,
        started: float,
        pool: list[int] | None = None,
    ):
        self.levels = _levels(ops)
        self.budget = _Budget(key, max_configs, progress, started, pool)
        self.gen = _search(ops, model, self.levels, self.budget, trace)
        self.outcome: _Outcome | None = None

    @property
    def explored(self) -> int:
        return self.budget.counters[0]

    def run(self, stop: float) -> _Outcome | None:
        if self.outcome is not None:
            return self.outcome
        self.budget.stop = stop
        try:
            next(self.gen)
        except StopIteration as e:
            self.outcome = e.value
            self.release()
            return self.outcome
        except _OutOfBudget:
            self.release()
            raise
        return None

    def release(self) -> None:
        """Drop the search state (and its share of the pool)."""
        self.budget.pool[0] -= self.budget.n_failed
        self.budget.n_failed = 0
        self.gen.close()


def _search(
    ops: list[_Op],
    model: Model,
    levels_info: tuple[list[tuple[Any, ...]], dict[int, int]],
    budget: _Budget,
    trace: bool,
) -> Iterator[None]:
    """Depth-first JIT tree search over the return events, memoising failed configurations.

    Depth-first finds a witness of a valid history without enumerating every configuration;
    an invalid one is exhausted exactly as the breadth-first search would, and the deepest
    return reached is the op that cannot be linearized. A generator: it yields (pauses)
    when its budget's slice is over and returns the _Outcome.
    """
    levels, op_of_info_bit = levels_info
    nlevels = len(levels)
    init = model.start()
    # failed[(level, state, L)] = used-set, or list of used-sets, already exhausted there
    # (pruning b on failures); a single one is stored bare, which is the common case
    failed: dict[tuple[int, Any, int], Any] = {}
    counters = budget.counters
    mask = budget.mask
    # deepest level reached, and (trace mode) what was seen there
    deep = -1
    deep_probe: list[Any] = [set(), None]  # states tried there, (config, node) furthest in
    steps = 0

    # stack[r] makes the other configurations of level r, tried when the current one fails:
    # DONE (there are none), a _closure generator, or (cfg, node) for a closure not started
    # yet, whose first configuration is being tried (see below). One entry per level of the
    # current path, so what it holds per level is most of the search's memory.
    stack: list[Any] = [DONE]
    nxt: Any = ((init, 0, 0), None)
    while True:
        if nxt is None:  # the current configuration failed: the next one of the deepest level
            if not stack:
                break
            top = stack[-1]
            if top is DONE:
                stack.pop()
                continue
            if type(top) is tuple:
                r = len(stack) - 2
                top = stack[-1] = _closure(
                    levels[r], top[0], top[1], op_of_info_bit, budget, trace, None
                )
            nxt = next(top, None)
            if nxt is None:
                stack.pop()
                continue
            if nxt is PAUSE:
                nxt = None
                yield
                continue
        r = len(stack) - 1
        if r == nlevels:
            return _Outcome(True, counters[0], max(counters[1], budget.n_failed), ops=ops)
        cfg, node = nxt
        nxt = None
        s, lin, used = cfg
        fk = (r, s, lin)
        prev = failed.get(fk)
        if prev is not None:
            if type(prev) is int:
                prev = [prev]
            # skip only when an exhausted used-set is a subset of this one: fewer used
            # indeterminate ops can do everything more can (b), never the other way round
            if any(u & ~used == 0 for u in prev):
                continue
            prev.append(used)
            failed[fk] = prev
        else:
            failed[fk] = used
        budget.n_failed += 1
        budget.pool[0] += 1
        steps += 1
        if not steps & mask and budget.tick(0):
            yield
        level = levels[r]
        obit = level[1]
        if r > deep:
            deep = r
            if trace:
                deep_probe = [set(), None]
        if lin & obit:
            stack.append(DONE)
            nxt = ((s, lin ^ obit, used), node)
            continue
        if not trace:
            # The closure's first configuration, without starting it, in the common case
            # where it is the returning op alone: no pending op invoked before it can step
            # from s (the closure tries those first) and the op itself can. The closure is
            # made only if the search comes back here; it then yields this configuration
            # again, which the memo above skips.
            s2 = level[2](s)
            if s2 is not ILLEGAL:
                for bit, tr, _j, before in level[4]:
                    if before and not lin & bit and tr(s) is not ILLEGAL:
                        break
                else:
                    counters[0] += 1
                    stack.append((cfg, node))
                    nxt = ((s2, lin, used), node)
                    continue
        probe = deep_probe if (trace and r == deep) else None
        stack.append(_closure(level, cfg, node, op_of_info_bit, budget, trace, probe))
    out = _Outcome(False, counters[0], max(counters[1], budget.n_failed), ops=ops)
    if deep >= 0:
        out.deepest = ops[levels[deep][0]]
    if trace and deep >= 0:
        out.failure = _failure(ops, levels[deep], deep_probe[1], deep_probe[0], op_of_info_bit)
    return out


def _closure(
    level: tuple[Any, ...],
    cfg: tuple[Any, int, int],
    node: Any,
    op_of_info_bit: dict[int, int],
    budget: _Budget,
    trace: bool,
    probe: list[Any] | None,
) -> Iterator[Any]:
    """Yield every configuration after the level's return, lazily and breadth-first.

    Breadth-first, so the successors that linearize the fewest extra ops come first (and the
    depth-first search above usually needs only the first); lazily, so a valid history never
    pays for the enumeration of permutations of pending ops it does not need.
    `probe` (trace mode, deepest level only) collects the states in which the op was tried
    and the configuration that got furthest. Yields PAUSE when the budget's slice is over.
    """
    counters = budget.counters
    mask = budget.mask
    i, _obit, otrans, active, rpending = level
    marked = False
    emitted: set[Any] = set()
    # (state, L) -> used-sets reached; breadth-first order reaches a smaller used-set for the
    # same (state, L) strictly earlier (fewer steps), so checking on insertion suffices (b).
    seen: dict[tuple[Any, int], list[int]] = {(cfg[0], cfg[1]): [cfg[2]]}
    nodes: dict[Any, Any] = {cfg: node} if trace else {}
    # depth-first over determinate ops, earliest-invoked first (as WGL does), one bucket per
    # number of indeterminate ops used, fewest first (so dominators usually come first)
    stack = [cfg]
    later: list[tuple[Any, int, int]] = []
    #: configurations popped in this bucket whose indeterminate successors are not made yet
    unexpanded: list[tuple[Any, int, int]] = []
    size = 1
    try:
        while True:
            if not stack:
                if unexpanded:
                    size += _expand_indeterminate(
                        unexpanded, active, seen, later, nodes if trace else None, op_of_info_bit
                    )
                    unexpanded = []
                if not later:
                    break
                stack, later = later[::-1], []
            c = stack.pop()
            if len(c) == 4:  # the marker: linearize op i now (c[3] = trace node before it)
                c2 = c[:3]
                if c2 not in emitted:
                    emitted.add(c2)
                    yield c2, (_node(i, c2[0], c[3]) if trace else None)
                continue
            counters[0] += 1
            if not counters[0] & mask and budget.tick(size):
                yield PAUSE
            s, lin, used = c
            if trace:
                node = nodes[c]
                if probe is not None:
                    probe[0].add(s)
                    if probe[1] is None or _depth(node) > _depth(probe[1][1]):
                        probe[1] = (c, node)
            # push order = reverse of pop order: later-invoked ops, then op i itself, then the
            # ops invoked before op i (popped first: the greedy call order WGL tries first)
            for bit, tr, j, before in rpending:
                if before and not marked:
                    marked = True
                    s2 = otrans(s)
                    if s2 is not ILLEGAL:
                        stack.append((s2, lin, used, node))
                if not lin & bit:
                    s2 = tr(s)
                    if s2 is not ILLEGAL:
                        sk = (s2, lin | bit)
                        us = seen.get(sk)
                        if us is None:
                            seen[sk] = [used]
                        elif any(u & ~used == 0 for u in us):
                            continue
                        else:
                            us.append(used)
                        c2 = (s2, lin | bit, used)
                        if trace:
                            nodes[c2] = _node(j, s2, node)
                        stack.append(c2)
                        size += 1
            if not marked:
                s2 = otrans(s)
                if s2 is not ILLEGAL:
                    stack.append((s2, lin, used, node))
            marked = False
            if active:
                unexpanded.append(c)
    finally:
        if size > counters[1]:
            counters[1] = size


def _expand_indeterminate(
    configs: list[tuple[Any, int, int]],
    active: tuple[tuple[Callable[[Any], Any], int], ...],
    seen: dict[tuple[Any, int], list[int]],
    later: list[tuple[Any, int, int]],
    nodes: dict[Any, Any] | None,
    op_of_info_bit: dict[int, int],
) -> int:
    """Put in `later` the successors of `configs` by one more indeterminate op each (the
    first unused instance of each class: pruning a), skipping dominated ones (b) and no-op
    steps (c); returns how many were added.

    The closure calls this only once its bucket of determinate steps is exhausted, not when
    each configuration is popped: the depth-first search above usually takes the first
    configuration the closure yields and never comes back, so the successors by indeterminate
    ops (one per class, at every return) would mostly be made for nothing. Deferring them
    changes no verdict: a bucket's configurations are still all expanded, in the same order,
    before the next bucket is popped; and the determinate configurations of the bucket now
    all enter `seen` before these, which can only prune more configurations that some
    configuration already seen dominates (b).
    """
    added = 0
    for c in configs:
        s, lin, used = c
        for tr, mask in active:
            avail = mask & ~used
            if avail:
                s2 = tr(s)
                if s2 is not ILLEGAL and s2 != s:
                    low = avail & -avail
                    u2 = used | low
                    sk = (s2, lin)
                    us = seen.get(sk)
                    if us is None:
                        seen[sk] = [u2]
                    elif any(u & ~u2 == 0 for u in us):
                        continue
                    else:
                        us.append(u2)
                    c2 = (s2, lin, u2)
                    if nodes is not None:
                        nodes[c2] = _node(op_of_info_bit[low], s2, nodes[c])
                    later.append(c2)
                    added += 1
    return added


def _depth(node: Any) -> int:
    return node[3] if node is not None else 0


def _node(j: int, s: Any, parent: Any) -> tuple[int, Any, Any, int]:
    """A trace node: op index, state after it, parent node, depth."""
    return (j, s, parent, parent[3] + 1 if parent is not None else 1)


def _unwind(node: Any) -> list[tuple[int, Any]]:
    seq = []
    while node is not None:
        seq.append((node[0], node[1]))
        node = node[2]
    seq.reverse()
    return seq


def _failure(
    ops: list[_Op],
    level: tuple[Any, ...],
    best: tuple[Any, Any] | None,
    tried: set[Any],
    op_of_info_bit: dict[int, int],
) -> _Failure:
    i, _obit, _otrans, active, rpending = level
    prefix: list[tuple[int, Any]] = []
    lin = used = 0
    if best is not None:
        (_s, lin, used), node = best
        prefix = _unwind(node)
    in_prefix = {j for j, _ in prefix}
    still = [ops[j] for bit, _t, j, _b in rpending if not lin & bit and j not in in_prefix]
    for _tr, mask in active:
        avail = mask & ~used
        while avail:
            low = avail & -avail
            avail ^= low
            still.append(ops[op_of_info_bit[low]])
    still.sort(key=lambda p: p.call)
    return _Failure(
        op=ops[i],
        prefix=[(ops[j], s) for j, s in prefix],
        states=sorted(tried, key=repr),
        pending=still,
    )


# ---------------------------------------------------------------------------------------------
# Public API


def op_dict(p: _Op | Operation) -> dict[str, Any]:
    """The opdict of the team contract (history indices, null ret when indeterminate)."""
    return (p.op if isinstance(p, _Op) else p).to_dict()


def _window(fail: _Failure, ops: list[_Op]) -> list[int]:
    """History indices of the smallest window around the failing op.

    The op itself, everything concurrent with it, and its immediate real-time predecessors:
    the ops that returned before it was invoked and precede no other such op (the maximal
    elements of the precedence order below it, i.e. its predecessors in the transitive
    reduction). An op p that returned before o precedes another such op q iff q was invoked
    after p returned, so p is maximal iff it returned at or after the latest invocation among
    them: a linear pass, where a transitive reduction of the graph cost milliseconds per key.
    """
    o = fail.op
    assert o.ret is not None
    near = [p for p in ops if p.call <= o.ret and (p.ret is None or p.ret >= o.call)]
    before = [p for p in ops if p.ret is not None and p.ret < o.call]
    latest_call = max((p.call for p in before), default=None)
    preds = [p for p in before if latest_call is not None and (p.ret or 0) >= latest_call]
    chosen = {id(p): p for p in near + preds}
    return sorted(p.call for p in chosen.values())


def _anomaly(key: Any, model: Model, fail: _Failure, ops: list[_Op]) -> dict[str, Any]:
    o = fail.op
    prefix = fail.prefix
    dropped = max(0, len(prefix) - MAX_PREFIX)
    return {
        "type": "nonlinearizable",
        "key": key,
        "message": model.explain(o.f, o.value, o.output, fail.states),
        "op": op_dict(o),
        "op_description": model.describe_op(o.f, o.value, o.output),
        "prefix": [
            {
                "op": op_dict(p),
                "description": model.describe_op(p.f, p.value, p.output),
                "state": model.describe_state(s),
            }
            for p, s in prefix[dropped:]
        ],
        "prefix_length": len(prefix),
        "prefix_omitted": dropped,
        "pending": [op_dict(p) for p in fail.pending],
        "states": [model.describe_state(s) for s in fail.states],
        "window": _window(fail, ops),
    }


def _fast_path(ops: list[_Op], model: Model) -> FastVerdict | None:
    """Pruning (e): a polynomial verdict when the model's hooks allow one and values are
    unique, else None (search). The fast paths see each op under its role's name."""
    fs = {p.f for p in ops}
    roles = model.register_roles
    if roles and fs <= roles.keys():
        if {roles[f] for f in fs} <= {"read", "write"}:
            return _through_roles(lambda v: register_zones(v, model.start()), ops, roles)
        return None
    roles = model.string_roles
    if roles and fs <= roles.keys() and model.starts_at_init:
        # the epoch test knows only the empty start (absent reads as "")
        return _through_roles(kv_epochs, ops, roles)
    return None


@dataclass(slots=True)
class _RoleView:
    """An op as a fast path sees it: `f` is its role (fastpath.py reasons in roles)."""

    f: str
    value: Any
    output: Any
    call: int
    ret: int | None
    op: _Op


def _through_roles(
    test: Callable[[list[Any]], FastVerdict | None], ops: list[_Op], roles: Mapping[str, str]
) -> FastVerdict | None:
    """Run a fast path on the ops renamed to their roles, and name the ops again in its
    verdict. Ops whose f is already their role's name go as they are (no copies)."""
    if all(roles[f] == f for f in {p.f for p in ops}):
        return test(ops)
    verdict = test([_RoleView(roles[p.f], p.value, p.output, p.call, p.ret, p) for p in ops])
    if verdict is None:
        return None

    def back(x: Any) -> Any:
        return x.op if isinstance(x, _RoleView) else x

    verdict.op = back(verdict.op)
    verdict.related = [back(x) for x in verdict.related]
    verdict.prefix = [(back(x), s) for x, s in verdict.prefix]
    return verdict


def _failed_at(entry: tuple[Any, list[_Op], FastVerdict | None, _Op | None]) -> int:
    """Where a failing key's failing op was invoked (its history position)."""
    _, _, fast, deepest = entry
    op = fast.op if fast is not None else deepest
    return op.call if op is not None else 1 << 62


def _locate(key: Any, model: Model, fast: FastVerdict | None, deepest: _Op | None) -> dict:
    """Where a failing key that is not explained in full failed: the op that cannot be
    linearized (the fast path's, else the deepest return the search reached) and one
    sentence, at the cost of an op's dict: no traced search."""
    op = fast.op if fast is not None else deepest
    if op is None:
        return {"key": key, "op": None, "message": "not linearizable"}
    message = (
        fast.message
        if fast is not None
        else f"{model.describe_op(op.f, op.value, op.output)} cannot be linearized"
    )
    return {"key": key, "op": op_dict(op), "message": message, "type": "nonlinearizable"}


def _explain(
    key: Any,
    model: Model,
    ops: list[_Op],
    fast: FastVerdict | None,
    deepest: _Op | None,
    stop: float,
    max_configs: int,
) -> dict[str, Any]:
    """The anomaly for a failing key: from a traced search when it finishes before `stop`
    (it gives the prefix and the possible states), else from the fast path's violation, else
    (the search found the key invalid but the traced rerun ran out of time) the op at the
    deepest return the search reached."""
    traced = None
    if time.monotonic() < stop:
        task = _Task(ops, model, key, max_configs, True, None, time.monotonic())
        task.budget.mask = EXPLAIN_TICK - 1
        try:
            traced = task.run(stop)
        except _OutOfBudget:
            traced = None
        task.release()
    if traced is not None and traced.failure is not None:
        return _anomaly(key, model, traced.failure, ops)
    op = fast.op if fast is not None else deepest
    assert op is not None and op.ret is not None
    fail = _Failure(op=op, prefix=list(fast.prefix) if fast else [], states=[], pending=[])
    a = _anomaly(key, model, fail, ops)
    if fast is not None:
        a["message"] = fast.message
        a["states"] = [model.describe_state(fast.prefix[-1][1])] if fast.prefix else []
        a["related"] = [op_dict(p) for p in fast.related]
        a["method"] = fast.method
    else:
        a["message"] = (
            f"{model.describe_op(op.f, op.value, op.output)} cannot be linearized "
            "(the search proved it; tracing the possible states ran out of its time budget)"
        )
        a["states"] = []
        a["method"] = "search"
    a["pending"] = [
        op_dict(p)
        for p in ops
        if p is not op and p.call < (op.ret or 0) and (p.ret is None or p.ret > op.call)
    ]
    return a


def _operations(history: History | Sequence[Operation]) -> tuple[list[Operation], str]:
    if isinstance(history, History):
        return history.operations(), history.source
    ops = list(history)
    return ops, "<memory>"


def resolve_model(
    model: Model | str | None, operations: Sequence[Operation], initial: Any = NOT_GIVEN
) -> Model:
    """The model to check against: given, named, or inferred from the ops' fs; starting in
    the state `initial` (JSON) names when one is given. ConfigError for a name or an initial
    value that cannot be used."""
    try:
        if isinstance(model, Model):
            found = model
        elif model is None:
            found = infer_model({o.f for o in operations})
        else:
            found = get_model(model)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if initial is NOT_GIVEN:
        return found
    try:
        return found.starting_at(initial)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"--initial: {e}") from None


@dataclass
class _Searched:
    """What the search found, key by key, before anything is explained."""

    per_key: dict[Any, dict[str, Any]]
    #: failing keys in the order found: (key, ops, fast verdict, deepest op of the search)
    failing: list[tuple[Any, list[_Op], FastVerdict | None, _Op | None]]
    unknown_reasons: list[str]
    peak: int
    #: the deadline the search had (the user's time limit, else DEFAULT_TIME_LIMIT)
    deadline: float


def check_linearizable(
    history: History | Sequence[Operation],
    model: Model | str | None = None,
    time_limit: float | None = None,
    max_configs: int = DEFAULT_MAX_CONFIGS,
    progress: ProgressFn | None = None,
    explain: bool = True,
    all_keys: bool = True,
    source: str | None = None,
    after_failure: float | None = None,
    initial: Any = NOT_GIVEN,
) -> CheckResult:
    """Check a history (or paired operations) for linearizability against `model`, every
    object starting in the state `initial` names (default: the model's own initial state).

    Partitions by key and checks every key, reporting every failing key. Returns valid
    True / False / "unknown" (time limit or memory cap; the reason names the key). Once one
    key has failed the verdict is False whatever the others say, so the keys still undecided
    then get only `after_failure` more seconds (default AFTER_FAILURE_SECONDS, or what is left
    of `time_limit` when one is given) and are then listed as not decided
    (details["undecided_keys"], with a sentence in details["undecided_note"]).
    `all_keys=False` stops at the first failing key (what Porcupine does). With `explain`,
    the first EXPLAIN_KEYS failing keys get an anomaly each and the others are listed in
    details["unexplained_keys"]; details["verdict_seconds"] / ["explain_seconds"] split the time.
    """
    started = time.monotonic()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    operations, found_source = _operations(history)
    with gc_paused() if len(operations) >= GC_PAUSE_OPS else contextlib.nullcontext():
        return _check(
            operations,
            source or found_source,
            model,
            time_limit,
            max_configs,
            progress,
            explain,
            all_keys,
            after_failure,
            initial,
            started,
            rss_before,
        )


def _check(
    operations: list[Operation],
    source: str,
    model: Model | str | None,
    time_limit: float | None,
    max_configs: int,
    progress: ProgressFn | None,
    explain: bool,
    all_keys: bool,
    after_failure: float | None,
    initial: Any,
    started: float,
    rss_before: int,
) -> CheckResult:
    """check_linearizable on paired operations."""
    m = resolve_model(model, operations, initial)
    if after_failure is None:
        after_failure = AFTER_FAILURE_SECONDS
    partitions: dict[Any, list[Operation]] = {}
    for o in operations:
        partitions.setdefault(partition_key(o.key), []).append(o)
    searched = _search_keys(
        partitions, m, source, started, time_limit, after_failure, max_configs, progress, all_keys
    )
    verdict_seconds = time.monotonic() - started
    explain_started = time.monotonic()
    # the keys that failed first in the history come first (the search finds them in its own
    # order): the ones explained, and the one the reason names, are the earliest in time
    searched.failing.sort(key=_failed_at)
    anomalies: list[dict[str, Any]] = []
    unexplained: list[dict[str, Any]] = []
    if explain and searched.failing:
        anomalies, unexplained = _explain_failing(
            searched, m, explain_started, verdict_seconds, max_configs
        )
    explain_seconds = time.monotonic() - explain_started
    return _result(
        searched,
        m,
        anomalies,
        unexplained,
        operations=len(operations),
        keys=len(partitions),
        started=started,
        rss_before=rss_before,
        verdict_seconds=verdict_seconds,
        explain_seconds=explain_seconds,
        time_limit=time_limit,
        after_failure=after_failure,
        all_keys=all_keys,
        initial=initial,
    )


def _search_keys(
    partitions: dict[Any, list[Operation]],
    m: Model,
    source: str,
    started: float,
    time_limit: float | None,
    after_failure: float,
    max_configs: int,
    progress: ProgressFn | None,
    all_keys: bool,
) -> _Searched:
    """The verdict of every key: fast paths first, then the search in time slices."""
    # The user's time limit also decides how long undecided keys run after a failure;
    # without one the search still stops at DEFAULT_TIME_LIMIT: a check never runs forever.
    given_deadline = started + time_limit if time_limit is not None else None
    deadline = started + (time_limit if time_limit is not None else DEFAULT_TIME_LIMIT)
    per_key: dict[Any, dict[str, Any]] = {}
    unknown_reasons: list[str] = []
    peak = 0
    # failing keys in the order found: (key, ops, fast verdict, deepest op of the search)
    failing: list[tuple[Any, list[_Op], FastVerdict | None, _Op | None]] = []
    # Every key first gets a small time slice, then the undecided ones get longer slices,
    # round after round: one hard key cannot starve the others, and a failing key is found
    # early. Searches are resumable, so slicing wastes nothing.
    work: list[tuple[Any, list[_Op], _Task]] = []
    pool = [0]  # configurations held by all the searches, against max_configs
    for key, key_ops in partitions.items():
        kept = _prune_unobservable(_prepare(key_ops, m, source), m)
        entry = per_key[key] = {
            "valid": "unknown",
            "ops": len(key_ops),
            "searched_ops": len(kept),
            "dropped_ops": len(key_ops) - len(kept),
            "configurations": 0,
            "peak_configurations": 0,
            "ms": 0.0,
            "method": "search",
        }
        t0 = time.monotonic()
        fast = _fast_path(kept, m)
        entry["ms"] = round((time.monotonic() - t0) * 1000, 3)
        if fast is None:
            work.append(
                (key, kept, _Task(kept, m, key, max_configs, False, progress, started, pool))
            )
            continue
        entry["valid"] = fast.valid
        entry["method"] = fast.method
        if fast.valid is False:
            failing.append((key, kept, fast, None))
    failed_at: float | None = time.monotonic() if failing else None
    # when the undecided keys stop once the verdict is known to be False
    window_end = (
        None if failed_at is None else _window_end(failed_at, after_failure, given_deadline)
    )
    slice_s = FIRST_SLICE
    while work:
        undecided = []
        for key, kept, task in work:
            entry = per_key[key]
            if failed_at is not None and not all_keys:
                entry["reason"] = "not checked: another key already failed"
                task.release()
                continue
            now = time.monotonic()
            stop = min(now + slice_s, deadline)
            if window_end is not None:
                stop = min(stop, window_end)
            try:
                out = task.run(stop)
            except _OutOfBudget as e:
                entry["configurations"] = e.explored
                entry["ms"] = round(entry["ms"] + (time.monotonic() - now) * 1000, 3)
                entry["reason"] = e.reason
                unknown_reasons.append(e.reason)
                continue
            after = time.monotonic()
            entry["ms"] = round(entry["ms"] + (after - now) * 1000, 3)
            entry["configurations"] = task.explored
            if out is None:
                if window_end is not None and after >= window_end:
                    entry["reason"] = "not decided: the verdict was already known"
                    task.release()
                elif after >= deadline:
                    reason = (
                        f"time limit reached on key {show(key)} after exploring "
                        f"{task.explored} configurations"
                    )
                    entry["reason"] = reason
                    unknown_reasons.append(reason)
                    task.release()
                else:
                    undecided.append((key, kept, task))
                continue
            entry["valid"] = out.valid
            entry["peak_configurations"] = out.peak
            peak = max(peak, out.peak)
            if out.valid is False:
                failing.append((key, kept, None, out.deepest))
                if failed_at is None:
                    failed_at = after
                    window_end = _window_end(failed_at, after_failure, given_deadline)
        work = undecided
        slice_s = min(slice_s * 2, 1.0)
    return _Searched(per_key, failing, unknown_reasons, peak, deadline)


def _explain_failing(
    searched: _Searched,
    m: Model,
    explain_started: float,
    verdict_seconds: float,
    max_configs: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(an anomaly for each of the first EXPLAIN_KEYS failing keys, the others only located:
    their failing op and a sentence, see `_locate`), within the explanation budget."""
    anomalies: list[dict[str, Any]] = []
    unexplained: list[dict[str, Any]] = []
    deadline = searched.deadline
    # What the explanations may cost, so that the explained verdict costs at most about
    # twice the plain one: the first EXPLAIN_KEYS failing keys are explained, the others
    # only listed and counted. A key a fast path refuted has its explanation already (the
    # violation it found); a traced search may improve it (prefix, possible states) only
    # within a shared budget of EXPLAIN_RATIO times the verdict's own time. A key only the
    # search refuted needs a traced rerun to be explained at all: the first such key gets
    # EXPLAIN_SECONDS (a rerun costs about what its verdict did), later ones the budget.
    shared_end = explain_started + max(EXPLAIN_FLOOR_SECONDS, EXPLAIN_RATIO * verdict_seconds)
    rerun_given = False
    for key, kept, fast, deepest in searched.failing:
        if len(anomalies) >= EXPLAIN_KEYS:
            unexplained.append(_locate(key, m, fast, deepest))
            continue
        now = time.monotonic()
        if fast is None and not rerun_given:
            rerun_given = True
            stop = min(now + EXPLAIN_SECONDS, max(deadline, now + MIN_EXPLAIN_SECONDS))
        else:
            stop = shared_end
        anomalies.append(_explain(key, m, kept, fast, deepest, stop, max_configs))
        searched.per_key[key]["explain_ms"] = round((time.monotonic() - now) * 1000, 3)
    return anomalies, unexplained


def _result(
    searched: _Searched,
    m: Model,
    anomalies: list[dict[str, Any]],
    unexplained: list[dict[str, Any]],
    *,
    operations: int,
    keys: int,
    started: float,
    rss_before: int,
    verdict_seconds: float,
    explain_seconds: float,
    time_limit: float | None,
    after_failure: float,
    all_keys: bool,
    initial: Any,
) -> CheckResult:
    """The CheckResult: the verdict, its one sentence, and the details."""
    failing = searched.failing
    unknown_reasons = searched.unknown_reasons
    peak = searched.peak
    per_key = searched.per_key
    explored_total = sum(e["configurations"] for e in per_key.values())
    verdicts = [e["valid"] for e in per_key.values()]
    per_key = {("nil" if k is None else show(k)): v for k, v in per_key.items()}
    valid = merge_validity(verdicts) if verdicts else True
    elapsed = time.monotonic() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reason = None
    if valid is False:
        # one sentence a person reads first; every key's sentence stays in `anomalies`
        if anomalies:
            first = anomalies[0]
            reason = f"key {show(first['key'])}: {first['message']}"
            if len(failing) > 1:
                reason += f" (and {len(failing) - 1} more failing keys)"
        else:
            reason = f"not linearizable (failing keys: {', '.join(show(f[0]) for f in failing)})"
    elif valid == "unknown":
        reason = "; ".join(unknown_reasons[:3])
        if len(unknown_reasons) > 3:
            reason += f" (and {len(unknown_reasons) - 3} more undecided keys)"
    undecided_keys = [k for k, e in per_key.items() if e["valid"] == "unknown"]
    note = None
    if valid is False and undecided_keys:
        budget = (
            f"the {after_failure:g} s budget"
            if time_limit is None
            else f"the time limit of {time_limit:g} s"
        )
        n = len(undecided_keys)
        note = (
            f"{n} key{'s' if n != 1 else ''} not decided within {budget} after the verdict "
            f"was known: {', '.join(undecided_keys)}"
        )
        if not all_keys:
            note = f"{n} key{'s' if n != 1 else ''} not checked after the first failing key"
    details: dict[str, Any] = {
        "model": m.name,
        # what every object started in, as the user gave it (absent: the model's own)
        **({"initial": initial} if initial is not NOT_GIVEN else {}),
        # linearizability is local (Herlihy & Wing): per-key verdicts are the whole history's
        "consistency": "linearizable",
        "scope": "whole-history",
        "ops": operations,
        "keys": keys,
        "failing_keys": [k for k, e in per_key.items() if e["valid"] is False],
        "undecided_keys": undecided_keys,
        "undecided_note": note,
        # failing keys beyond the first EXPLAIN_KEYS: listed, not explained, but each located
        # (its failing op and one sentence), so that counts and "first" cover every key
        "unexplained_keys": [show(u["key"]) for u in unexplained],
        "unexplained": unexplained,
        "per_key": per_key,
        "configurations_explored": explored_total,
        "peak_configurations": peak,
        "memory": {
            "estimated_cache_bytes": peak * BYTES_PER_CONFIG,
            "maxrss_kb_before": rss_before,
            "maxrss_kb_after": rss_after,
            "maxrss_delta_kb": rss_after - rss_before,
            "measure": "estimate = peak configurations x 200 B; maxrss from getrusage",
        },
        "seconds": round(elapsed, 6),
        # the verdict's part and the explanations' part of `seconds`
        "verdict_seconds": round(verdict_seconds, 6),
        "explain_seconds": round(explain_seconds, 6),
        "time_limit": time_limit,
    }
    return CheckResult(CHECKER, valid, reason, anomalies, details)


def partition_key(key: Any) -> Any:
    """The key as a partition: hashable, and typed as JSON types it (key `true` is not key
    `1`)."""
    if type(key) is bool:
        return TRUE if key else FALSE
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


def _window_end(failed_at: float, after_failure: float, deadline: float | None) -> float:
    """Undecided keys run until the time limit when one was given, else `after_failure`
    seconds past the first failure."""
    return deadline if deadline is not None else failed_at + after_failure


# ---------------------------------------------------------------------------------------------
# The Checker


def validate_operations(operations: Sequence[Operation], model: Model, source: str) -> None:
    """Raise InputError (file and line) for an op the model cannot judge: an f it does not
    know, or a value it cannot take (a cas that is not [old new]). The search does the same
    on the way; this runs before any verdict so that bad input is an error, never `unknown`."""
    _prepare(operations, model, source)


class LinearizableChecker(Checker):
    """Linearizability per key against the context's model (inferred when None), within the
    context's time limit; `context.extra["progress"]`, when set, is called about once a
    second on long checks with (key, configurations explored, seconds)."""

    name: ClassVar[str] = CHECKER
    description: ClassVar[str] = (
        "some order of the ops, consistent with real time, obeys the model (per key)"
    )

    def __init__(
        self,
        *,
        max_configs: int = DEFAULT_MAX_CONFIGS,
        explain: bool = True,
        all_keys: bool = True,
    ) -> None:
        self.max_configs = max_configs
        self.explain = explain
        self.all_keys = all_keys

    def validate_input(self, history: History, context: CheckContext) -> None:
        operations = history.operations()
        model = resolve_model(context.model, operations, context.initial)
        validate_operations(operations, model, history.source)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        return check_linearizable(
            history,
            context.model,
            initial=context.initial,
            time_limit=context.time_limit,
            max_configs=self.max_configs,
            progress=context.extra.get("progress"),
            explain=self.explain,
            all_keys=self.all_keys,
        )
