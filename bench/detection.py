"""Detection rate of every seeded bug under its documented recipe, and false alarms of the
correct target under the same faults.

    sudo python bench/detection.py                          # every recipe, 5 seeds, 60 s
    sudo python bench/detection.py --seeds 20 --parallel 2 --only no-term-check
    sudo python bench/detection.py --list                   # the recipes and their commands

A recipe is the command the README gives for finding one bug. Finding it on one lucky seed
proves little: this runs each recipe over --seeds seeds (1, 2, ...; --first-seed moves them)
as real `python -m dsjepsen test ... --json` subprocesses, each on its own local cluster
(`--cluster-name det<k>`, k < --parallel, created on demand and removed by the test), then
runs the target without the bug under the same faults and seeds (the control: any INVALID
there is a false alarm, a bug in the harness or the checker). It prints, per recipe, how many
seeds found the bug, how many ended unknown, and the control's false alarms; `--out FILE`
appends every run's outcome as one JSON line, so a long bench that is stopped keeps its data.

Exit status: 0 when every recipe found its bug on every seed and no control ended INVALID,
1 otherwise, 254 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: the default --time-limit of `dsjepsen test`
DEFAULT_TIME_LIMIT = 60.0
EXIT_BAD_ARGS = 254
#: a run that ends in error within this many seconds never started: retried, RETRIES times
STARTUP_FAILURE = 15.0
RETRIES = 5
RETRY_PAUSE = 20.0


@dataclass(frozen=True)
class Recipe:
    """One documented way to find one bug: the bug's own options and the shared ones (target,
    faults, cluster size, workload) that the control run repeats without the bug."""

    name: str
    target: str
    bug_args: tuple[str, ...]
    common: tuple[str, ...]
    #: where the recipe is documented (the README "Targets" section, or the target's doc)
    source: str = "README.md Targets"
    #: what the control runs instead of the bug's options, when the target's default is not
    #: the correct configuration to compare with (Redlock's control is Redis's fenced lock)
    control_args: tuple[str, ...] = ()
    #: a system that has no bug to find here and must stay safe under the recipe's faults
    #: (etcd's lock): only its control runs are made, and a bench counts their false alarms
    control_only: bool = False

    def bug_argv(self) -> list[str]:
        return ["--target", self.target, *self.bug_args, *self.common]

    def control_argv(self) -> list[str]:
        return ["--target", self.target, *self.control_args, *self.common]


#: what the postgres recipes share with their control: three hot keys (Elle's key-count), 15
#: clients and 300 transactions a second so that transactions collide often (at the defaults,
#: 2 clients a node and 100 a second, repeatable read's write skew showed on 19 seeds of 20),
#: and crashes of the server (every 5 s: a 20 s run holds two crashes and recoveries)
PG_COMMON = (
    "--workload", "list-append", "--key-count", "3", "--node-count", "3",
    "--rate", "300", "--concurrency", "5n", "--nemesis", "kill", "--nemesis-interval", "5",
)  # fmt: skip

#: PostgreSQL under power failures of its one server (the fault file system drops what it had
#: not fsynced): the same load as PG_COMMON, a power failure every 5 s instead of a kill
PG_POWER_COMMON = (
    "--workload", "list-append", "--key-count", "3", "--node-count", "3",
    "--rate", "300", "--concurrency", "5n", "--nemesis", "power-failure-all",
    "--nemesis-interval", "5",
)  # fmt: skip

#: what the lock recipe shares with its control (docs/locks.md): both with --fencing; short
#: leases, five writes a hold and a pause of two nodes of five every 2.5 s
LOCK_COMMON = (
    "--workload", "lock", "--fencing", "--lease-ms", "1000", "--writes-per-hold", "5",
    "--node-count", "5", "--nemesis", "pause-minority", "--nemesis-interval", "2.5",
)  # fmt: skip
#: Redlock (and its control) under clock bumps: three instances, a bump every 2 s
REDLOCK_CLOCK_COMMON = (
    "--workload", "lock", "--fencing", "--lease-ms", "1000", "--writes-per-hold", "5",
    "--node-count", "3", "--nemesis", "clock-bump", "--nemesis-interval", "1",
)  # fmt: skip


#: every seeded bug of every reference target, with the recipe that is documented to find it
RECIPES: tuple[Recipe, ...] = (
    Recipe("stale-read", "raft-kv", ("--bug", "stale-read"), ("--nemesis", "partition-majority")),
    Recipe("early-ack", "raft-kv", ("--bug", "early-ack"), ("--nemesis", "partition-leader")),
    # a paused leader comes back as a second leader beside the one elected meanwhile (the
    # bug's leaders never step down), so every pause window is a split brain
    Recipe("no-term-check", "raft-kv", ("--bug", "no-term-check"), ("--nemesis", "pause-leader")),
    # no-fsync writes its log before it acknowledges, so only a power failure (the fault file
    # system dropping what was never fsynced) loses it: a plain kill-all cannot, the page
    # cache keeps what write() handed it; a majority's power failure leaves a survivor with
    # every acknowledged entry, which Raft's election restriction puts back in charge
    Recipe("no-fsync", "raft-kv", ("--bug", "no-fsync"), ("--nemesis", "power-failure-all")),
    # the cut-off leader serves reads under a lease stretched by a follower clock ahead of its
    # own (or its own behind): combined mode bumps clocks in every partition window, and with
    # 3 nodes one follower's stamp decides the lease
    Recipe(
        "lease-read",
        "raft-kv",
        ("--bug", "lease-read"),
        (
            "--nemesis",
            "partition-leader,clock-bump",
            "--nemesis-mode",
            "combined",
            "--nemesis-interval",
            "5",
            "--node-count",
            "3",
        ),  # fmt: skip
    ),
    Recipe(
        "etcd-serializable-reads",
        "etcd",
        ("--serializable-reads",),
        ("--nemesis", "partition-majority", "--node-count", "3"),
    ),
    # transactions (docs/transactions.md): each bug under the fault its anomalies need least,
    # the correct store under the same faults as the control
    Recipe(
        "txn-no-isolation",
        "raft-kv",
        ("--bug", "txn-no-isolation"),
        ("--workload", "list-append", "--nemesis", "partition-leader"),
        source="docs/transactions.md Running",
    ),
    Recipe(
        "txn-read-uncommitted",
        "raft-kv",
        ("--bug", "txn-read-uncommitted"),
        ("--workload", "rw-register", "--nemesis", "partition-leader"),
        source="docs/transactions.md Running",
    ),
    Recipe(
        "txn-stale-snapshot",
        "raft-kv",
        ("--bug", "txn-stale-snapshot"),
        ("--workload", "rw-register", "--nemesis", "partition-majority"),
        source="docs/transactions.md Running",
    ),
    Recipe(
        "crdt-lww-set",
        "crdt-kv",
        ("--bug", "lww-set"),
        ("--workload", "g-set", "--nemesis", "partition-majority"),
        source="docs/crdt.md Bugs",
    ),
    Recipe(
        "crdt-sum-merge",
        "crdt-kv",
        ("--bug", "sum-merge"),
        ("--workload", "g-counter"),
        source="docs/crdt.md Bugs",
    ),
    Recipe(
        "crdt-no-anti-entropy",
        "crdt-kv",
        ("--bug", "no-anti-entropy"),
        ("--workload", "g-set", "--nemesis", "partition-majority"),
        source="docs/crdt.md Bugs",
    ),
    Recipe(
        "crdt-volatile",
        "crdt-kv",
        ("--bug", "volatile"),
        ("--workload", "g-set", "--nemesis", "kill-all"),
        source="docs/crdt.md Bugs",
    ),
    # locks (docs/locks.md): a holder paused past its lease lands a superseded write that only a
    # fence stops; the bug gives no tokens, the control has them, both run with --fencing. A
    # pause catches the holder on one of the two paused nodes of five (40%) with a write still
    # to send (5 of its 6 ops): short leases and frequent pauses give a run many chances
    Recipe(
        "lease-no-fencing",
        "raft-kv",
        ("--bug", "lease-no-fencing"),
        LOCK_COMMON,
        source="docs/locks.md",
    ),
    # Redlock under clock-bump (docs/analyses/redis.md): each instance expires the key by its
    # own wall clock, so a bump forward of more than the lease on two of the three instances
    # (Jepsen's random subsets and ±2^x ms draws: about one bump in eleven, so a bump every 2 s)
    # frees the lock while its holder still believes in it, and a second client takes a
    # majority. No token, so nothing stops the first holder. The control is Redis's fenced lock
    # (one primary, an INCR token) under the same bumps: its overlaps are the fence's job
    Recipe(
        "redis-redlock-clock",
        "redis",
        ("--redis-lock", "redlock"),
        REDLOCK_CLOCK_COMMON,
        source="docs/analyses/redis.md",
        control_args=("--redis-lock", "fenced"),
    ),
    # Redis (README Targets): replicas answer reads from asynchronously replicated state
    # Redis's documented single-instance lock, SET NX PX with a random value (docs/locks.md):
    # no token, so a holder paused past its lease writes after the next holder and the fence
    # cannot tell; the control is the same lock with an INCR token (`--redis-lock fenced`)
    Recipe(
        "redis-setnx-pause",
        "redis",
        ("--redis-lock", "setnx"),
        LOCK_COMMON,
        source="docs/analyses/locks.md",
        control_args=("--redis-lock", "fenced"),
    ),
    # etcd's lease + lock, fenced by the revision of the txn that took it: safe under the same
    # pauses (no bug to find: only the control runs)
    Recipe(
        "etcd-lock-pause",
        "etcd",
        (),
        LOCK_COMMON,
        source="docs/analyses/locks.md",
        control_only=True,
    ),
    Recipe(
        "redis-replica-reads",
        "redis",
        ("--redis-reads", "any"),
        ("--nemesis", "partition-majority", "--node-count", "3"),
    ),
    # a primary without persistence restarts empty, and its replicas follow it
    Recipe(
        "redis-no-persistence",
        "redis",
        ("--redis-persistence", "none"),
        ("--nemesis", "kill-leader", "--nemesis-interval", "3", "--node-count", "3"),
    ),
    # Jepsen's 2013 Redis result: Sentinel promotes a replica while the cut-off primary still
    # acknowledges the writes of every client that reaches it, then drops them when it rejoins
    # as a replica. The control is the same deployment without failover (n1 stays the primary)
    Recipe(
        "redis-sentinel-failover",
        "redis",
        ("--redis-failover", "sentinel"),
        ("--workload", "g-set", "--nemesis", "partition-leader", "--node-count", "5"),
        source="docs/analyses/redis.md",
    ),
    # PostgreSQL's weaker isolation levels are its documented "bugs": each is checked for the
    # model it does not provide, while the control (serializable, the default) is checked for
    # strict-serializable under the same crashes (one server: its serializable is strict)
    Recipe(
        "pg-repeatable-read",
        "postgres",
        ("--isolation", "repeatable-read", "--consistency", "serializable"),
        PG_COMMON,
        source="docs/postgres.md",
    ),
    Recipe(
        "pg-read-committed",
        "postgres",
        ("--isolation", "read-committed", "--consistency", "repeatable-read"),
        PG_COMMON,
        source="docs/postgres.md",
    ),
    # synchronous_commit=off acknowledges a commit before its WAL is flushed: a power failure
    # loses the last acknowledged transactions; the control is the default (on)
    Recipe(
        "pg-sync-commit-off",
        "postgres",
        ("--postgres-synchronous-commit", "off"),
        PG_POWER_COMMON,
        source="docs/postgres.md",
    ),
)


@dataclass
class Job:
    recipe: str
    kind: str  # "bug" or "control"
    argv: list[str]
    seed: int


@dataclass
class Outcome:
    job: Job
    verdict: str  # valid / invalid / unknown / error
    exit_code: int | None
    seconds: float
    reason: str = ""
    run_dir: str = ""


@dataclass
class Tally:
    seeds: int = 0
    invalid: int = 0
    unknown: int = 0
    errors: int = 0
    notes: list[str] = field(default_factory=list)


def installed_targets() -> set[str]:
    """Targets `dsjepsen list targets` shows on this machine (crdt-kv may be absent)."""
    res = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "list", "targets"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return {line.split()[0] for line in res.stdout.splitlines() if line and not line[0].isspace()}


def run_job(job: Job, cluster: str, time_limit: float, store: str) -> Outcome:
    """One `dsjepsen test` as a subprocess on cluster `cluster`; its verdict from --json."""
    argv = [
        sys.executable, "-m", "dsjepsen", "test", *job.argv,
        "--seed", str(job.seed), "--time-limit", f"{time_limit:g}",
        "--cluster-name", cluster, "--store", store, "--json",
    ]  # fmt: skip
    t0 = time.monotonic()
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, timeout=time_limit * 4 + 300, check=False
        )
    except subprocess.TimeoutExpired:
        return Outcome(job, "error", None, time.monotonic() - t0, "timed out")
    seconds = time.monotonic() - t0
    try:
        doc: dict[str, Any] = json.loads(res.stdout)
    except json.JSONDecodeError:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return Outcome(job, "error", res.returncode, seconds, tail[:300])
    valid = doc.get("valid")
    if isinstance(doc.get("runs"), list):  # --test-count N: invalid if any run was
        verdicts = [r.get("valid") for r in doc["runs"]]
        valid = False if False in verdicts else True if all(v is True for v in verdicts) else None
    verdict = {True: "valid", False: "invalid"}.get(valid, "unknown")
    return Outcome(
        job, verdict, res.returncode, seconds, str(doc.get("reason") or "")[:300],
        str(doc.get("run_dir", "")),
    )  # fmt: skip


def plan(
    recipes: Sequence[Recipe], seeds: Sequence[int], control: bool, bug: bool = True
) -> list[Job]:
    """Bug runs and (deduplicated) control runs, interleaved by seed so that a bench stopped
    early still has a few seeds of every recipe."""
    jobs: list[Job] = []
    seen: set[tuple[tuple[str, ...], int]] = set()
    for seed in seeds:
        for r in recipes:
            if bug and not r.control_only:
                jobs.append(Job(r.name, "bug", r.bug_argv(), seed))
            if control and (tuple(r.control_argv()), seed) not in seen:
                seen.add((tuple(r.control_argv()), seed))
                jobs.append(Job(r.name, "control", r.control_argv(), seed))
    return jobs


def execute(
    jobs: list[Job],
    parallel: int,
    time_limit: float,
    store: str,
    out: Path | None,
    prefix: str = "det",
) -> list[Outcome]:
    """Run jobs on `parallel` clusters at once; print and record each outcome as it ends."""
    todo: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        todo.put(job)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        cluster = f"{prefix}{k}"
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            o = run_job(job, cluster, time_limit, store)
            for _ in range(RETRIES):
                # a run that could not even start (the working tree mid-edit, a cluster in
                # use) says nothing about the bug: try it again rather than count it
                if o.verdict != "error" or o.seconds > STARTUP_FAILURE:
                    break
                time.sleep(RETRY_PAUSE)
                o = run_job(job, cluster, time_limit, store)
            with lock:
                outcomes.append(o)
                line = (
                    f"[{len(outcomes)}/{len(jobs)}] {job.recipe:<24} {job.kind:<7} "
                    f"seed {job.seed:<4} {o.verdict:<8} {o.seconds:5.0f}s {o.reason[:90]}"
                )
                print(line, flush=True)
                if out is not None:
                    with out.open("a") as f:
                        rec = {
                            "recipe": job.recipe, "kind": job.kind, "seed": job.seed,
                            "argv": job.argv, "time_limit": time_limit, "verdict": o.verdict,
                            "exit": o.exit_code, "seconds": round(o.seconds, 1),
                            "reason": o.reason, "run_dir": o.run_dir,
                        }  # fmt: skip
                        f.write(json.dumps(rec) + "\n")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def table(recipes: Sequence[Recipe], outcomes: list[Outcome], time_limit: float) -> str:
    """The summary: per recipe, detections over seeds and the control's false alarms."""
    bug: dict[str, Tally] = {r.name: Tally() for r in recipes}
    ctl: dict[tuple[str, ...], Tally] = {}
    for o in outcomes:
        t = bug[o.job.recipe] if o.job.kind == "bug" else ctl.setdefault(tuple(o.job.argv), Tally())
        t.seeds += 1
        t.invalid += o.verdict == "invalid"
        t.unknown += o.verdict == "unknown"
        t.errors += o.verdict == "error"
    head = (
        f"{'recipe':<24} {'time':>5} {'seeds':>5} {'detected':>8} {'unknown':>7} "
        f"{'errors':>6} {'ctl seeds':>9} {'false alarms':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in recipes:
        b = bug[r.name]
        c = ctl.get(tuple(r.control_argv()), Tally())
        lines.append(
            f"{r.name:<24} {time_limit:>5g} {b.seeds:>5} {'-' if r.control_only else b.invalid:>8} "
            f"{b.unknown:>7} {b.errors:>6} {c.seeds:>9} {c.invalid:>12}"
        )
    for r in recipes:
        argv = r.control_argv() if r.control_only else r.bug_argv()
        lines.append(f"  {r.name}: dsjepsen test {' '.join(argv)}   [{r.source}]")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5, help="seeds per recipe (default 5)")
    p.add_argument("--first-seed", type=int, default=1, help="first seed (default 1)")
    p.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, help="seconds per run")
    p.add_argument("--parallel", type=int, default=1, help="local clusters at once (default 1)")
    p.add_argument("--only", default="", help="comma list of recipe names (default: all)")
    p.add_argument("--no-control", action="store_true", help="skip the correct-target runs")
    p.add_argument(
        "--control-only",
        action="store_true",
        help="only the correct-target runs (e.g. more control seeds after a bug-only bench)",
    )
    p.add_argument("--store", help="store directory (default: a temporary one, removed)")
    p.add_argument(
        "--cluster-prefix",
        default="det",
        help="local clusters are named PREFIX0, PREFIX1, ... (default det; another prefix lets "
        "two benches run at once)",
    )
    p.add_argument("--out", type=Path, help="append each run's outcome to this JSONL file")
    p.add_argument(
        "--extra",
        default="",
        help="more `dsjepsen test` options for every run, to try a recipe change "
        "(e.g. --extra '--ops-per-key 300')",
    )
    p.add_argument("--list", action="store_true", help="print the recipes and exit")
    args = p.parse_args(argv)
    names = {r.name for r in RECIPES}
    only = [n for n in args.only.split(",") if n]
    bad = [n for n in only if n not in names]
    if bad:
        p.exit(EXIT_BAD_ARGS, f"--only: unknown recipe {bad[0]!r} (known: {', '.join(names)})\n")
    if args.no_control and args.control_only:
        p.exit(EXIT_BAD_ARGS, "--no-control and --control-only leave nothing to run\n")
    if args.seeds < 1 or args.parallel < 1 or args.parallel > 9 or args.time_limit <= 0:
        p.exit(EXIT_BAD_ARGS, "--seeds >= 1, --parallel 1-9 and --time-limit > 0, please\n")
    args.only = only
    args.extra = shlex.split(args.extra)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    recipes = [
        replace(r, common=(*r.common, *args.extra))
        for r in RECIPES
        if not args.only or r.name in args.only
    ]
    if args.list:
        for r in recipes:
            argv = r.control_argv() if r.control_only else r.bug_argv()
            print(f"{r.name:<24} dsjepsen test {' '.join(argv)}   [{r.source}]")
        return 0
    available = installed_targets()
    skipped = [r.name for r in recipes if r.target not in available]
    if skipped:
        print(f"skipped (target not installed): {', '.join(skipped)}", flush=True)
    recipes = [r for r in recipes if r.target in available]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    jobs = plan(recipes, seeds, control=not args.no_control, bug=not args.control_only)
    store = args.store or tempfile.mkdtemp(prefix="dsj-detection-")
    print(
        f"{len(jobs)} runs of {args.time_limit:g}s on {args.parallel} clusters, store {store}",
        flush=True,
    )
    try:
        outcomes = execute(
            jobs, args.parallel, args.time_limit, store, args.out, args.cluster_prefix
        )
    finally:
        if not args.store:
            subprocess.run(["rm", "-rf", "--", store], check=False)
    print(table(recipes, outcomes, args.time_limit))
    perfect = all(
        o.verdict == "invalid" if o.job.kind == "bug" else o.verdict != "invalid" for o in outcomes
    )
    return 0 if perfect else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
