"""`dsjepsen shrink RUN_DIR`: the smallest test configuration that still fails the same way.

A failing run of 5 nodes, 60 seconds and three fault families is rarely the smallest way to
show a bug; the smallest way is what a fix is tested against, and what an RCA quotes. This
searches, greedily, in the order that simplifies most: fewer faults (each fault name dropped in
turn, then no faults at all), then single fault windows left out (`--nemesis-skip`: the seed
schedules the same faults at the same times, one window fewer), a shorter time limit (halved),
fewer nodes, fewer client workers, fewer keys, a lower rate. Each candidate is a real `dsjepsen test` run with the recorded seed;
real systems are not deterministic, so a candidate is tried up to --tries times and accepted
as soon as one try shows the same anomaly as the original run (checker, anomaly kind, kind of
op: `repro`'s rule). The search keeps the smallest accepted configuration and goes on from it
until no candidate is accepted or --budget minutes are spent (a try that has started is
finished).

Every step is printed and saved in RUN_DIR/shrink.json at once, so an interrupted shrink
resumes where it stopped (`--restart` starts over). It ends with the minimal command line and
how often it failed in the tries made of it. Exit 1 when a configuration that fails was found
(the original one at least), 2 when no try of the original configuration gave its anomaly back.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dsjepsen.commands.repro import SAME, attempt, recorded_test_argv
from dsjepsen.errors import ConfigError, InputError

#: the dimensions, in the order they are shrunk
DIMENSIONS = (
    "nemesis", "windows", "time-limit", "node-count", "concurrency", "key-count", "rate",
)  # fmt: skip
#: the shortest time limit tried
MIN_TIME_LIMIT = 5.0
#: flags that mean the same option (old names are taken by `dsjepsen test` with a warning)
SYNONYMS = {"key-count": ("--keys",)}
EXIT_FOUND, EXIT_NOT_REPRODUCED = 1, 2


@dataclass
class Step:
    """One candidate tried: what changed, how many tries failed the same way."""

    change: str
    argv: list[str]
    tries: int
    same: int
    accepted: bool
    refused: str | None = None


@dataclass
class State:
    """What shrink.json holds: the original and current command lines and every step."""

    original: list[str]
    current: list[str]
    steps: list[Step] = field(default_factory=list)
    #: failures / tries of the current configuration
    rate: tuple[int, int] = (0, 0)
    done: bool = False


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "shrink",
        help="search for the smallest test configuration that still fails the same way",
        description="Search for a smaller configuration of the test recorded in RUN_DIR that "
        "still gives the same anomaly: fewer faults, a shorter time limit, fewer nodes, "
        "workers and keys, a lower rate. Each candidate is tried up to --tries times (real "
        "systems are not deterministic) and accepted when one try fails the same way.",
        epilog="example: dsjepsen shrink store/latest --budget 30 --tries 3",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a failing run's directory")
    p.add_argument("--budget", type=float, default=30.0, metavar="MINUTES",
                   help="stop after this many minutes (default 30)")  # fmt: skip
    p.add_argument("--tries", type=int, default=2, metavar="K",
                   help="tries per candidate before it is rejected (default 2)")  # fmt: skip
    p.add_argument(
        "--dimensions",
        default=",".join(DIMENSIONS),
        metavar="LIST",
        help=f"what to shrink, in this order (default {','.join(DIMENSIONS)})",
    )
    p.add_argument("--restart", action="store_true", help="ignore RUN_DIR/shrink.json")
    p.set_defaults(func=run)


def option(argv: list[str], name: str) -> str | None:
    """The last value given to --name (or a synonym) in argv, None when absent."""
    flags = ("--" + name, *SYNONYMS.get(name, ()))
    value = None
    for i, token in enumerate(argv):
        flag, eq, rest = token.partition("=")
        if flag in flags:
            value = rest if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def with_option(argv: list[str], name: str, value: str | None) -> list[str]:
    """argv with --name set to value (None: removed), every earlier occurrence dropped."""
    flags = ("--" + name, *SYNONYMS.get(name, ()))
    out: list[str] = []
    i = 0
    while i < len(argv):
        flag, eq, _ = argv[i].partition("=")
        if flag in flags:
            i += 1 if eq else 2
            continue
        out.append(argv[i])
        i += 1
    return out if value is None else [*out, "--" + name, value]


def candidates(
    argv: list[str], test: dict[str, Any], dims: list[str]
) -> Iterator[tuple[str, list[str]]]:
    """(what changed, command line) of every one-step simplification, most simplifying first."""
    opts = test.get("options") or {}
    for dim in dims:
        if dim == "nemesis":
            faults = (option(argv, "nemesis") or ",".join(opts.get("nemesis") or [])).split(",")
            faults = [f for f in faults if f and f != "none"]
            if len(faults) > 1:
                for f in faults:
                    rest = ",".join(x for x in faults if x != f)
                    yield f"drop fault {f}", with_option(argv, "nemesis", rest)
            if faults:
                yield "no faults", with_option(argv, "nemesis", "none")
        elif dim == "windows":
            yield from _window_candidates(argv, test)
        elif dim == "time-limit":
            t = float(option(argv, "time-limit") or opts.get("time_limit") or 60)
            if t / 2 >= MIN_TIME_LIMIT:
                yield (
                    f"time limit {t:g} -> {t / 2:g} s",
                    with_option(argv, "time-limit", f"{t / 2:g}"),
                )
        elif dim == "node-count":
            n = int(option(argv, "node-count") or len(test.get("nodes") or []) or 5)
            if n > 1 and option(argv, "nodes") is None:  # listed hosts stay as they are
                yield f"nodes {n} -> {n - 1}", with_option(argv, "node-count", str(n - 1))
        elif dim == "concurrency":
            workers = int(test.get("clients") or 0)
            if workers > 1:
                yield (
                    f"workers {workers} -> {workers // 2}",
                    with_option(argv, "concurrency", str(workers // 2)),
                )
        elif dim == "key-count":
            raw = option(argv, "key-count") or (opts.get("options") or {}).get("key-count")
            k = int(raw) if raw is not None else 0
            if k > 1:
                yield (
                    f"keys {k} -> {max(1, k // 2)}",
                    with_option(argv, "key-count", str(max(1, k // 2))),
                )
        elif dim == "rate":
            r = float(option(argv, "rate") or opts.get("rate") or 0)
            if r > 1:
                yield (
                    f"rate {r:g} -> {math.ceil(r / 2):g}",
                    with_option(argv, "rate", f"{math.ceil(r / 2):g}"),
                )


def windows(argv: list[str], test: dict[str, Any]) -> int:
    """How many fault windows the schedule opens in this configuration: the nemesis ticks
    every interval until the time limit, and every other tick opens one (1st, 3rd, ...)."""
    opts = test.get("options") or {}
    faults = option(argv, "nemesis") or ",".join(opts.get("nemesis") or test.get("nemesis") or [])
    if not [f for f in faults.split(",") if f and f != "none"]:
        return 0
    t = float(option(argv, "time-limit") or test.get("time_limit") or opts.get("time_limit") or 60)
    every = option(argv, "nemesis-interval") or test.get("nemesis_interval")
    every = float(every or opts.get("nemesis_interval") or 10)
    ticks = int(t / every - 1e-9) if every > 0 else 0
    return (ticks + 1) // 2


def _window_candidates(argv: list[str], test: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """Each window still in the schedule left out in turn, while more than one is left."""
    raw = option(argv, "nemesis-skip") or ""
    skip = {int(w) for w in raw.split(",") if w.strip().isdigit()}
    left = [w for w in range(1, windows(argv, test) + 1) if w not in skip]
    if len(left) > 1:
        for w in left:
            rest = ",".join(str(x) for x in sorted(skip | {w}))
            yield f"drop fault window {w}", with_option(argv, "nemesis-skip", rest)


def run(args: argparse.Namespace) -> int:
    from dsjepsen.harness.campaign import signature_key, signature_of

    dims = [d.strip() for d in args.dimensions.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown or not dims:
        raise ConfigError(
            f"--dimensions: unknown {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(DIMENSIONS)})"
        )
    if not 1 <= args.tries <= 100:
        raise ConfigError(f"--tries must be between 1 and 100, got {args.tries}")
    if not 0 < args.budget <= 24 * 60:
        raise ConfigError(f"--budget must be between 0 and 1440 minutes, got {args.budget:g}")
    run_dir = Path(args.run_dir)
    try:
        test = json.loads((run_dir / "test.json").read_text(encoding="utf-8"))
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"not a readable run directory: {e}", str(run_dir)) from None
    original = signature_of(results, run_dir)
    if original is None:
        raise InputError("the recorded run did not fail: nothing to shrink", str(run_dir))
    want = {k: original[k] for k in SAME}
    state_path = run_dir / "shrink.json"
    state = None if args.restart else _load(state_path)
    if state is None:
        argv = recorded_test_argv(test)
        state = State(original=argv, current=argv)
    deadline = time.monotonic() + args.budget * 60
    print(f"shrink: looking for {signature_key(original)}", flush=True)
    print(f"  from: dsjepsen test {' '.join(state.current)}", flush=True)
    store = Path(tempfile.mkdtemp(prefix="dsj-shrink-"))
    tried = {json.dumps(s.argv) for s in state.steps}
    try:
        while not state.done and time.monotonic() < deadline:
            accepted = False
            for change, argv in candidates(state.current, test, dims):
                if json.dumps(argv) in tried:
                    continue
                if time.monotonic() >= deadline:
                    break
                step = _try(argv, change, args.tries, want, store, test, deadline)
                state.steps.append(step)
                tried.add(json.dumps(argv))
                word = "accepted" if step.accepted else "rejected"
                why = f" (refused: {step.refused})" if step.refused else ""
                print(f"  {change}: {step.same} of {step.tries} tries failed the same way, "
                      f"{word}{why}", flush=True)  # fmt: skip
                if step.accepted:
                    state.current = argv
                    state.rate = (step.same, step.tries)
                    accepted = True
                    _save(state_path, state)
                    break
                _save(state_path, state)
            if not accepted and time.monotonic() < deadline:
                state.done = True
        _save(state_path, state)
    except KeyboardInterrupt:
        _save(state_path, state)
        print(f"interrupted: resume with dsjepsen shrink {run_dir}", flush=True)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    _rerender(run_dir)
    end = "minimal" if state.done else "smallest so far (budget spent)"
    print(f"{end}: dsjepsen test {' '.join(state.current)}")
    if state.rate[1]:
        print(f"  failed the same way in {state.rate[0]} of {state.rate[1]} tries")
    else:
        print("  (the recorded configuration: no smaller one failed the same way)")
    return EXIT_FOUND


def _try(
    argv: list[str],
    change: str,
    tries: int,
    want: dict[str, str],
    store: Path,
    test: dict[str, Any],
    deadline: float,
) -> Step:
    local = (test.get("cluster") or {}).get("kind", "local") == "local"
    limit = float(option(argv, "time-limit") or 60)
    same = done = 0
    refused = None
    for _ in range(tries):
        if done and time.monotonic() >= deadline:
            break
        row = attempt(argv, want, local, limit, store, store / f"try-{time.monotonic_ns()}.log")
        done += 1
        if row["verdict"] == "error":
            refused = row["error"]  # e.g. a configuration the test refuses: rejected at once
            break
        if row["same"]:
            same += 1
            break
    return Step(change, argv, done, same, same > 0, refused)


def _rerender(run_dir: Path) -> None:
    """The run's report and rca.md again, now with the minimal reproduction."""
    try:
        from dsjepsen.reports.html import render_run_report

        render_run_report(run_dir)
    except Exception as e:  # noqa: BLE001 - the search's result is printed and saved anyway
        print(f"dsjepsen: warning: report not updated: {e}", file=sys.stderr)


def _save(path: Path, state: State) -> None:
    data = asdict(state)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(path)


def _load(path: Path) -> State | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    steps = [Step(**s) for s in data.get("steps", [])]
    return State(
        original=data["original"],
        current=data["current"],
        steps=steps,
        rate=tuple(data.get("rate") or (0, 0)),  # type: ignore[arg-type]
        done=bool(data.get("done")),
    )
