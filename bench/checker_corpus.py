"""Per-file check time and verdict on the Porcupine corpus, beside Porcupine's own figures.

Usage: python bench/checker_corpus.py [DIR] [--runs N]
Parse time is measured separately; the check time is the median of N runs of the check call.
Porcupine stops at the first failing partition; we print both that mode (`first`, the one
comparable with Porcupine's figure) and the all-keys mode the CLI uses for kv.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.formats import read_history

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"
PORCUPINE_MS = {"etcd": 179.0, "kv": 204.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=str(DEFAULT))
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    d = Path(args.dir)
    rows = [line.split("\t") for line in (d / "EXPECTED.tsv").read_text().splitlines()[1:]]
    totals = {"etcd": 0.0, "kv": 0.0}
    cpu_totals = {"etcd": 0.0, "kv": 0.0}
    totals_all = {"kv": 0.0}
    parse_total = 0.0
    wrong = unknown = 0
    print(f"{'file':24} {'ops':>5} {'expected':13} {'verdict':8} {'parse ms':>9} {'check ms':>9}")
    for name, kind, _n, expected in rows:
        expected = expected.strip()
        t = time.perf_counter()
        h = read_history(d / name)
        ops = h.operations()
        parse = time.perf_counter() - t
        parse_total += parse
        samples, cpu = [], []
        r = None
        for _ in range(args.runs):
            t, c = time.perf_counter(), time.process_time()
            r = check_linearizable(ops, time_limit=60, explain=False, all_keys=False)
            samples.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        assert r is not None
        ms = statistics.median(samples) * 1000
        totals[kind] += ms
        cpu_totals[kind] += statistics.median(cpu) * 1000
        extra = ""
        if kind == "kv":
            t = time.perf_counter()
            r_all = check_linearizable(ops)  # what `dsjepsen check` does: all keys, explained
            all_ms = (time.perf_counter() - t) * 1000
            totals_all["kv"] += all_ms
            extra = f"  (all keys + explanations: {all_ms:.1f} ms, failing {len(r_all.details['failing_keys'])},"
            extra += f" undecided {len(r_all.details['undecided_keys'])})"
        ok = r.valid == (expected == "linearizable")
        wrong += not ok
        unknown += r.valid == "unknown"
        print(
            f"{name:24} {len(ops):5} {expected:13} {str(r.valid):8} {parse * 1000:9.2f} "
            f"{ms:9.2f}{'' if ok else '  WRONG'}{extra}"
        )
    print()
    for kind, n in (("etcd", 52), ("kv", 6)):
        ratio = totals[kind] / PORCUPINE_MS[kind]
        print(
            f"{kind:5} {n:3} histories: {totals[kind]:8.1f} ms wall ({cpu_totals[kind]:.1f} ms CPU)"
            f"   Porcupine {PORCUPINE_MS[kind]:6.1f} ms   ratio {ratio:.2f}x"
        )
    print(
        f"kv as `dsjepsen check` runs it (all keys, with explanations): {totals_all['kv']:.1f} ms"
    )
    print(f"parse total: {parse_total * 1000:.1f} ms; wrong verdicts: {wrong}; unknown: {unknown}")


if __name__ == "__main__":
    main()
