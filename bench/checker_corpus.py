"""Per-file check time and verdict on the Porcupine corpus, and what explanations cost.

Usage: python bench/checker_corpus.py [DIR] [--runs N] [--kind etcd|kv]
                                      [--porcupine-ms etcd=179,kv=204]

For every history of DIR/EXPECTED.tsv (the corpus parts are its `kind` column), the check call
is timed (median of N runs, after one warm-up run; parsing is timed apart) three ways:

* `first`: all_keys=False, no explanation: Porcupine stops at the first failing partition, so
  this is the figure comparable with Porcupine's;
* `plain`: every key, no explanation: the verdict alone, as `dsjepsen check` decides it;
* `explained`: every key with explanations: what `dsjepsen check` runs.

`explained / plain` is the cost of explaining (issue 14's bar: at most 2 on the kv part). It is
printed from CPU time (process_time), which other work on a shared machine disturbs less than
wall time; wall times are printed beside it. Porcupine's own figures (../reference/anchors.md
has them for this machine kind) are printed only when given with --porcupine-ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.checkers.result import CheckResult
from dsjepsen.formats import read_history
from dsjepsen.history import Operation

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"
#: the bar of issue 14: the explained verdict costs at most this many times the plain one
BAR = 2.0


@dataclass
class Timing:
    """Median wall and CPU milliseconds of one way of checking one history."""

    wall_ms: float
    cpu_ms: float


@dataclass
class Part:
    """Totals over one corpus part (a `kind` of EXPECTED.tsv)."""

    histories: int = 0
    ops: int = 0
    parse_ms: float = 0.0
    first: list[Timing] = field(default_factory=list)
    plain: list[Timing] = field(default_factory=list)
    explained: list[Timing] = field(default_factory=list)
    wrong: int = 0
    unknown: int = 0

    @staticmethod
    def total(ts: list[Timing], cpu: bool) -> float:
        return sum(t.cpu_ms if cpu else t.wall_ms for t in ts)


def measure(ops: list[Operation], runs: int, **options: Any) -> tuple[Timing, CheckResult]:
    """check_linearizable(ops, **options): one warm-up call (imports, caches), then the median
    of `runs` timed calls."""
    result = check_linearizable(ops, **options)
    walls, cpus = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        result = check_linearizable(ops, **options)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return Timing(statistics.median(walls) * 1000, statistics.median(cpus) * 1000), result


def parse_reference(text: str | None) -> dict[str, float]:
    """`etcd=179,kv=204` -> {"etcd": 179.0, "kv": 204.0}."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        kind, _, ms = item.partition("=")
        out[kind.strip()] = float(ms)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", default=str(DEFAULT))
    ap.add_argument("--runs", type=int, default=5, help="timed runs per way and file (median)")
    ap.add_argument("--kind", help="only this corpus part (etcd, kv)")
    ap.add_argument(
        "--porcupine-ms",
        metavar="KIND=MS,...",
        help="Porcupine's total per part on this machine, printed beside ours",
    )
    args = ap.parse_args()
    reference = parse_reference(args.porcupine_ms)
    d = Path(args.dir)
    rows = [ln.split("\t") for ln in (d / "EXPECTED.tsv").read_text().splitlines()[1:] if ln]
    parts: dict[str, Part] = {}
    print(
        f"{'file':22} {'ops':>5} {'expected':12} {'verdict':7} {'parse':>7} {'first':>8} "
        f"{'plain':>8} {'explained':>9} {'ratio':>6}  (ms wall; ratio = explained/plain CPU)"
    )
    for name, kind, _n, expected in rows:
        if args.kind and kind != args.kind:
            continue
        expected = expected.strip()
        part = parts.setdefault(kind, Part())
        t = time.perf_counter()
        ops = read_history(d / name).operations()
        parse_ms = (time.perf_counter() - t) * 1000
        first, r = measure(ops, args.runs, time_limit=60, explain=False, all_keys=False)
        plain, _ = measure(ops, args.runs, explain=False)
        explained, r_all = measure(ops, args.runs)
        part.histories += 1
        part.ops += len(ops)
        part.parse_ms += parse_ms
        part.first.append(first)
        part.plain.append(plain)
        part.explained.append(explained)
        ok = r.valid == (expected == "linearizable") and r_all.valid == r.valid
        part.wrong += not ok
        part.unknown += r.valid == "unknown"
        failing = len(r_all.details["failing_keys"])
        note = "" if ok else "  WRONG"
        if failing:
            note += (
                f"  failing keys {failing}, explained {len(r_all.anomalies)}, "
                f"undecided {len(r_all.details['undecided_keys'])}"
            )
        print(
            f"{name:22} {len(ops):5} {expected:12} {str(r.valid):7} {parse_ms:7.2f} "
            f"{first.wall_ms:8.2f} {plain.wall_ms:8.2f} {explained.wall_ms:9.2f} "
            f"{explained.cpu_ms / max(plain.cpu_ms, 1e-9):6.2f}{note}"
        )
    print()
    total_histories = sum(p.histories for p in parts.values())
    counts = ", ".join(f"{p.histories} {k}" for k, p in parts.items())
    print(f"read {total_histories} histories ({counts}) from {d}")
    for kind, p in parts.items():
        ratio = Part.total(p.explained, True) / max(Part.total(p.plain, True), 1e-9)
        wall_ratio = Part.total(p.explained, False) / max(Part.total(p.plain, False), 1e-9)
        worst = max(
            e.cpu_ms / max(q.cpu_ms, 1e-9) for e, q in zip(p.explained, p.plain, strict=True)
        )
        print(
            f"{kind:5} {p.histories:3} histories, {p.ops} ops: first {Part.total(p.first, False):.1f}"
            f" ms wall ({Part.total(p.first, True):.1f} ms CPU); plain {Part.total(p.plain, False):.1f}"
            f" ms; explained {Part.total(p.explained, False):.1f} ms"
        )
        verdict = "met" if ratio <= BAR else "NOT met"
        print(
            f"      explained / plain: {ratio:.2f}x CPU ({wall_ratio:.2f}x wall), worst file "
            f"{worst:.2f}x; bar <= {BAR:g}x: {verdict}"
        )
        if kind in reference:
            ms = reference[kind]
            print(
                f"      Porcupine {ms:.1f} ms (given); first / Porcupine: "
                f"{Part.total(p.first, False) / ms:.2f}x"
            )
    wrong = sum(p.wrong for p in parts.values())
    unknown = sum(p.unknown for p in parts.values())
    parse = sum(p.parse_ms for p in parts.values())
    print(f"parse total: {parse:.1f} ms; wrong verdicts: {wrong}; unknown: {unknown}")


if __name__ == "__main__":
    main()
