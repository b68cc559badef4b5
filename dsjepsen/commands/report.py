"""`dsjepsen report RUN_DIR`: (re)write a run directory's report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsjepsen.errors import InputError
from dsjepsen.files import check_output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="(re)generate report.html for a run directory",
        description=(
            "Render RUN_DIR/report.html from the run's test.json, history.jsonl, results.json "
            "and node logs. Works on interrupted runs too (no verdict, history still drawn)."
        ),
        epilog="example: dsjepsen report store/latest",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. store/latest")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of RUN_DIR/report.html"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dsjepsen.nemesis.catalog import fault_looks
    from dsjepsen.reports.html import render, render_run_report
    from dsjepsen.reports.rundata import load_run_dir

    if args.output is not None:
        check_output_file(args.output, "--output")
    d = Path(args.run_dir)
    if not d.is_dir():
        raise InputError("not a directory (expected a run directory)", str(d))
    if not (d / "history.jsonl").exists() and not (d / "test.json").exists():
        raise InputError("not a run directory: it has neither history.jsonl nor test.json", str(d))
    # the installed fault packages draw what a run recorded before it kept its own looks
    looks = fault_looks()
    if args.output:
        out = render(load_run_dir(d, looks), Path(args.output))
    else:
        out = render_run_report(d, looks)
    print(out)
    return 0
