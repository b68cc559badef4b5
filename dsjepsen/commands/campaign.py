"""`dsjepsen campaign run FILE` / `dsjepsen campaign merge DIR...`: a matrix of tests.

`run` validates every cell of the matrix first (a typo in the file is one line and exit 254
before any cluster exists), then runs the cells one after another, or `--parallel N` at once
on N local clusters of its own, and writes store/campaigns/<name>/<timestamp>/ with
campaign.json, index.html and junit.xml. Each test runs as its own `dsjepsen test` process:
a crash, a hang or a Ctrl-C in one test heals and tears down that test only, and each run
keeps its own log. `merge` joins shard results (`--shard I/N` on a CI matrix) into one.

Exit code: 1 if any run is invalid, else 2 if any is unknown, else 0.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dsjepsen import __version__
from dsjepsen.errors import ConfigError, InputError
from dsjepsen.files import check_output_dir
from dsjepsen.options import add_renamed
from dsjepsen.reports.campaign import render_index

log = logging.getLogger("dsjepsen.campaign")

#: seconds a test may take beyond its time limit (setup, recovery, final reads, checking)
RUN_SLACK = 600.0


class _RaisingParser(argparse.ArgumentParser):
    """Parses one cell's options; a bad one is a ConfigError naming the cell, not an exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def register(subparsers: Any) -> None:
    from dsjepsen.cluster.nodes import add_node_options

    p = subparsers.add_parser(
        "campaign",
        help="run a matrix of tests (targets x workloads x nemeses x options x seeds)",
        description="Run or merge campaigns. Exit 1 if any run is invalid, else 2 if any is "
        "unknown, else 0; 254 for a bad campaign file or option.",
        epilog="example: dsjepsen campaign run examples/campaigns/nightly.toml --parallel 2",
    )
    sub = p.add_subparsers(dest="campaign_command", metavar="ACTION", parser_class=type(p))
    r = sub.add_parser(
        "run",
        help="run every test of a campaign file",
        description="Run every cell of the matrix in FILE (see docs/campaigns.md) and write "
        "store/campaigns/<name>/<timestamp>/ with campaign.json, index.html and junit.xml.",
        epilog="example: dsjepsen campaign run examples/campaigns/nightly.toml --shard 1/2",
    )
    r.add_argument("file", metavar="FILE.toml", help="campaign file")
    r.add_argument(
        "--parallel", default="1", metavar="N", help="tests at once, each on its own local cluster"
    )
    r.add_argument("--shard", metavar="I/N", help="run only the I-th of N slices of the matrix")
    r.add_argument("--store", default="store", metavar="DIR", help="store (default ./store)")
    r.add_argument("--list", action="store_true", help="print the cells (after sharding) and exit")
    add_node_options(r, local=False)
    r.add_argument(
        "--node-count",
        type=int,
        default=None,
        metavar="N",
        help="nodes of each local cluster (default: the file's [cluster] node-count, else 5)",
    )
    r.add_argument(
        "--cluster-prefix",
        default="c",
        metavar="PREFIX",
        help="first letters of the local clusters' names (1-3 lowercase letters or digits; "
        "the rest is random)",
    )
    r.set_defaults(func=run_campaign)
    m = sub.add_parser(
        "merge",
        help="merge shard results into one campaign directory",
        description="Merge the campaign.json of several shards (or runs) of one campaign.",
        epilog="example: dsjepsen campaign merge shard1/ shard2/ --out merged/",
    )
    m.add_argument("dirs", nargs="+", metavar="DIR", help="campaign directories (or campaign.json)")
    m.add_argument(
        "-o", "--output", dest="out", metavar="DIR",
        help="output directory (default: a new one in --store)",
    )  # fmt: skip
    add_renamed(m, "--out", "--output", "out")
    m.add_argument("--store", default="store", metavar="DIR", help="store (default ./store)")
    m.set_defaults(func=merge_campaigns)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 254


#: clusters a campaign runs at once, at most (each is a whole local cluster)
MAX_PARALLEL = 16


def _positive_int(text: str, option: str, maximum: int = MAX_PARALLEL) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ConfigError(f"{option}: expected a positive integer, got {text[:40]!r}") from None
    if not 1 <= n <= maximum:
        raise ConfigError(f"{option}: expected an integer from 1 to {maximum}, got {text[:40]!r}")
    return n


