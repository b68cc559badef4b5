"""The transactional checkers at scale: a generated 1,000,000-transaction list-append (or
rw-register) history, checked; prints CPU seconds and peak memory of the check (reading the file
excluded) and of the whole `dsjepsen check` of the file as elle-cli JSON lines.

Usage: python bench/txn_checker.py [--workload list-append|rw-register|both] [--txns N]
       [--processes P] [--keys K] [--appends-per-key A] [--seed S] [--consistency MODEL]
       [--bug] [--keep DIR]

The history is what a strict-serializable store would give: 20 processes, each running one
transaction at a time of 1-5 micro-ops over 100 keys live at a time (a key is retired after 16
appends / writes and a fresh one takes its place), every transaction taking effect atomically
between its invocation and its completion; about 1 in 100 ends `info` (it took effect or not,
half and half, and its process is replaced). The verdict must therefore be valid: a check that
says otherwise is a false alarm, and the script exits 1. `--bug` makes 1 transaction in 1000
read a stale snapshot instead, and the verdict must then be invalid.

Targets (issue 26): the check under 10 s CPU and 2 GB, the whole command under 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WORKLOADS = ("list-append", "rw-register")


def generate(
    path: Path,
    workload: str,
    n_txns: int,
    processes: int,
    live_keys: int,
    per_key: int,
    seed: int,
    bug: bool,
) -> None:
    """Write the history as elle-cli JSON lines (see the module docstring)."""
    rng = random.Random(seed)
    append = workload == "list-append"
    write_f = "append" if append else "w"
    state: dict[int, Any] = {}
    snapshot: dict[int, Any] = {}  # a stale copy the --bug transactions read from
    writes: dict[int, int] = {}
    keys = list(range(live_keys))
    next_key = live_keys
    procs = list(range(processes))
    next_proc = processes
    # slot -> [process, invocation micro-ops, completed micro-ops or None (not applied yet)]
    running: dict[int, list[Any]] = {}
    invoked = index = 0
    out = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    dumps = json.JSONEncoder(separators=(",", ":")).encode

    def emit(process: int, typ: str, value: list[Any]) -> None:
        nonlocal index
        out.write(
            dumps({"index": index, "type": typ, "process": process, "f": "txn", "value": value})
        )
        out.write("\n")
        index += 1

    def new_txn() -> list[list[Any]]:
        nonlocal next_key
        txn: list[list[Any]] = []
        for _ in range(rng.randint(1, 5)):
            k = keys[rng.randrange(live_keys)]
            if rng.random() < 0.5:
                txn.append(["r", k, None])
                continue
            n = writes.get(k, 0) + 1
            if n > per_key:  # retire the key: a fresh one takes its place
                keys[keys.index(k)] = next_key
                k, n = next_key, 1
                next_key += 1
            writes[k] = n
            txn.append([write_f, k, n])
        return txn

    def apply(txn: list[list[Any]], stale: bool) -> list[list[Any]]:
        done: list[list[Any]] = []
        for f, k, v in txn:
            if f == "r":
                seen = (snapshot if stale else state).get(k)
                done.append(["r", k, list(seen) if append and seen is not None else seen])
            elif append:
                state[k] = [*state.get(k, []), v]
                done.append([f, k, v])
            else:
                state[k] = v
                done.append([f, k, v])
        return done

    while invoked < n_txns or running:
        slot = rng.randrange(processes)
        entry = running.get(slot)
        if entry is None:
            if invoked >= n_txns:
                continue
            txn = new_txn()
            running[slot] = [procs[slot], txn, None]
            emit(procs[slot], "invoke", txn)
            invoked += 1
        elif entry[2] is None:
            stale = bug and rng.random() < 0.001
            if rng.random() < 0.01:  # crashes: applied or not, then info
                if rng.random() < 0.5:
                    apply(entry[1], False)
                emit(entry[0], "info", entry[1])
                del running[slot]
                procs[slot] = next_proc
                next_proc += 1
                continue
            entry[2] = apply(entry[1], stale)
            if rng.random() < 0.0005:
                snapshot = {k: (list(v) if append else v) for k, v in state.items()}
        else:
            emit(entry[0], "ok", entry[2])
            del running[slot]
    out.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def check_in_process(path: Path, workload: str, consistency: str) -> dict[str, Any]:
    """Read the file (timed apart), then the check alone: CPU seconds and memory."""
    from dsjepsen.checkers.base import CheckContext
    from dsjepsen.checkers.list_append import ListAppendChecker
    from dsjepsen.checkers.rw_register import RwRegisterChecker
    from dsjepsen.formats import read_history

    t0, c0 = time.perf_counter(), time.process_time()
    history = read_history(path)
    history.operations(orphans=True)
    read_wall, read_cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_before = rss_mb()
    checker = ListAppendChecker() if workload == "list-append" else RwRegisterChecker()
    context = CheckContext(consistency=consistency)
    t1, c1 = time.perf_counter(), time.process_time()
    result = checker.check(history, context)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    d = result.details
    return {
        "valid": result.valid,
        "anomaly_types": d.get("anomaly_types"),
        "txns": d.get("txns"),
        "edges": sum(d.get("edges", {}).values()),
        "phase_s": d.get("phase_seconds"),
        "read_s": round(read_wall, 2),
        "read_cpu_s": round(read_cpu, 2),
        "check_wall_s": round(wall, 2),
        "check_cpu_s": round(cpu, 2),
        "rss_after_read_mb": round(rss_before),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def whole_command(path: Path, workload: str, consistency: str) -> dict[str, Any]:
    """`dsjepsen check FILE --checker W --consistency C` in a child of a fresh interpreter (so
    that the children's peak memory is this command's alone): wall, CPU, peak RSS."""
    argv = [
        sys.executable, "-m", "dsjepsen", "check", str(path),
        "--checker", workload, "--consistency", consistency,
    ]  # fmt: skip
    code = (
        "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
        f"p = subprocess.run({argv!r}, capture_output=True, text=True); "
        "wall = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(json.dumps({'exit': p.returncode, 'first_line': (p.stdout.splitlines() or "
        "[p.stderr.strip()])[0][-120:], 'wall_s': round(wall, 2), "
        "'cpu_s': round(r.ru_utime + r.ru_stime, 2), 'peak_rss_mb': round(r.ru_maxrss / 1024)}))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=(*WORKLOADS, "both"), default="both")
    ap.add_argument("--txns", type=int, default=1_000_000)
    ap.add_argument("--processes", type=int, default=20)
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--appends-per-key", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--consistency", default="strict-serializable")
    ap.add_argument("--bug", action="store_true", help="stale reads: the verdict must be invalid")
    ap.add_argument("--keep", metavar="DIR", help="keep (and reuse) the generated files here")
    ap.add_argument("--skip-command", action="store_true", help="only the in-process check")
    args = ap.parse_args()
    workloads = WORKLOADS if args.workload == "both" else (args.workload,)
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="dsj-txn-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    failed = False
    for w in workloads:
        name = (
            f"{w}-{args.txns}-{args.processes}-{args.keys}-{args.seed}{'-bug' if args.bug else ''}"
        )
        path = tmp / f"{name}.jsonl"
        if not path.exists():
            t0 = time.perf_counter()
            generate(
                path,
                w,
                args.txns,
                args.processes,
                args.keys,
                args.appends_per_key,
                args.seed,
                args.bug,
            )
            print(
                f"{w}: generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in "
                f"{time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        # each measurement in a fresh interpreter, so one's memory does not count for another
        code = (
            "import json, sys; sys.path.insert(0, 'bench'); import txn_checker as b; "
            f"print(json.dumps(b.check_in_process(b.Path({str(path)!r}), {w!r}, "
            f"{args.consistency!r})))"
        )
        p = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
        if p.returncode != 0:
            print(p.stderr[-3000:])
            return 2
        check = json.loads(p.stdout.strip().splitlines()[-1])
        print(f"{w}: check ({args.consistency}): {json.dumps(check)}", flush=True)
        expected: Any = not args.bug
        if check["valid"] is not expected:
            print(f"{w}: verdict {check['valid']}, expected {expected}", flush=True)
            failed = True
        if not args.skip_command:
            whole = whole_command(path, w, args.consistency)
            print(f"{w}: whole command: {json.dumps(whole)}", flush=True)
        if not args.keep:
            path.unlink()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
