"""How many ops per second the whole harness drives against a fast real target: a `dsjepsen
test` against Redis (Debian's redis-server, n1 the primary) on a local namespace cluster, every
op recorded, checked and reported as in any run. (Goal, issue 31: at least 10,000 ops/s, the
rate a capstone store is asked to serve at p99 under 10 ms.)

    sudo python bench/fast_target.py [--seconds 15] [--concurrency 12] [--rate 0]
        [--nemesis none] [--slo 'p99<10ms,read.availability>0.999']

Prints the client ops of the run proper (the final reads left out) per second of the run, the
latency percentiles per op type (from results.json's stats), the SLO verdict, the verdict, and
the controller's CPU seconds. The controller is one Python process: past about a dozen client
threads they contend for its interpreter lock rather than wait on the network, so more clients
do not mean more ops. Availability, as in Maelstrom, is ok ops over completed ops, so a cas
whose value did not match counts against it: the default SLO asks it of reads. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def run_ops(history: Path, final_reads_from: int | None) -> tuple[int, float]:
    """Client ops invoked before the final reads, and the seconds from the first to the last
    of their completions."""
    count, first, last = 0, None, 0
    with history.open("rb") as f:
        for line in f:
            op = json.loads(line)
            if final_reads_from is not None and op["index"] >= final_reads_from:
                break
            if not isinstance(op.get("process"), int):
                continue  # the nemesis
            if op["type"] == "invoke":
                count += 1
                first = op["time"] if first is None else first
            else:
                last = op["time"]
    return count, (last - (first or 0)) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--concurrency", default="12")
    ap.add_argument("--rate", type=float, default=0.0, help="0: as fast as the clients go")
    ap.add_argument("--nemesis", default="none")
    ap.add_argument("--slo", default="p99<10ms,read.availability>0.999")
    a = ap.parse_args()
    store = Path(tempfile.mkdtemp(prefix="dsj-fast-target-"))
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "redis", "--node-count", "3",
        "--rate", f"{a.rate:g}", "--concurrency", a.concurrency, "--time-limit", f"{a.seconds:g}",
        "--nemesis", a.nemesis, "--slo", a.slo, "--cluster-name", "ft" + os.urandom(2).hex(),
        "--store", str(store), "--json",
    ]  # fmt: skip
    print("running: dsjepsen", " ".join(argv[3:]), flush=True)
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=a.seconds * 4 + 300, check=False
        )
        try:
            doc = json.loads(res.stdout)
        except json.JSONDecodeError:
            print("the run gave no JSON:", (res.stderr.strip().splitlines() or ["?"])[-1])
            return 1
        run_dir = Path(doc["run_dir"])
        results = json.loads((run_dir / "results.json").read_text())
        ops, span = run_ops(run_dir / "history.jsonl", results.get("final_reads_from_index"))
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"ops in the run: {ops} in {span:.1f} s = {ops / span:,.0f} ops/s"
              f" (asked: {'unlimited' if not a.rate else f'{a.rate:g}'})")  # fmt: skip
        for f, s in sorted(results["stats"]["by_f"].items()):
            lat = s.get("latency_ms", {})
            print(f"  {f:<6} {s['count']:>8} ops  ok {s['ok_fraction']:.3f}  "
                  + "  ".join(f"{q} {lat[q]:.2f} ms" for q in ("p50", "p95", "p99", "max")
                              if q in lat))  # fmt: skip
        slo = results["checks"].get("slo") or {}
        print(f"slo {a.slo!r}: {'met' if slo.get('valid') else 'not met'}")
        print(f"verdict: {doc.get('valid')}   controller CPU: {cpu.ru_utime + cpu.ru_stime:.1f} s"
              f"   max RSS {cpu.ru_maxrss / 1024:.0f} MB")  # fmt: skip
        return 0
    finally:
        subprocess.run(["rm", "-rf", "--", str(store)], check=False)


if __name__ == "__main__":
    sys.exit(main())
