"""Test helpers for the checker: a brute-force linearizability oracle and history builders."""

from __future__ import annotations

import itertools
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
