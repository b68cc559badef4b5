"""`dsjepsen export FILE`: convert a history so another tool (Knossos above all) can re-check it.

Knossos checks one register at a time, so a multi-key history goes out one key per file:
either the key named with --key, or every key into a directory with --split.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from dsjepsen.errors import ConfigError
from dsjepsen.files import check_output_dir, check_output_file
from dsjepsen.formats import format_names, read_history
from dsjepsen.formats.edn import write_edn
from dsjepsen.history import History, printable, write_jsonl


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="convert a history to Jepsen/Knossos EDN (or JSONL)",
        description="Convert a history file to Jepsen/Knossos history.edn (default) or to "
        "dsjepsen JSONL. Multi-key histories are exported one key per file for Knossos.",
        epilog="example: dsjepsen export store/latest/history.jsonl -o history.edn",
    )
    p.add_argument("file", metavar="FILE", help="history file (any format dsjepsen reads)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file (a directory with --split)",
    )
    p.add_argument("--to", choices=("edn", "jsonl"), default="edn", help="output format")
    p.add_argument(
        "--format",
        choices=("auto", *format_names()),
        default="auto",
        help="input format (default: detected from the content)",
    )
    p.add_argument("--key", help="export only this key's ops (plus nemesis ops)")
    p.add_argument(
        "--split", action="store_true", help="write one file per key into the OUT directory"
    )
    p.set_defaults(func=run)


def _keys(history: History) -> list[Any]:
    seen: dict[str, Any] = {}
    for op in history.client_ops():
        if op.key is not None:
            seen.setdefault(str(op.key), op.key)
    return list(seen.values())


def _safe_name(key: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(key))[:80] or "_"


def run(args: argparse.Namespace) -> int:
    if args.split:
        check_output_dir(args.output, "-o")
    else:
        check_output_file(args.output, "-o")
    history = read_history(args.file, args.format)
    for warning in history.warnings:
        print(f"dsjepsen: warning: {printable(warning)}", file=sys.stderr)
    history.validate()
    keys = _keys(history)
    if args.key is not None:
        matching = [k for k in keys if str(k) == args.key]
        if not matching:
            shown = printable(", ".join(str(k) for k in keys[:10]) or "none")
            raise ConfigError(f"--key {args.key!r} is not a key of {args.file} (keys: {shown})")
        selected: list[Any] = matching
    elif args.split:
        selected = keys
    else:
        selected = []
    out = Path(args.output)
    if args.to == "jsonl":
        if args.split:
            raise ConfigError("--split applies to --to edn only")
        ops = history.ops
        if selected:
            ops = [op for op in ops if op.key is None or op.key == selected[0]]
        write_jsonl(ops, out)
        print(f"wrote {len(ops)} ops to {out}")
        return 0
    if args.split:
        out.mkdir(parents=True, exist_ok=True)
        for k in selected:
            path = out / f"key-{_safe_name(k)}.edn"
            write_edn(history, path, key=k)
        print(f"wrote {len(selected)} EDN files (one per key) to {out}/")
        return 0
    if len(keys) > 1 and not selected:
        raise ConfigError(
            f"{args.file} has {len(keys)} keys; Knossos checks one register at a time: "
            "pass --key K, or --split to write one file per key"
        )
    if selected:
        write_edn(history, out, key=selected[0])
    else:
        write_edn(history, out)
    print(f"wrote {out}")
    return 0
