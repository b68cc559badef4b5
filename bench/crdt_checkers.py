"""set-full, counter and convergence on generated 1,000,000-op histories: prints the time and
the peak memory (max RSS) of each check.

Usage: python bench/crdt_checkers.py [--ops N] [--which set|counter|both] [--seed S]

Shapes follow the workloads' defaults: the g-set history has 5 active sets, each retired after
100 adds, half adds and half whole-set reads, through 5 nodes that lag behind by a few elements
(so stale reads occur, though no node ever returns fewer than it did before); the counter history has 5 counters, half increments of either sign and
half reads, 3% of increments indeterminate. 20 concurrent processes; every key is read through
every node at the end (the final reads). Both histories come from correct stores, so both
verdicts must be valid. Goal for each check: under 10 s and under 2 GB.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from typing import Any

from dsjepsen.checkers.base import CheckContext
from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.counter import CounterChecker
from dsjepsen.checkers.set_full import SetFullChecker
from dsjepsen.history import History, Op

NODES = ("n1", "n2", "n3", "n4", "n5")
CONCURRENCY = 20
ACTIVE_KEYS = 5
ADDS_PER_KEY = 100


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate_set(n_ops: int, seed: int) -> tuple[History, int]:
    """(history, index where the final reads begin)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    sets: dict[int, list[int]] = {}
    active = list(range(ACTIVE_KEYS))
    for k in active:
        sets[k] = []
    next_key = ACTIVE_KEYS
    next_el = 0
    adds: dict[int, int] = {}
    seen: dict[tuple[str, int], int] = {}  # (node, key) -> elements that node has returned
    open_: dict[int, tuple[int, str, int, Any, str]] = {}  # slot -> process, f, key, value, node
    procs = list(range(CONCURRENCY))
    invoked = 0

    def emit(p: int, typ: str, f: str, key: int, value: Any, node: str) -> None:
        ops.append(Op(len(ops), len(ops) * 1000, p, typ, f, value, key=key, node=node))

    while invoked < n_ops or open_:
        slot = rng.randrange(CONCURRENCY)
        if slot in open_:
            p, f, key, value, node = open_.pop(slot)
            if f == "add":
                if rng.random() < 0.02:  # timed out: applied or not, the process crashes
                    if rng.random() < 0.5:
                        sets[key].append(value)
                    emit(p, "info", f, key, value, node)
                    procs[slot] += CONCURRENCY
                    continue
                sets[key].append(value)
                emit(p, "ok", f, key, value, node)
            else:
                elements = sets[key]
                lag = rng.choice((0, 0, 0, 1, 2, 3))  # this node has not heard of the newest
                # ... but never forgets what it has returned (a replica only grows)
                shown = seen[node, key] = max(seen.get((node, key), 0), len(elements) - lag)
                emit(p, "ok", f, key, elements[:shown], node)
        elif invoked < n_ops:
            i = rng.randrange(ACTIVE_KEYS)
            key = active[i]
            node = NODES[slot % len(NODES)]
            if rng.random() < 0.5:
                next_el += 1
                f, value = "add", next_el
                adds[key] = adds.get(key, 0) + 1
                if adds[key] == ADDS_PER_KEY:  # retire the set for a fresh one
                    active[i] = next_key
                    sets[next_key] = []
                    next_key += 1
            else:
                f, value = "read-set", None
            open_[slot] = (procs[slot], f, key, value, node)
            emit(procs[slot], "invoke", f, key, value, node)
            invoked += 1
    final = len(ops)
    p = max(procs) + 1
    for key, elements in sets.items():
        for node in NODES:
            emit(p, "invoke", "read-set", key, None, node)
            emit(p, "ok", "read-set", key, list(elements), node)
    return History(ops, "<generated g-set>"), final


def generate_counter(n_ops: int, seed: int) -> tuple[History, int]:
    rng = random.Random(seed)
    ops: list[Op] = []
    value: dict[int, int] = dict.fromkeys(range(ACTIVE_KEYS), 0)
    open_: dict[int, tuple[int, str, int, Any, str]] = {}
    procs = list(range(CONCURRENCY))
    invoked = 0

    def emit(p: int, typ: str, f: str, key: int, v: Any, node: str) -> None:
        ops.append(Op(len(ops), len(ops) * 1000, p, typ, f, v, key=key, node=node))

    while invoked < n_ops or open_:
        slot = rng.randrange(CONCURRENCY)
        if slot in open_:
            p, f, key, v, node = open_.pop(slot)
            if f == "increment":
                if rng.random() < 0.03:
                    if rng.random() < 0.5:
                        value[key] += v
                    emit(p, "info", f, key, v, node)
                    procs[slot] += CONCURRENCY
                    continue
                value[key] += v
                emit(p, "ok", f, key, v, node)
            else:
                emit(p, "ok", f, key, value[key], node)
        elif invoked < n_ops:
            key = rng.randrange(ACTIVE_KEYS)
            node = NODES[slot % len(NODES)]
            if rng.random() < 0.5:
                f, v = "increment", rng.choice((-5, -4, -3, -2, -1, 1, 2, 3, 4, 5))
            else:
                f, v = "read-counter", None
            open_[slot] = (procs[slot], f, key, v, node)
            emit(procs[slot], "invoke", f, key, v, node)
            invoked += 1
    final = len(ops)
    p = max(procs) + 1
    for key, total in value.items():
        for node in NODES:
            emit(p, "invoke", "read-counter", key, None, node)
            emit(p, "ok", "read-counter", key, total, node)
    return History(ops, "<generated counter>"), final


def bench(name: str, history: History, final: int, checker: Any) -> None:
    rss0 = _rss_mib()
    t, c = time.perf_counter(), time.process_time()
    r = checker.check(history, CheckContext(final_from_index=final))
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    rss1 = _rss_mib()
    print(
        f"{name}: {len(history)} ops ({len(history) // 2} operations); check {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU; verdict {r.valid}; max RSS {rss1:.0f} MiB (before the check "
        f"{rss0:.0f} MiB); goal < 10 s and < 2048 MiB"
    )
    if r.valid is not True:
        raise SystemExit(f"{name}: expected valid, got {r.valid}: {r.reason}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=1_000_000, help="invocations")
    ap.add_argument("--which", choices=("set", "counter", "both"), default="both")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.which in ("set", "both"):
        t = time.perf_counter()
        h, final = generate_set(args.ops, args.seed)
        print(f"g-set history generated in {time.perf_counter() - t:.1f} s")
        bench("set-full", h, final, SetFullChecker())
        bench("convergence (g-set)", h, final, ConvergenceChecker())
        del h
    if args.which in ("counter", "both"):
        t = time.perf_counter()
        h, final = generate_counter(args.ops, args.seed)
        print(f"counter history generated in {time.perf_counter() - t:.1f} s")
        bench("counter", h, final, CounterChecker(lower="node"))
        bench("convergence (counter)", h, final, ConvergenceChecker())


if __name__ == "__main__":
    main()
