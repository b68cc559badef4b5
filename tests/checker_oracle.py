"""Test helpers for the checker: a brute-force linearizability oracle and history builders."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from dsjepsen.checkers.models import UNKNOWN, Model
from dsjepsen.history import History, Op, Operation


def build_history(specs: list[dict[str, Any]], order: list[tuple[int, str]]) -> History:
    """specs[i] = {f, value, output, type, key?}; order = [(i, "call"|"ret"), ...].

    Each op gets its own process, so Jepsen's process rules hold by construction. An op of
    type info with no "ret" event in `order` never completes.
    """
    ops: list[Op] = []
    for i, what in order:
        s = specs[i]
        n = len(ops)
        if what == "call":
            ops.append(Op(n, n, i, "invoke", s["f"], s["value"], key=s.get("key")))
        else:
            val = s["output"] if s["type"] == "ok" else s["value"]
            ops.append(Op(n, n, i, s["type"], s["f"], val, key=s.get("key")))
    return History(ops)


def oracle(operations: list[Operation], model: Model) -> bool:
    """Try every subset of indeterminate ops and every real-time-respecting order."""
    by_key: dict[Any, list[Operation]] = {}
    for o in operations:
        by_key.setdefault(o.key, []).append(o)
    return all(_oracle_key(ops, model) for ops in by_key.values())


def _oracle_key(ops: list[Operation], model: Model) -> bool:
    items = []
    for o in ops:
        if o.type == "fail":
            continue
        det = o.ret is not None
        if not det and o.f in model.read_fs:
            continue
        value, output = model.prepare(o.f, o.value, o.output if det else UNKNOWN)
        ret = o.ret if det else float("inf")
        items.append((o.f, value, output, o.call, ret, det))
    det_items = [x for x in items if x[5]]
    info_items = [x for x in items if not x[5]]
    for k in range(len(info_items) + 1):
        for chosen in itertools.combinations(info_items, k):
            if _orders(model.init(), det_items + list(chosen), model):
                return True
    return False


def oracle_dp(operations: list[Operation], model: Model) -> bool:
    """The same question by exhaustive search over (set of ops done, model state), memoised.

    No pruning beyond the memo: an op may go next when every op that returned before its call
    is done; indeterminate ops may be done or not; success when every determinate op is done.
    Independent of the checker's JIT search (no classes, no dominance, no dropped ops), and
    fast enough for the 10-14-op histories the pruning tests need.
    """
    by_key: dict[Any, list[Operation]] = {}
    for o in operations:
        by_key.setdefault(o.key, []).append(o)
    return all(_dp_key(ops, model) for ops in by_key.values())


def _dp_key(ops: list[Operation], model: Model) -> bool:
    items = []
    for o in ops:
        if o.type == "fail":
            continue
        det = o.ret is not None
        value, output = model.prepare(o.f, o.value, o.output if det else UNKNOWN)
        items.append((o.f, value, output, o.call, o.ret if det else float("inf"), det))
    n = len(items)
    det_mask = sum(1 << i for i, x in enumerate(items) if x[5])
    # before[i] = ops that returned before op i was invoked: they must be done first
    before = [sum(1 << j for j, y in enumerate(items) if y[4] < x[3]) for x in items]
    dead: set[tuple[int, Any]] = set()

    def go(done: int, state: Any) -> bool:
        if done & det_mask == det_mask:
            return True
        if (done, state) in dead:
            return False
        for i in range(n):
            if done >> i & 1 or before[i] & ~done:
                continue
            f, value, output, _c, _r, _d = items[i]
            ok, nxt = model.step(state, f, value, output)
            if ok and go(done | 1 << i, nxt):
                return True
        dead.add((done, state))
        return False

    return go(0, model.init())


def _orders(state: Any, remaining: list[tuple[Any, ...]], model: Model) -> bool:
    if not remaining:
        return True
    for n, p in enumerate(remaining):
        # p may come next only if nothing remaining returned before p was invoked
        if any(q[4] < p[3] for q in remaining if q is not p):
            continue
        ok, nxt = model.step(state, p[0], p[1], p[2])
        if ok and _orders(nxt, remaining[:n] + remaining[n + 1 :], model):
            return True
    return False


def hard_kv_ops(seed: int, key: Any = "k", n: int = 300, concurrency: int = 30) -> list[Op]:
    """A valid kv history the search cannot decide quickly: 30 concurrent processes append
    only "a" or "b" (so the epoch fast path cannot tell the appends apart) and get."""
    import random

    rng = random.Random(seed)
    state = ""
    ops: list[Op] = []
    pending: dict[int, tuple[str, Any]] = {}
    invoked = 0
    while invoked < n or pending:
        slot = rng.randrange(concurrency)
        if slot in pending:
            f, v = pending.pop(slot)
            if f == "append":
                state += v
                ops.append(Op(len(ops), len(ops), f"{key}-{slot}", "ok", f, v, key=key))
            else:
                ops.append(Op(len(ops), len(ops), f"{key}-{slot}", "ok", f, state, key=key))
        elif invoked < n:
            f = rng.choice(["append", "get"])
            v = rng.choice("ab") if f == "append" else None
            pending[slot] = (f, v)
            ops.append(Op(len(ops), len(ops), f"{key}-{slot}", "invoke", f, v, key=key))
            invoked += 1
    return ops


# ---------------------------------------------------------------------------------------------
# Models whose step has several successors, checked with no lazy bookkeeping


def any_element_queue(state: tuple[Any, ...], f: str, value: Any, output: Any) -> list[Any]:
    """Knossos's unordered queue stated directly: the state is the sorted tuple of the elements
    held, and an indeterminate dequeue that took effect removed any ONE of them (one successor
    per distinct element; none on an empty queue, where taking effect is not taking effect).
    The checkers' model keeps that choice open instead; this is what it must agree with."""

    def without(v: Any) -> tuple[Any, ...]:
        rest = list(state)
        rest.remove(v)
        return tuple(rest)

    if f == "enqueue":
        return [tuple(sorted(state + (value,), key=repr))]
    if output is UNKNOWN:
        return [without(v) for v in dict.fromkeys(state)]
    if output is None:
        return [state] if not state else []
    return [without(output)] if output in state else []


