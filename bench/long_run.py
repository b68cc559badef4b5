"""A long run at a high rate: does the harness keep the rate, does the controller's memory stay
flat, and how long do the check and the report take after the run ends? (Goal: a one-hour run
at 1,000 ops/s against raft-kv; this runs a shorter one, 10 minutes by default.)

    sudo python bench/long_run.py [--minutes 10] [--rate 1000] [--nemesis partition-majority]

It runs `dsjepsen test --target raft-kv` on a local namespace cluster of its own, samples the
controller's resident memory (VmRSS of the `dsjepsen test` process) every --sample seconds, and
prints: ops recorded and the rate achieved, RSS at each sample (first, largest, last), the
time from the end of the run to the verdict (the checks) and to the written report, and the
run directory. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from fast_target import run_ops  # bench/ is this script's directory


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) / 1024 if m else None


def log_time(line: str) -> datetime | None:
    """The wall time of a dsjepsen.log line (its first field)."""
    m = re.match(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)", line)  # local time
    if not m:
        return None
    return datetime.fromisoformat(m.group(1).replace(",", "."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--nemesis", default="partition-majority")
    ap.add_argument(
        "--concurrency",
        default="20",
        help="clients (a client waiting on a cut-off node takes no new op until it times out)",
    )
    ap.add_argument("--sample", type=float, default=60.0, help="seconds between RSS samples")
    ap.add_argument("--store", help="keep the run here (default: a temporary directory)")
    a = ap.parse_args()
    store = Path(a.store or tempfile.mkdtemp(prefix="dsj-longrun-"))
    name = "lr" + os.urandom(2).hex()
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--rate", str(a.rate),
        "--time-limit", str(a.minutes * 60), "--nemesis", a.nemesis, "--cluster-name", name,
        "--store", str(store), "--concurrency", a.concurrency,
    ]  # fmt: skip
    print("running:", " ".join(argv[2:]), flush=True)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    while proc.poll() is None:
        mb = rss_mb(proc.pid)
        if mb is not None:
            samples.append((time.monotonic() - t0, mb))
            print(f"  t+{samples[-1][0]:6.0f}s controller RSS {mb:7.1f} MB", flush=True)
        deadline = time.monotonic() + a.sample
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
    stderr = proc.stderr.read() if proc.stderr else ""
    subprocess.run(
        [sys.executable, "-m", "dsjepsen", "cluster", "down", "--cluster-name", name],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    runs = sorted(p for p in store.glob("*/2*") if p.is_dir() and not p.is_symlink())
    if not runs:
        print("no run directory; the run's last words:\n" + stderr[-2000:])
        sys.exit(1)
    run = runs[-1]
    results = json.loads((run / "results.json").read_text())
    stats = results.get("stats") or {}
    total = stats.get("total", "?")
    lines = (run / "dsjepsen.log").read_text().splitlines()
    stopped = next((log_time(x) for x in lines if "time limit reached" in x), None)
    verdict = next((log_time(x) for x in lines if "verdict:" in x), None)
    page = run / "report.html"
    report = datetime.fromtimestamp(page.stat().st_mtime) if page.exists() else None
    print(f"exit {proc.returncode}, verdict valid={results.get('valid')}")
    ops, span = run_ops(run / "history.jsonl", results.get("final_reads_from_index"))
    print(f"client ops of the run proper (final reads left out): {ops} in {span:.0f} s, "
          f"{ops / max(span, 1e-9):.0f} a second ({a.rate:.0f} asked)")  # fmt: skip
    print(f"client ops {total} in {a.minutes * 60:.0f} s, asked {a.rate:.0f} ops/s; ok ops/s "
          f"{stats.get('throughput_ok_per_s', '?')}; by f: {json.dumps(stats.get('by_f'))}")  # fmt: skip
    if samples:
        first, top, last = samples[0][1], max(s[1] for s in samples), samples[-1][1]
        mid = samples[len(samples) // 2][1]
        print(f"controller RSS MB: first {first:.0f}, middle {mid:.0f}, largest {top:.0f}, "
              f"last {last:.0f} ({len(samples)} samples)")  # fmt: skip
    if stopped and verdict:
        print(
            f"end of run -> verdict {(verdict - stopped).total_seconds():.1f} s", end=""
        )  # checks
        if report:
            print(f", -> report written {(report - stopped).total_seconds():.1f} s")
        print()
    print(f"run directory: {run}")


if __name__ == "__main__":
    main()
