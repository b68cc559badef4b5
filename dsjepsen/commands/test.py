"""`dsjepsen test`: run a test against a real cluster and print the verdict.

Exit codes are Jepsen's: 0 valid, 1 invalid, 2 unknown, 254 bad options, 255 harness error.
With --test-count N the worst verdict wins (invalid over unknown over valid) and the runs stop
at the first invalid one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID
from dsjepsen.files import check_output_file

log = logging.getLogger("dsjepsen.test")


def register(subparsers: Any) -> None:
    from dsjepsen.cluster.nodes import add_node_options
    from dsjepsen.harness.config import add_test_options

    p = subparsers.add_parser(
        "test",
        help="run a test: clients + faults against a cluster, then check the history",
        description="Set the target up on the nodes, run concurrent clients while faults come "
        "and go, heal, read every key, check the history. Exit 0 valid, 1 invalid, 2 unknown, "
        "254 bad options, 255 harness error.",
        epilog="example: dsjepsen test --target raft-kv --nemesis partition-majority",
    )
    add_test_options(p)
    p.add_argument(
        "--junit",
        metavar="FILE",
        help="also write the runs as JUnit XML (one test case per run) for CI",
    )
    add_node_options(p)
    p.set_defaults(func=run)


def _command_line() -> list[str]:
    """What the user typed, as `dsjepsen test ...` (recorded in test.json to reproduce the
    run). Empty when dsjepsen was called from Python with other arguments than sys.argv."""
    raw = sys.argv[1:]
    if "test" not in raw:
        return []
    return ["dsjepsen", *raw]


class _LineClearingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """On a terminal, clear the progress line before a log line so the two never mix."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                self.stream.write("\r\x1b[2K")
            except (OSError, ValueError):
                pass
        super().emit(record)


def console_logging(verbose: bool) -> logging.Handler:
    handler = _LineClearingHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("dsjepsen")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return handler


def run(args: argparse.Namespace) -> int:
    from dsjepsen import plugins
    from dsjepsen.cluster.nodes import open_nodes
    from dsjepsen.harness.config import config_from_args
    from dsjepsen.harness.runner import Runner, run_with_seed_offset
    from dsjepsen.nemesis.catalog import check_cluster_size

    junit = getattr(args, "junit", None)
    if junit is not None:
        check_output_file(junit, "--junit")  # before any node: not after the whole test
    config = config_from_args(args, argv=_command_line())
    node_cost = plugins.get("targets", config.target).node_cost
    handler = console_logging(bool(getattr(args, "debug", False)))
    summaries: list[dict[str, Any]] = []
    worst = EXIT_VALID
    try:
        # a cluster this command made on demand goes away with it (unless --leave-running);
        # one the user brought up with `dsjepsen cluster up` stays for the next test
        with open_nodes(args, node_cost=node_cost) as cluster:
            cluster.keep = config.leave_running
            check_cluster_size(config.nemesis, len(cluster.nodes))
            for i in range(config.test_count):
                cfg = run_with_seed_offset(config, i)
                if config.test_count > 1:
                    log.info("run %d of %d (seed %d)", i + 1, config.test_count, cfg.seed)
                outcome = Runner(cfg, cluster).run()
                render_report(outcome.run_dir)
                summaries.append(
                    {"run_dir": str(outcome.run_dir), "seed": cfg.seed, **outcome.results}
                )
                print_summary(cfg, outcome, json_out=config.json)
                if outcome.exit_code == EXIT_INVALID:
                    worst = EXIT_INVALID
                    break
                if outcome.exit_code == EXIT_UNKNOWN:
                    worst = EXIT_UNKNOWN
    finally:
        logging.getLogger("dsjepsen").removeHandler(handler)
    from dsjepsen.harness.junit import report_test_runs

    report_test_runs(getattr(args, "junit", None), config.test_name, summaries)
    if config.json:
        out = summaries[0] if len(summaries) == 1 else {"runs": summaries}
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return worst


def render_report(run_dir: Path) -> None:
    """report.html for a finished run; a rendering failure never changes the verdict."""
    # imported here: pandas and jinja2 are only needed once the run is over
    from dsjepsen.nemesis.catalog import fault_looks
    from dsjepsen.reports.html import render_run_report

    try:
        out = render_run_report(run_dir, fault_looks())
        log.info("report: %s", out or run_dir / "report.html")
    except Exception as e:  # noqa: BLE001 - the verdict stands whatever the report does
        log.error("report rendering failed (the verdict stands): %s: %s", type(e).__name__, e)
        log.debug("%s", traceback.format_exc())


def print_summary(cfg: Any, outcome: Any, *, json_out: bool) -> None:
    verdict = {True: "VALID", False: "INVALID"}.get(outcome.valid, "UNKNOWN")
    stats = outcome.results.get("stats", {}).get("total", {})
    lines = [
        f"{verdict}: {cfg.test_name} (seed {cfg.seed})",
        f"  ops: {stats.get('ok', 0)} ok, {stats.get('fail', 0)} fail, {stats.get('info', 0)} info",
    ]
    conv = outcome.results.get("checks", {}).get("convergence", {}).get("details", {})
    if conv.get("summary"):
        lines.append(f"  convergence: {conv['summary']}")
    if outcome.results.get("reason"):
        lines.append(f"  reason: {outcome.results['reason']}")
    lines.append(f"  run directory: {outcome.run_dir}")
    report = outcome.run_dir / "report.html"
    if report.exists():
        lines.append(f"  report: {report}")
    # with --json stdout carries only JSON, so the human summary goes to stderr
    stream = sys.stderr if json_out else sys.stdout
    print("\n".join(lines), file=stream, flush=True)
