"""The kafka checker on a generated history of 1,000,000 sent messages: prints the CPU seconds
and the peak memory (max RSS) of the check, and its verdict.

Usage: python bench/kafka_checker.py [--messages N] [--seed S] [--bug]

The history has the kafka workload's shape at Maelstrom's defaults: 10 keys in use at once,
chosen exponentially, each retired after 16 sends (so 1,000,000 messages are 62,500 keys);
20 processes, half sends and half polls, every process assigned a few of the keys in use and
polling them from its own offsets (a poll returns what was appended since), now and then
reassigned; then final polls read every key from offset 0. The log is correct, so the verdict
must be valid; with --bug one poll in 10,000 skips a message, which must be found.

Goal (issue 23; Maelstrom's own kafka analysis has taken 45 minutes, its issue 51): under 20 s
of CPU and under 2 GB.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from typing import Any

from dsjepsen.checkers.kafka import KafkaChecker
from dsjepsen.history import History, Op, gc_paused

PROCESSES = 20
ACTIVE = 10
WRITES_PER_KEY = 16
NODES = ("n0", "n1")


def generate(messages: int, seed: int, bug: bool) -> History:
    rng = random.Random(seed)
    ops: list[Op] = []
    logs: dict[str, list[int]] = {}
    active = [str(k) for k in range(ACTIVE)]
    next_key = ACTIVE
    writes: dict[str, int] = {}
    weights = [2.0**-i for i in range(ACTIVE)]
    offsets: list[dict[str, int]] = [{} for _ in range(PROCESSES)]
    t = 0

    def emit(p: int, typ: str, f: str, value: Any, key: Any = None) -> None:
        nonlocal t
        t += 1000
        ops.append(Op(len(ops), t, p, typ, f, value, key=key, node=NODES[p % 2]))

    sent = 0
    while sent < messages:
        p = rng.randrange(PROCESSES)
        r = rng.random()
        if r < 1 / 64:
            keys = sorted(set(rng.sample(active, 3)))
            emit(p, "invoke", "assign", {"keys": keys})
            offsets[p] = {k: offsets[p].get(k, 0) for k in keys}
            emit(p, "ok", "assign", {"keys": keys, "committed": {}, "offsets": dict(offsets[p])})
        elif r < 0.5:
            slot = rng.choices(range(ACTIVE), weights)[0]
            key = active[slot]
            n = writes[key] = writes.get(key, 0) + 1
            if n >= WRITES_PER_KEY:
                active[slot] = str(next_key)
                next_key += 1
            log = logs.setdefault(key, [])
            emit(p, "invoke", "send", n, key)
            log.append(n)
            emit(p, "ok", "send", [len(log) - 1, n], key)
            sent += 1
        else:
            emit(p, "invoke", "poll", None)
            msgs = {}
            for k, start in offsets[p].items():
                log = logs.get(k, [])
                if bug and start < len(log) and rng.random() < 1e-4:
                    start += 1  # the bug: a message skipped
                if start < len(log):  # a key with nothing new is left out, as nodes may
                    msgs[k] = [[o, log[o]] for o in range(start, len(log))]
                offsets[p][k] = max(start, len(log))
            emit(p, "ok", "poll", msgs)
    # final polls: one fresh process per node reads every key from the start
    for i, _ in enumerate(NODES):
        p = PROCESSES + i
        keys = list(logs)
        emit(p, "invoke", "assign", {"keys": keys, "seek_to_beginning": True})
        emit(p, "ok", "assign", {"keys": keys, "seek_to_beginning": True})
        emit(p, "invoke", "poll", None)
        emit(p, "ok", "poll", {k: [[o, m] for o, m in enumerate(log)] for k, log in logs.items()})
    return History(ops)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bug", action="store_true", help="skip one message in 10,000 polls")
    args = ap.parse_args()
    t0 = time.process_time()
    with gc_paused():  # as a history read from a file is built (read_jsonl)
        history = generate(args.messages, args.seed, args.bug)
    made = time.process_time() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t1 = time.process_time()
    result = KafkaChecker().check(history)
    cpu = time.process_time() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    d = result.details
    print(
        f"kafka checker: {args.messages:,} messages, {len(history.ops):,} ops, {d['keys']:,} "
        f"keys, {d['messages_polled']:,} messages polled (history built in {made:.1f} s)"
    )
    print(f"  verdict: {result.valid} {d['counts'] or ''}")
    print(
        f"  check: {cpu:.1f} s CPU; peak memory of the process {peak:.0f} MiB, of which the "
        f"history {rss_before:.0f} MiB (goal: < 20 s, < 2 GB)"
    )


if __name__ == "__main__":
    main()
