"""`dsjepsen check FILE`: the linearizability verdict on a history file.

Exit codes as Jepsen's: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from dsjepsen.checkers.linearizable import check_linearizable, resolve_model
from dsjepsen.checkers.models import MODELS, show
from dsjepsen.checkers.result import CheckResult
from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, ConfigError
from dsjepsen.history import History, read_history

FORMATS = ("auto", "jsonl", "edn", "jepsen-log", "kv-log")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a history file for linearizability",
        description="Check a history (JSONL, Jepsen history.edn, Jepsen log lines, or "
        "Porcupine kv lines) for linearizability against a model.",
    )
    p.add_argument("file", metavar="FILE", help="history file")
    p.add_argument(
        "--model",
        choices=sorted(MODELS),
        help="sequential model (default: inferred from the operations' fs)",
    )
    p.add_argument("--format", choices=FORMATS, default="auto", help="history format")
    p.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="give up with verdict unknown (exit 2) after this many seconds",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--report", metavar="OUT.html", help="also write an HTML report")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.time_limit is not None and args.time_limit <= 0:
        raise ConfigError(f"--time-limit must be positive, got {args.time_limit}")
    t0 = time.monotonic()
    history = read_history(args.file, args.format)
    operations = history.operations()
    parse_s = time.monotonic() - t0
    model = resolve_model(args.model, operations)
    result = check_linearizable(
        operations, model, time_limit=args.time_limit, progress=_progress, source=history.source
    )
    result.details["source"] = history.source
    result.details["parse_seconds"] = round(parse_s, 6)
    if args.report:
        # imported here: pandas and jinja2 are only needed for a report
        from dsjepsen.reports.html import render_check_report

        render_check_report(history, result, args.report)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=_json_default))
    else:
        print(render_text(history, result))
    if result.valid is True:
        return EXIT_VALID
    if result.valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


def _progress(key: Any, explored: int, elapsed: float) -> None:
    """Called by the checker about once a second on checks longer than ~2 s."""
    print(
        f"  ... {elapsed:.0f} s: key {show(key)}, {explored} configurations explored",
        file=sys.stderr,
        flush=True,
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


def _opline(d: dict[str, Any]) -> str:
    ret = d["ret"] if d["ret"] is not None else "-"
    return f"[{d['call']}..{ret}] process {d['process']} {d.get('description') or _desc(d)}"


def _desc(d: dict[str, Any]) -> str:
    if d["f"] in ("read", "get"):
        if d["type"] == "ok":
            return f"{d['f']} {show(d['output'])}"
        return d["f"]
    v = d["value"]
    suffix = " (indeterminate)" if d["ret"] is None else ""
    return f"{d['f']} {show(tuple(v) if isinstance(v, list) else v)}{suffix}"


def render_text(history: History, result: CheckResult) -> str:
    d = result.details
    verdict = {True: "VALID", False: "INVALID"}.get(result.valid, "UNKNOWN")  # type: ignore[call-overload]
    lines = [
        f"{history.source}: {verdict} (linearizable, model {d['model']})",
        f"  ops: {d['ops']}  keys: {d['keys']}  time: {d['seconds'] * 1000:.1f} ms "
        f"(parse {d.get('parse_seconds', 0) * 1000:.1f} ms)  configurations: "
        f"{d['configurations_explored']}  memory: ~{d['memory']['estimated_cache_bytes'] // 1024}"
        f" KiB search cache, max RSS {d['memory']['maxrss_kb_after'] // 1024} MiB",
    ]
    if d.get("failing_keys"):
        lines.append("  failing keys: " + ", ".join(str(k) for k in d["failing_keys"]))
    if d.get("undecided_note"):
        lines.append("  " + d["undecided_note"])
    elif d.get("undecided_keys"):
        lines.append("  undecided keys: " + ", ".join(str(k) for k in d["undecided_keys"]))
    if result.valid == "unknown" and result.reason:
        lines.append(f"  reason: {result.reason}")
    for a in result.anomalies:
        key = "" if a["key"] is None else f" on key {show(a['key'])}"
        lines.append("")
        lines.append(f"Not linearizable{key}: {a['message']}")
        lines.append(f"  cannot linearize: {_opline(a['op'] | {'description': None})}")
        if a["prefix"]:
            omitted = a.get("prefix_omitted", 0)
            more = f", first {omitted} omitted" if omitted else ""
            lines.append(
                f"  longest linearizable prefix ({a.get('prefix_length', len(a['prefix']))}"
                f" ops{more}), with the state after each:"
            )
            for e in a["prefix"][-12:]:
                lines.append(
                    f"    {_opline(e['op'] | {'description': e.get('description')})}"
                    f"  -> {e['state']}"
                )
            if len(a["prefix"]) > 12:
                lines.insert(len(lines) - 12, f"    ... {len(a['prefix']) - 12} earlier ops")
        if a["pending"]:
            lines.append("  pending at that point:")
            for p in a["pending"][:12]:
                lines.append(f"    {_opline(p)}")
        if a["states"]:
            lines.append("  possible states: " + ", ".join(a["states"]))
    return "\n".join(lines)
