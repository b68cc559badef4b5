"""`dsjepsen repro RUN_DIR [--times N]`: run a recorded test again and say how often the same
anomaly comes back.

A failing run is a claim about a system; before anyone spends a day on it, they want to know
whether it happens again. The run directory holds everything needed: test.json's command line
carries the seed (so the same workload ops, the same fault schedule and the same node count),
and results.json the anomaly. Each repetition is a real `dsjepsen test` process on the same
kind of cluster (a fresh local cluster for a local run; the same SSH hosts or containers for a
remote one); real systems are not deterministic, so the answer is a rate: "reproduced 4 of 5".

"The same anomaly" is the recorded run's first anomaly found again: the same checker failing
with the same anomaly kind on the same kind of op (a stale read stays a read), anywhere in the
run (which of several anomalies comes first is timing). The fault in effect is shown but not
required to match (a partition that starts 50 ms later is the same bug).
Every repetition is appended to RUN_DIR/repro.jsonl as it ends, so an interrupted repro keeps
what it found. Exit 1 when the anomaly came back at least once, 0 when it never did (a fix
that holds), 2 when no repetition gave a verdict, 254 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dsjepsen.errors import ConfigError, InputError

#: options of the recorded command line that belong to one run, not to the test
RUN_ONLY_VALUE = frozenset({"--cluster-name", "--name", "--store", "--test-count"})
RUN_ONLY_FLAG = frozenset({"--json", "--leave-running"})
#: repetitions at most (each is a whole test run)
MAX_TIMES = 1_000
#: what must match for a repetition to count as the same anomaly
SAME = ("checker", "anomaly", "f")
EXIT_REPRODUCED, EXIT_NOT_REPRODUCED, EXIT_NO_VERDICT = 1, 0, 2


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "repro",
        help="run a recorded test again N times: how often does its anomaly come back?",
        description="Run the test recorded in RUN_DIR again (same options, seed, fault "
        "schedule and node count, on the same kind of cluster) --times times and report how "
        "often the same anomaly (checker, anomaly kind, kind of op) comes back.",
        epilog="example: dsjepsen repro store/latest --times 5",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (test.json, results.json)")
    p.add_argument("--times", type=int, default=5, metavar="N", help="repetitions (default 5)")
    p.add_argument(
        "--store",
        metavar="DIR",
        help="where the repetitions' run directories go (default: a temporary directory, "
        "removed afterwards; their outcomes stay in RUN_DIR/repro.jsonl)",
    )
    p.set_defaults(func=run)


def recorded_test_argv(test: dict[str, Any]) -> list[str]:
    """The recorded `dsjepsen test` command line without what belongs to one run (the
    cluster's name, the store, --json, --test-count): the test itself, seed included."""
    argv = test.get("argv")
    if not isinstance(argv, list) or argv[:2] != ["dsjepsen", "test"]:
        raise ConfigError("test.json: no recorded `dsjepsen test` command line (argv)")
    out: list[str] = []
    rest = [str(a) for a in argv[2:]]
    i = 0
    while i < len(rest):
        token = rest[i]
        flag = token.split("=", 1)[0]
        if flag in RUN_ONLY_VALUE:
            i += 1 if "=" in token else 2
            continue
        if flag in RUN_ONLY_FLAG:
            i += 1
            continue
        out.append(token)
        i += 1
    if "--seed" not in out:
        out += ["--seed", str(test.get("seed"))]
    return out


def run(args: argparse.Namespace) -> int:
    from dsjepsen.harness.campaign import signature_key, signature_of

    if not 1 <= args.times <= MAX_TIMES:
        raise ConfigError(f"--times must be between 1 and {MAX_TIMES}, got {args.times}")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise InputError("not a directory (expected a run directory)", str(run_dir))
    try:
        test = json.loads((run_dir / "test.json").read_text(encoding="utf-8"))
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"not a readable run directory: {e}", str(run_dir)) from None
    test_argv = recorded_test_argv(test)
    original = signature_of(results, run_dir)
    want = {k: original[k] for k in SAME} if original else None
    print(
        f"repro {test.get('name', run_dir.name)}: {args.times} run(s) of dsjepsen test "
        f"{' '.join(test_argv)}",
        flush=True,
    )
    print(
        f"  looking for: {signature_key(original)}"
        if original
        else f"  the recorded run was {results.get('valid')!r}, not invalid: counting how "
        "often a repetition is invalid",
        flush=True,
    )
    local = (test.get("cluster") or {}).get("kind", "local") == "local"
    limit = float((test.get("options") or {}).get("time_limit") or 60.0)
    own_store = args.store is None
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="dsj-repro-"))
    outcomes: list[dict[str, Any]] = []
    log_dir = Path(tempfile.mkdtemp(prefix="dsj-repro-logs-"))
    try:
        for i in range(1, args.times + 1):
            row = {"run": i, **attempt(test_argv, want, local, limit, store, log_dir / f"{i}.log")}
            sig = row["signature"]
            outcomes.append(row)
            with open(run_dir / "repro.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            what = row["error"] or (signature_key(sig) if sig else verdict_word(row["verdict"]))
            mark = "SAME" if row["same"] else "different" if sig else "-"
            print(f"[{i}/{args.times}] {mark}: {what} ({row['seconds']}s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the runs so far are in repro.jsonl", file=sys.stderr)
    finally:
        if own_store:
            _remove_tree(store)
        _remove_tree(log_dir)
    hits = sum(1 for o in outcomes if o["same"])
    decided = sum(1 for o in outcomes if o["verdict"] in ("True", "False"))
    print(f"reproduced {hits} of {len(outcomes)}" + (
        f" ({len(outcomes) - decided} without a verdict)" if decided < len(outcomes) else ""
    ))  # fmt: skip
    if hits:
        return EXIT_REPRODUCED
    return EXIT_NOT_REPRODUCED if decided else EXIT_NO_VERDICT


def attempt(
    test_argv: list[str],
    want: dict[str, str] | None,
    local: bool,
    limit: float,
    store: Path,
    log: Path,
) -> dict[str, Any]:
    """One `dsjepsen test` run of test_argv (on a fresh local cluster when `local`, removed
    afterwards): its verdict, whether it gave the anomaly `want` (None: whether it was
    invalid at all), its signature, the error when it gave no verdict, its seconds."""
    from dsjepsen.cluster import localnet
    from dsjepsen.commands.campaign import run_test_process
    from dsjepsen.harness.campaign import signature_of

    name = localnet.random_name("rp") if local else None
    t0 = time.monotonic()
    try:
        summary, run_dir, error, _ = run_test_process(
            test_argv, str(store), ["--cluster-name", name] if name else [], log, limit
        )
    finally:
        if name:
            localnet.down(name)
    sig = signature_of(summary, Path(run_dir)) if summary and run_dir else None
    verdict = "error" if summary is None else str(summary.get("valid"))
    if want is not None:
        same = summary is not None and same_anomaly(want, summary)
    else:
        same = verdict == "False"
    return {
        "verdict": verdict,
        "same": same,
        "signature": sig,
        "error": error,
        "seconds": round(time.monotonic() - t0, 1),
    }


def anomaly_kinds(results: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    """checker -> the (anomaly kind, f of its op) pairs of every failing check: every anomaly
    it lists, and the kinds a transactional checker only counts (f "-")."""
    out: dict[str, set[tuple[str, str]]] = {}
    for name, check in (results.get("checks") or {}).items():
        if not isinstance(check, dict) or check.get("valid") is not False:
            continue
        kinds = out.setdefault(str(name), set())
        for a in check.get("anomalies") or []:
            if isinstance(a, dict):
                op = a.get("op") if isinstance(a.get("op"), dict) else {}
                kinds.add((str(a.get("type") or "invalid"), str(op.get("f") or a.get("f") or "-")))
        details = check.get("details") or {}
        kinds.update((str(k), "-") for k in details.get("anomaly_types") or [])
        if not kinds:
            kinds.add(("invalid", "-"))
    return out


def same_anomaly(want: dict[str, str], results: dict[str, Any]) -> bool:
    """Whether a run gave the anomaly `want` (a signature's checker, anomaly and f) back:
    the same checker failed with that kind of anomaly, on the same kind of op. Not
    necessarily as its first anomaly: a run that breaks isolation in five ways lists them
    in an order that timing decides."""
    kinds = anomaly_kinds(results).get(want["checker"], set())
    return any(k == want["anomaly"] and want["f"] in ("-", f) for k, f in kinds)


def verdict_word(verdict: str) -> str:
    return {"True": "valid", "False": "invalid", "unknown": "unknown"}.get(verdict, verdict)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
