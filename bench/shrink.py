"""How far `dsjepsen shrink` reduces a default failing run of each classic bug, and whether the
minimal command fails again.

    sudo python bench/shrink.py                       # every bug, 60 s runs, 5 nodes
    sudo python bench/shrink.py --only stale-read --time-limit 30 --budget 15

For each bug: one run of its recipe with extra faults (5 nodes, --time-limit, two or more
fault families: what a nightly chaos job would record), then `dsjepsen shrink` of that run
(--budget minutes, --tries per candidate), then the minimal command run --repeats times; it
prints per bug the faults, seconds, nodes and client workers before and after, the steps the
search took and how often the minimal command failed the same way ("3 of 5"). `--out FILE`
appends one JSON line per bug. Needs root (namespace clusters).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dsjepsen.commands.repro import SAME, attempt, recorded_test_argv
from dsjepsen.commands.shrink import option
from dsjepsen.harness.campaign import signature_of

#: bug -> the failing run to shrink: the bug's recipe with a second fault family added
BUGS: dict[str, list[str]] = {
    "stale-read": ["--target", "raft-kv", "--bug", "stale-read",
                   "--nemesis", "partition-majority,kill"],
    "early-ack": ["--target", "raft-kv", "--bug", "early-ack",
                  "--nemesis", "partition-leader,pause"],
    "no-term-check": ["--target", "raft-kv", "--bug", "no-term-check",
                      "--nemesis", "pause-leader,partition-majority"],
    "lease-read": ["--target", "raft-kv", "--bug", "lease-read",
                   "--nemesis", "partition-leader,clock-bump", "--nemesis-mode", "combined",
                   "--nemesis-interval", "5"],
    "crdt-lww-set": ["--target", "crdt-kv", "--workload", "g-set", "--bug", "lww-set",
                     "--nemesis", "partition-majority,pause"],
}  # fmt: skip


def dsjepsen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dsjepsen", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip


def shape(argv: list[str], test: dict) -> dict:
    """faults, seconds, nodes, client workers of a command line (the test's when absent)."""
    opts = test.get("options") or {}
    faults = option(argv, "nemesis") or ",".join(opts.get("nemesis") or [])
    return {
        "faults": 0 if faults in ("", "none") else len(faults.split(",")),
        "seconds": float(option(argv, "time-limit") or opts.get("time_limit") or 60),
        "nodes": int(option(argv, "node-count") or len(test.get("nodes") or []) or 5),
        "clients": int(option(argv, "concurrency") or test.get("clients") or 0),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="", help="comma list of bugs (default: all)")
    p.add_argument("--time-limit", type=float, default=60.0, help="the failing run's length")
    p.add_argument("--budget", type=float, default=20.0, help="shrink budget, minutes per bug")
    p.add_argument("--tries", type=int, default=2, help="tries per shrink candidate")
    p.add_argument("--repeats", type=int, default=5, help="runs of the minimal command")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, help="append one JSON line per bug")
    args = p.parse_args()
    names = [b for b in args.only.split(",") if b] or list(BUGS)
    store = Path(tempfile.mkdtemp(prefix="dsj-bench-shrink-"))
    rows = []
    for bug in names:
        t0 = time.monotonic()
        argv = [*BUGS[bug], "--time-limit", f"{args.time_limit:g}", "--seed", str(args.seed),
                "--store", str(store / bug), "--cluster-name", "bsh" + bug[:2]]  # fmt: skip
        first = dsjepsen("test", *argv)
        subprocess.run([sys.executable, "-m", "dsjepsen", "cluster", "down", "--cluster-name",
                        "bsh" + bug[:2]], capture_output=True, check=False)  # fmt: skip
        run_dir = (store / bug / "latest").resolve()
        if first.returncode != 1:
            print(f"{bug}: the failing run did not fail (exit {first.returncode}); skipped")
            continue
        test = json.loads((run_dir / "test.json").read_text())
        results = json.loads((run_dir / "results.json").read_text())
        sig = signature_of(results, run_dir)
        want = {k: sig[k] for k in SAME} if sig else None
        out = dsjepsen("shrink", str(run_dir), "--budget", f"{args.budget:g}",
                       "--tries", str(args.tries))  # fmt: skip
        state = json.loads((run_dir / "shrink.json").read_text())
        minimal = state["current"]
        again = [
            attempt(minimal, want, True, float(option(minimal, "time-limit") or 60),
                    store / "again", store / f"{bug}-{i}.log")["same"]
            for i in range(args.repeats)
        ]  # fmt: skip
        before, after = shape(recorded_test_argv(test), test), shape(minimal, test)
        row = {
            "bug": bug,
            "before": before,
            "after": after,
            "steps": len(state["steps"]),
            "accepted": sum(1 for s in state["steps"] if s["accepted"]),
            "minimal": shlex.join(["dsjepsen", "test", *minimal]),
            "fails_again": f"{sum(again)} of {len(again)}",
            "minutes": round((time.monotonic() - t0) / 60, 1),
            "shrink_exit": out.returncode,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    print("\n| bug | faults | seconds | nodes | clients | steps | minimal fails again |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        b, a = r["before"], r["after"]
        print(f"| {r['bug']} | {b['faults']} -> {a['faults']} | {b['seconds']:g} -> "
              f"{a['seconds']:g} | {b['nodes']} -> {a['nodes']} | {b['clients']} -> "
              f"{a['clients']} | {r['steps']} ({r['accepted']} accepted) | "
              f"{r['fails_again']} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