def test_names(cells: list[Any]) -> dict[str, str]:
    """Validate each configuration exactly as `dsjepsen test` would, before anything runs;
    config key -> test name. A bad option is one line naming the cell (exit 254)."""
    from dsjepsen.harness.config import add_test_options, config_from_args

    parser = _RaisingParser(prog="dsjepsen test", add_help=False)
    add_test_options(parser)
    names: dict[str, str] = {}
    for cell in cells:
        if cell.config_key in names:
            continue
        argv = cell.test_argv()
        try:
            args = parser.parse_args(argv)
            cfg = config_from_args(args)
        except ConfigError as e:
            raise ConfigError(f"campaign cell {' '.join(argv)}: {e}") from None
        names[cell.config_key] = cfg.test_name
    return names


def run_one(
    cell: Any, store: str, node_argv: list[str], log_path: Path, time_limit: float
) -> tuple[dict[str, Any] | None, str | None, str | None, float]:
    """One cell as a `dsjepsen test --json` process (run_test_process)."""
    return run_test_process(cell.test_argv(), store, node_argv, log_path, time_limit)


def run_test_process(
    test_argv: list[str], store: str, node_argv: list[str], log_path: Path, time_limit: float
) -> tuple[dict[str, Any] | None, str | None, str | None, float]:
    """`dsjepsen test TEST_ARGV --store STORE --json NODE_ARGV` as a process: (results,
    run_dir, error, seconds). Its log lines go to log_path; its stdout carries only the JSON
    summary. Past time_limit plus RUN_SLACK it gets SIGTERM (it heals and tears down)."""
    argv = [sys.executable, "-m", "dsjepsen", "test", *test_argv, "--store", store]
    argv += ["--json", *node_argv]
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as err:
        err.write("$ " + " ".join(argv[2:]) + "\n")
        err.flush()
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=False
        )
        _children.add(proc)
        try:
            out, _ = proc.communicate(timeout=time_limit + RUN_SLACK)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # the test heals and tears down on SIGTERM
            try:
                out, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            return None, None, f"timed out after {time_limit + RUN_SLACK:g}s", time.monotonic() - t0
        finally:
            _children.discard(proc)
    seconds = time.monotonic() - t0
    try:
        summary = json.loads(out) if out.strip() else None
    except ValueError:
        summary = None
    if not isinstance(summary, dict) or "valid" not in summary:
        last = _last_line(log_path)
        return None, None, f"dsjepsen test exited {proc.returncode}: {last}", seconds
    return summary, summary.get("run_dir"), None, seconds


_children: set[subprocess.Popen[str]] = set()


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1].strip() if lines else "no output"


def _time_limit(cell: Any) -> float:
    try:
        return float(dict(cell.options).get("time-limit", 60))
    except (TypeError, ValueError):
        return 60.0


