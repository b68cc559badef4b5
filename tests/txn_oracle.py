"""A brute-force oracle for small transactional histories, and a generator of them.

`serializable(txns)` / `strict_serializable(txns)` decide, by trying every serial order of the
transactions that may have happened (ok ones, and each subset of the info ones; failed ones
never did), whether some order replays every ok transaction's reads exactly (its own earlier
micro-ops included), for list-append and rw-register semantics. Strict also requires the order
to keep real time: a transaction that completed before another was invoked comes first. Every
version order is tried along the way (a serial execution fixes the order of each key's
writes), so the oracle needs none of the checker's inference: it is the definition.

`generate(rng, ...)` runs transactions on a store that is serial except where it misbehaves on
purpose (a read that returns a stale prefix / an old value, an aborted transaction whose
appends stay visible), with random invocation and completion points, so that histories are
sometimes serializable, sometimes strictly, sometimes neither.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from dsjepsen.history import History, Op


@dataclass
class Txn:
    """One transaction: what it did (reads with what they returned), its type, and where its
    invocation and completion stand in the history (ret None: never completed)."""

    mops: list[list[Any]]
    type: str  # ok, info, fail
    process: int
    call: int
    ret: int | None


def replay(mops: list[list[Any]], state: dict[Any, Any], append: bool) -> bool:
    """Apply one transaction to `state` (in place); whether its reads saw what the state
    holds (reads of None mean the empty list / the register never written)."""
    for f, k, v in mops:
        if f == "r":
            cur = state.get(k)
            if append:
                if list(v or []) != list(cur or []):
                    return False
            elif v != cur:
                return False
        elif append:
            state[k] = [*state.get(k, []), v]
        else:
            state[k] = v
    return True


def _orders(txns: list[Txn], strict: bool) -> list[list[int]]:
    """Candidate serial orders: every subset of the info transactions with all ok ones, every
    permutation (restricted to real-time order when strict)."""
    ok = [i for i, t in enumerate(txns) if t.type == "ok"]
    info = [i for i, t in enumerate(txns) if t.type == "info"]
    out = []
    for r in range(len(info) + 1):
        for chosen in itertools.combinations(info, r):
            members = ok + list(chosen)
            for perm in itertools.permutations(members):
                if strict and not _realtime_ok(perm, txns):
                    continue
                out.append(list(perm))
    return out


def _realtime_ok(order: tuple[int, ...], txns: list[Txn]) -> bool:
    """No transaction placed after b completed (ok) before b was invoked."""
    for i, b in enumerate(order):
        for a in order[i + 1 :]:
            ra = txns[a].ret
            if txns[a].type == "ok" and ra is not None and ra < txns[b].call:
                return False
    return True


def _check(txns: list[Txn], append: bool, strict: bool) -> bool:
    for order in _orders(txns, strict):
        state: dict[Any, Any] = {}
        good = True
        for i in order:
            t = txns[i]
            # an info transaction's reads say nothing: replay its writes only
            mops = t.mops if t.type == "ok" else [m for m in t.mops if m[0] != "r"]
            if not replay(mops, state, append):
                good = False
                break
        if good:
            return True
    return False


def serializable(txns: list[Txn], append: bool) -> bool:
    return _check(txns, append, strict=False)


def strict_serializable(txns: list[Txn], append: bool) -> bool:
    return _check(txns, append, strict=True)


# ---------------------------------------------------------------------------------------------
# Generation


def generate(
    rng: random.Random,
    append: bool,
    n_txns: int = 4,
    keys: tuple[str, ...] = ("x", "y"),
    max_mops: int = 3,
    misbehave: float = 0.25,
    info: float = 0.1,
    fail: float = 0.1,
) -> list[Txn]:
    """Transactions run one at a time in a random order on a store that misbehaves with
    probability `misbehave` per read (a stale value) and keeps a failed transaction's writes
    now and then; invocation and completion points are random around that order."""
    counters = dict.fromkeys(keys, 0)
    plans: list[list[list[Any]]] = []
    for _ in range(n_txns):
        plan = []
        for _ in range(rng.randint(1, max_mops)):
            k = rng.choice(keys)
            if rng.random() < 0.5:
                plan.append(["r", k, None])
            else:
                counters[k] += 1
                plan.append(["append" if append else "w", k, counters[k]])
        plans.append(plan)
    types = []
    for _ in range(n_txns):
        r = rng.random()
        types.append("fail" if r < fail else "info" if r < fail + info else "ok")
    state: dict[Any, Any] = {}
    history_states: list[dict[Any, Any]] = [{}]
    done: list[list[list[Any]]] = [[] for _ in range(n_txns)]
    order = list(range(n_txns))
    rng.shuffle(order)
    for i in order:
        applies = types[i] == "ok" or (types[i] == "info" and rng.random() < 0.5)
        if types[i] == "fail" and rng.random() < 0.3:
            applies = True  # a failed transaction whose writes stayed: aborted reads follow
        scratch = {k: (list(v) if append else v) for k, v in state.items()}
        out = []
        for f, k, v in plans[i]:
            if f == "r":
                seen = scratch.get(k)
                if rng.random() < misbehave:
                    old = rng.choice(history_states).get(k)
                    if append and old is not None and rng.random() < 0.5:
                        old = old[: rng.randint(0, len(old))]
                    seen = old
                if append:
                    out.append(["r", k, None if seen is None else list(seen)])
                else:
                    out.append(["r", k, seen])
            elif append:
                scratch[k] = [*scratch.get(k, []), v]
                out.append([f, k, v])
            else:
                scratch[k] = v
                out.append([f, k, v])
        done[i] = out
        if applies:
            state = scratch
            history_states.append({k: (list(v) if append else v) for k, v in state.items()})
    # invocation and completion points: a random interleaving around the execution order
    points: list[tuple[float, int, str]] = []
    for rank, i in enumerate(order):
        call = rank + rng.uniform(-1.5, 0.4)
        ret = max(rank + rng.uniform(0.1, 1.5), call + 0.05)
        points.append((call, i, "invoke"))
        if types[i] != "info" or rng.random() < 0.5:
            points.append((ret, i, "complete"))
    points.sort()
    pos = {}
    for p, (_x, i, what) in enumerate(points):
        pos[(i, what)] = p
    return [
        Txn(
            mops=done[i] if types[i] == "ok" else plans[i],
            type=types[i],
            process=i,
            call=pos[(i, "invoke")],
            ret=pos.get((i, "complete")),
        )
        for i in range(n_txns)
    ]


def to_history(txns: list[Txn]) -> History:
    """The transactions as a history: each process one transaction; an invocation carries
    reads of nil, a completion what the transaction did (info and fail: the invocation's
    value), in the order of the points."""
    events: list[tuple[int, int, str]] = []
    for i, t in enumerate(txns):
        events.append((t.call, i, "invoke"))
        if t.ret is not None:
            events.append((t.ret, i, "complete"))
    events.sort()
    ops: list[Op] = []
    for _p, i, what in events:
        t = txns[i]
        invoked = [[f, k, None if f == "r" else v] for f, k, v in t.mops]
        if what == "invoke":
            ops.append(Op(len(ops), len(ops), t.process, "invoke", "txn", invoked))
        else:
            value = t.mops if t.type == "ok" else invoked
            ops.append(Op(len(ops), len(ops), t.process, t.type, "txn", value))
    return History(ops)
