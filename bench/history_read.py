"""Reading large histories (issue 31): CPU seconds and peak memory of `read_history` on a
generated history.jsonl (goal: 3,600,000 ops in under 10 s) and a generated Jepsen
history.edn of list-append transactions (goal: 100 MB in under 10 s and under 1 GB).

Each read runs in a fresh interpreter, so its peak RSS is that read's alone (the interpreter
with dsjepsen imported is part of it: it is what `dsjepsen check` pays too). Prints figures;
asserts nothing about time.

    python bench/history_read.py                      # both goals
    python bench/history_read.py --jsonl-ops 1000000 --edn-txns 0
    python bench/history_read.py --keep DIR           # keep the generated files in DIR

The JSONL history is what the harness records for a register workload (`dump_op`'s shape:
index, time, process, type, f, value, key, node; a crashed process continues under a new id).
The EDN history is Jepsen's list-append shape, one op map per line as Jepsen's store writes it
(`{:index 0, :time 0, :type :invoke, :process 0, :f :txn, :value [[:append 5 1] [:r 3 nil]]}`),
reads returning the whole list of a key (keys retire after 16 appends, as Jepsen's
list-append generator does).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

NODES = ("n1", "n2", "n3", "n4", "n5")


def generate_jsonl(path: Path, n_ops: int, processes: int = 20, seed: int = 1) -> None:
    """A register history of `n_ops` lines in the recorder's shape (see the module docstring)."""
    rng = random.Random(seed)
    procs = list(range(processes))
    next_proc = processes
    running: dict[int, tuple[int, str, Any, int]] = {}  # slot -> process, f, value, key
    t = 0
    with open(path, "w", encoding="utf-8") as out:
        lines: list[str] = []
        for i in range(n_ops):
            t += rng.randrange(1, 200_000)
            slot = rng.randrange(processes)
            node = NODES[slot % len(NODES)]
            entry = running.pop(slot, None)
            if entry is None:
                f = rng.choice(("read", "read", "write", "cas"))
                key = rng.randrange(10)
                value: Any = None
                if f == "write":
                    value = rng.randrange(5)
                elif f == "cas":
                    value = [rng.randrange(5), rng.randrange(5)]
                running[slot] = (procs[slot], f, value, key)
                p, typ = procs[slot], "invoke"
            else:
                p, f, value, key = entry
                roll = rng.random()
                typ = "ok" if roll < 0.9 else "fail" if roll < 0.97 else "info"
                if f == "read" and typ == "ok":
                    value = rng.randrange(5)
                if typ == "info":
                    procs[slot] = next_proc
                    next_proc += 1
            lines.append(
                f'{{"index":{i},"time":{t},"process":{p},"type":"{typ}","f":"{f}",'
                f'"value":{json.dumps(value, separators=(",", ":"))},"key":{key},'
                f'"node":"{node}"}}\n'
            )
            if len(lines) >= 65536:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def _edn(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, list):
        return "[" + " ".join(_edn(x) for x in v) + "]"
    if isinstance(v, str):
        return ":" + v
    return str(v)


def generate_edn(
    path: Path, n_txns: int, processes: int = 20, keys: int = 100, seed: int = 1
) -> None:
    """A list-append history of `n_txns` transactions in Jepsen's history.edn layout."""
    rng = random.Random(seed)
    state: dict[int, list[int]] = {}
    live = list(range(keys))
    next_key = keys
    procs = list(range(processes))
    next_proc = processes
    running: dict[int, tuple[int, list[list[Any]]]] = {}
    index = invoked = 0
    t = 0
    with open(path, "w", encoding="utf-8") as out:
        lines: list[str] = []

        def emit(process: int, typ: str, value: list[list[Any]]) -> None:
            nonlocal index, t
            t += rng.randrange(1, 200_000)
            lines.append(
                f"{{:index {index}, :time {t}, :type :{typ}, :process {process}, :f :txn, "
                f":value {_edn(value)}}}\n"
            )
            index += 1

        while invoked < n_txns or running:
            slot = rng.randrange(processes)
            entry = running.pop(slot, None)
            if entry is None:
                if invoked >= n_txns:
                    continue
                txn: list[list[Any]] = []
                for _ in range(rng.randint(1, 5)):
                    j = rng.randrange(keys)
                    k = live[j]
                    if rng.random() < 0.5:
                        txn.append(["r", k, None])
                        continue
                    if len(state.get(k, ())) >= 16:
                        live[j] = k = next_key
                        next_key += 1
                    n = len(state.setdefault(k, [])) + 1
                    state[k].append(n)  # applied at invocation: a serial, valid history
                    txn.append(["append", k, n])
                running[slot] = (procs[slot], txn)
                emit(procs[slot], "invoke", txn)
                invoked += 1
            else:
                p, txn = entry
                if rng.random() < 0.01:
                    emit(p, "info", txn)
                    procs[slot] = next_proc
                    next_proc += 1
                    continue
                done = []
                for m in txn:
                    if m[0] == "r":
                        seen = state.get(m[1])
                        done.append(["r", m[1], list(seen) if seen else None])
                    else:
                        done.append(m)
                emit(p, "ok", done)
            if len(lines) >= 65536:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


_CHILD = """
import json, resource, sys, time
c = time.process_time(); w = time.perf_counter()
from dsjepsen.formats import read_history
h = read_history(sys.argv[1])
cpu, wall = time.process_time() - c, time.perf_counter() - w
print(json.dumps({"ops": len(h.ops), "cpu_s": cpu, "wall_s": wall,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(path: Path) -> dict[str, Any]:
    """Read `path` with read_history in a fresh interpreter: ops, CPU and wall seconds (import
    of dsjepsen included), peak RSS in MB."""
    p = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(p.stdout)


def report(label: str, path: Path, repeats: int) -> None:
    runs = [measure(path) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["cpu_s"])
    mb = path.stat().st_size / 1e6
    print(
        f"{label:6s} {best['ops']:>10,} ops {mb:7.1f} MB  {best['cpu_s']:6.2f} s CPU "
        f"{best['wall_s']:6.2f} s wall  {best['peak_mb']:6.0f} MB peak  "
        f"{best['cpu_s'] / best['ops'] * 1e6:5.2f} us/op  (best of {repeats})",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl-ops", type=int, default=3_600_000)
    ap.add_argument("--edn-txns", type=int, default=360_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="write the histories here and keep them")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dsj-bench-") as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        if args.jsonl_ops:
            path = where / f"register-{args.jsonl_ops}.jsonl"
            if not path.exists():
                generate_jsonl(path, args.jsonl_ops)
            report("jsonl", path, args.repeats)
        if args.edn_txns:
            path = where / f"list-append-{args.edn_txns}.edn"
            if not path.exists():
                generate_edn(path, args.edn_txns)
            report("edn", path, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