def run_campaign(args: argparse.Namespace) -> int:
    from dsjepsen.cluster import localnet
    from dsjepsen.cluster.nodes import node_argv as given_node_argv
    from dsjepsen.cluster.nodes import node_specs
    from dsjepsen.harness import campaign as cp

    check_output_dir(args.store, "--store")
    spec = cp.load_campaign(args.file)
    parallel = _positive_int(str(args.parallel), "--parallel")
    remote = node_specs(args) is not None  # also checks the node options, before anything
    if remote and parallel > 1:
        raise ConfigError("--parallel: several tests at once need local clusters, not --nodes")
    all_cells = spec.cells()
    shard = cp.parse_shard(args.shard) if args.shard else None
    cells = cp.shard_cells(all_cells, *shard) if shard else all_cells
    names = test_names(cells)
    if args.list:
        for c in cells:
            print(
                f"{c.id}  {names[c.config_key]}  seed {c.seed}  dsjepsen test {' '.join(c.test_argv())}"
            )
        return 0
    node_count = args.node_count or spec.node_count
    if node_count is not None and not 1 <= node_count <= localnet.MAX_NODES:
        raise ConfigError(f"--node-count {node_count}: must be 1-{localnet.MAX_NODES}")
    prefix = str(args.cluster_prefix)
    if not (
        1 <= len(prefix) <= 3 and all(c in "abcdefghijklmnopqrstuvwxyz0123456789" for c in prefix)
    ):
        raise ConfigError(f"--cluster-prefix: 1-3 lowercase letters or digits, got {prefix!r}")
    if not remote:
        reason = localnet.unsupported_reason()
        if reason:
            raise ConfigError(f"campaign needs local clusters: {reason}")
    out_dir = cp.new_campaign_dir(
        args.store, spec.name, f"-shard{shard[0]}of{shard[1]}" if shard else ""
    )
    logs = out_dir / "logs"
    logs.mkdir(exist_ok=True)
    meta = {
        "name": spec.name,
        "description": spec.description,
        "file": str(args.file),
        "fingerprint": spec.fingerprint,
        "matrix": spec.matrix,
        "cells_total": len(all_cells),
        "cells": len(cells),
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "parallel": parallel,
        "dsjepsen": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "store": os.path.relpath(Path(args.store).resolve(), out_dir.resolve()),
    }
    print(
        f"campaign {spec.name}: {len(cells)} tests, {parallel} at a time -> {out_dir}", flush=True
    )
    rows: list[dict[str, Any]] = []
    lock = threading.Lock()
    slots: queue.Queue[list[str]] = queue.Queue()
    clusters: list[str] = []
    node_argv = given_node_argv(args)

    def work(cell: Any) -> None:
        slot = slots.get()
        try:
            log_path = logs / f"{cell.id}.log"
            results, run_dir, error, seconds = run_one(
                cell, args.store, slot, log_path, _time_limit(cell)
            )
            row = cp.make_row(
                cell,
                campaign_dir=out_dir,
                test_name=names[cell.config_key],
                results=results,
                run_dir=run_dir,
                seconds=seconds,
                error=error,
            )
            row["log"] = os.path.relpath(log_path, out_dir)
            with lock:
                rows.append(row)
                done = len(rows)
            reason = f": {row['reason']}" if row["verdict"] != "valid" and row["reason"] else ""
            print(
                f"[{done}/{len(cells)}] {row['verdict'].upper()} {row['test_name']} seed "
                f"{cell.seed} ({seconds:.1f}s){reason[:200]}",
                flush=True,
            )
        finally:
            slots.put(slot)

    interrupted = False
    # a cancelled CI job sends SIGTERM: treat it as Ctrl-C so every test heals and tears
    # down, the clusters go away and the results so far are still written
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if remote:
            slots.put(node_argv)
        else:
            for _ in range(min(parallel, max(1, len(cells)))):
                name = localnet.random_name(prefix)
                clusters.append(name)
                localnet.up(name, node_count=node_count)
                slots.put(["--cluster-name", name])
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
            futures = [pool.submit(work, c) for c in cells]
            try:
                for f in concurrent.futures.as_completed(futures):
                    f.result()
            except KeyboardInterrupt:
                interrupted = True
                for f in futures:
                    f.cancel()
                for proc in list(_children):  # each test heals and tears down on SIGTERM
                    proc.send_signal(signal.SIGTERM)
                raise
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
        for name in clusters:
            try:
                localnet.down(name)
            except Exception as e:  # noqa: BLE001 - take every cluster down, say which failed
                print(f"dsjepsen: warning: cluster {name}: {e}", file=sys.stderr)
        meta["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        meta["interrupted"] = interrupted
        data = cp.write_campaign(out_dir, meta, rows, render_index=render_index)
    _print_summary(out_dir, data)
    if interrupted:
        raise KeyboardInterrupt
    return int(data["exit_code"])


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def merge_campaigns(args: argparse.Namespace) -> int:
    from dsjepsen.harness import campaign as cp

    out_dir = check_output_dir(args.out, "--output") if args.out is not None else None
    if out_dir is None:
        check_output_dir(args.store, "--store")
    first_dir, first = cp.read_campaign(args.dirs[0])
    if out_dir is not None:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise ConfigError(f"--out {out_dir}: exists and is not empty")
        out_dir.mkdir(parents=True, exist_ok=True)
    else:
        out_dir = cp.new_campaign_dir(args.store, str(first.get("name", "campaign")), "-merged")
    try:
        data = cp.merge(args.dirs, out_dir, render_index=render_index)
    except (ConfigError, InputError):
        if not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    _print_summary(out_dir, data)
    return int(data["exit_code"])


def _print_summary(out_dir: Path, data: dict[str, Any]) -> None:
    s = data["summary"]
    t = s["totals"]
    statuses = ", ".join(f"{n} {k}" for k, n in s["statuses"].items() if n) or "none"
    lines = [
        f"campaign {data.get('name')}: {t['runs']} runs: {t['valid']} valid, {t['invalid']} "
        f"invalid, {t['unknown']} unknown; configurations: {statuses}",
    ]
    for f in s["findings"]:
        lines.append(
            f"  finding: {f['title']} ({len(f['runs'])} runs): {f['example_reason'][:160]}"
        )
    for c in s["configurations"]:
        if c["status"] == "flaky":
            lines.append(
                f"  flaky: {c['label']} (invalid on seeds {c['seeds']['invalid']}, valid on "
                f"{c['seeds']['valid']})"
            )
    if data.get("missing_cells"):
        lines.append(f"  {data['missing_cells']} cells of the matrix have no result")
    lines += [
        f"  index: {out_dir / 'index.html'}",
        f"  junit: {out_dir / 'junit.xml'}",
        f"  json:  {out_dir / 'campaign.json'}",
    ]
    print("\n".join(lines), flush=True)
