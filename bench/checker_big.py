"""A generated register history (default 100,000 ops; 10 keys, 20 concurrent processes, some
info and fail ops), checked for linearizability: prints the generation time, the check's time
(wall and CPU) and the peak memory (max RSS, before the check and after it).

Usage: python bench/checker_big.py [--ops N] [--keys K] [--concurrency C] [--seed S] [--runs R]
The history is produced by a simulated linearizable cas-register per key, so the verdict must
be valid; values are drawn from a small range (0-9) so that the search, not only the
unique-value fast path, is exercised; about 0.9% of the ops are indeterminate writes.

Goal (issue 31): less CPU and memory than Porcupine (Go) on the same history kind
(../shared/reference/anchors.md). Measured on this 2-vCPU machine, shared with other runs
(check CPU: median of the runs; RSS: the whole process, the history itself included; load
5-9; docs/checker.md has the details):

| ops | before (2026-12-07) | after | Porcupine |
|---|---|---|---|
| 300,000 | 12.6-13.2 s CPU, 755 MiB | 1.8-2.3 s CPU, 385 MiB | 4.9 s CPU, 1.7 GB |
| 1,000,000 | 43.4 s CPU, 2,483 MiB | 7.1-8.2 s CPU, 1,214 MiB | 15.8 s CPU, 17.7 GB |
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.history import History, Op

#: ../shared/reference/anchors.md, measured on this machine kind
PORCUPINE = "300,000 ops 4.9 s CPU, 1.7 GB; 1,000,000 ops at most 15.8 s CPU, 17.7 GB"


def generate(n_ops: int, keys: int, concurrency: int, seed: int) -> History:
    rng = random.Random(seed)
    state: dict[int, int | None] = dict.fromkeys(range(keys))
    ops: list[Op] = []
    open_ops: dict[int, tuple[int, str, int, object]] = {}  # slot -> (process, f, key, value)
    procs = list(range(concurrency))
    next_proc = concurrency
    invoked = 0

    def emit(process: int, typ: str, f: str, key: int, value: object) -> None:
        ops.append(Op(len(ops), len(ops), process, typ, f, value, key=key))

    while invoked < n_ops or open_ops:
        slot = rng.randrange(concurrency)
        if slot in open_ops:
            process, f, key, value = open_ops.pop(slot)
            # the op takes effect atomically now (its linearization point), then completes
            r = rng.random()
            if f == "read":
                emit(process, "ok", f, key, state[key])
            elif f == "write":
                if r < 0.03:  # timed out: maybe applied, process crashes
                    if rng.random() < 0.5:
                        state[key] = value  # type: ignore[assignment]
                    emit(process, "info", f, key, value)
                    procs[slot] = next_proc
                    next_proc += 1
                    continue
                state[key] = value  # type: ignore[assignment]
                emit(process, "ok", f, key, value)
            else:  # cas
                old, new = value  # type: ignore[misc]
                if state[key] == old:
                    state[key] = new
                    emit(process, "ok", f, key, value)
                else:
                    emit(process, "fail", f, key, value)
        elif invoked < n_ops:
            key = rng.randrange(keys)
            r = rng.random()
            if r < 0.5:
                f, value = "read", None
            elif r < 0.8:
                f, value = "write", rng.randrange(10)
            else:
                f, value = "cas", [rng.randrange(10), rng.randrange(10)]
            process = procs[slot]
            open_ops[slot] = (process, f, key, value)
            emit(process, "invoke", f, key, value)
            invoked += 1
    return History(ops, "<generated>")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    t = time.perf_counter()
    h = generate(args.ops, args.keys, args.concurrency, args.seed)
    ops = h.operations()
    gen_s = time.perf_counter() - t
    counts = {typ: sum(1 for o in ops if o.type == typ) for typ in ("ok", "fail", "info")}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    walls, cpus = [], []
    r = None
    for _ in range(args.runs):
        t, c = time.perf_counter(), time.process_time()
        r = check_linearizable(ops, "cas-register")
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    assert r is not None
    check_s, cpu_s = statistics.median(walls), statistics.median(cpus)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"operations: {len(ops)} ({counts}), keys {args.keys}, concurrency {args.concurrency}")
    print(f"generate + pair: {gen_s:.2f} s")
    print(
        f"check: {check_s:.2f} s wall, {cpu_s:.2f} s CPU (median of {args.runs})  verdict {r.valid}"
    )
    print(
        f"configurations explored {r.details['configurations_explored']}, peak "
        f"{r.details['peak_configurations']}"
    )
    print(
        f"max RSS: {rss1 / 1024:.0f} MiB (before check {rss0 / 1024:.0f} MiB: the history; "
        f"the check added {(rss1 - rss0) / 1024:.0f} MiB)"
    )
    print(f"Porcupine on this history kind: {PORCUPINE}")


if __name__ == "__main__":
    main()