def oracle_successors(
    operations: list[Operation],
    model: Model,
    successors: Callable[[Any, str, Any, Any], list[Any]],
    init: Any,
    order: str = "real-time",
) -> bool:
    """Exhaustive search over (ops done, state), memoised, for a model given by `successors`.

    `order` "real-time" (linearizability, per key): an op may go next when every op that
    returned before its call is done. "process" (sequential consistency, all keys as one
    object, so use single-key histories): when its process's earlier ops are done. Indeterminate
    ops may be done or not; success when every determinate op is done. Only `model.prepare`
    (value normalisation) is shared with the checkers.
    """
    if order == "real-time":
        by_key: dict[Any, list[Operation]] = {}
        for o in operations:
            by_key.setdefault(o.key, []).append(o)
        groups = list(by_key.values())
    else:
        groups = [list(operations)]
    return all(_successor_search(ops, model, successors, init, order) for ops in groups)


def _successor_search(
    ops: list[Operation],
    model: Model,
    successors: Callable[[Any, str, Any, Any], list[Any]],
    init: Any,
    order: str,
) -> bool:
    items = []
    for o in ops:
        if o.type == "fail":
            continue
        det = o.ret is not None
        value, output = model.prepare(o.f, o.value, o.output if det else UNKNOWN)
        ret = o.ret if det else float("inf")
        items.append((o.f, value, output, o.call, ret, det, o.process))
    n = len(items)
    det_mask = sum(1 << i for i, x in enumerate(items) if x[5])
    if order == "real-time":
        before = [sum(1 << j for j, y in enumerate(items) if y[4] < x[3]) for x in items]
    else:
        before = [
            sum(1 << j for j, y in enumerate(items) if y[6] == x[6] and y[3] < x[3]) for x in items
        ]
    dead: set[tuple[int, Any]] = set()

    def go(done: int, state: Any) -> bool:
        if done & det_mask == det_mask:
            return True
        if (done, state) in dead:
            return False
        for i in range(n):
            if done >> i & 1 or before[i] & ~done:
                continue
            f, value, output = items[i][:3]
            for nxt in successors(state, f, value, output):
                if go(done | 1 << i, nxt):
                    return True
        dead.add((done, state))
        return False

    return go(0, init)
