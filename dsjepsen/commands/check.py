"""`dsjepsen check FILE`: the verdict of any registered checker on a history file.

Exit codes as Jepsen's: 0 valid, 1 invalid, 2 unknown, 254 bad arguments or input. Bad input
never becomes a verdict: an unreadable or malformed file, a history with no client operations,
or ops the model cannot judge are one line on stderr and exit 254, before any checker runs.
What the reader forgave (a truncated last line, time going backwards) is one warning line each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from dsjepsen import plugins
from dsjepsen.checkers.bank import INIT, TRANSFER, BankChecker
from dsjepsen.checkers.bank import READS as BANK_READS
from dsjepsen.checkers.base import (
    DEFAULT_TIME_LIMIT,
    MAX_TIME_LIMIT,
    CheckContext,
    Checker,
    run_checkers,
)
from dsjepsen.checkers.consistency import (
    DEFAULT_TXN_MODEL,
    INFER_TXNS,
    LIST_APPEND,
    RW_REGISTER,
    TXN_MODELS,
    consistency_models,
    txn_kind,
)
from dsjepsen.checkers.linearizable import CHECKER as LINEARIZABLE
from dsjepsen.checkers.lock import lock_checkers
from dsjepsen.checkers.minimize import attach_minimal_core
from dsjepsen.checkers.models import NOT_GIVEN, get_model, show
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.sequential import CHECKER as SEQUENTIAL
from dsjepsen.checkers.sequential import SCOPES
from dsjepsen.checkers.vacuous import without_client_ops
from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, ConfigError
from dsjepsen.files import check_output_file
from dsjepsen.formats import format_names, read_history
from dsjepsen.history import NEMESIS, History, printable
from dsjepsen.options import add_renamed

#: the single-object values of --consistency; each names the checker that decides it
CONSISTENCIES = (LINEARIZABLE, SEQUENTIAL)
#: the transactional checkers (Elle's), which take TXN_MODELS
TXN_CHECKERS = (LIST_APPEND, RW_REGISTER)
#: the rw-register version-order assumptions, as flags (Elle's options of the same names)
RW_ASSUMPTIONS = ("wfr-keys", "sequential-keys", "linearizable-keys")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a history file (linearizability, or Elle's isolation models for transactions)",
        description="Check a history (JSONL, a JSON array, Jepsen history.edn, Jepsen log "
        "lines, or Porcupine kv lines) with any registered checker. By default: "
        "linearizability against a model; histories of transactions (f txn) of append / r "
        "micro-ops go to the list-append checker, of r / w micro-ops to rw-register (Elle's "
        "checkers, for strict-serializable unless --consistency says otherwise).",
        epilog="example: dsjepsen check history.edn --consistency serializable",
    )
    p.add_argument("file", metavar="FILE", help="history file")
    p.add_argument(
        "--checker",
        action="append",
        metavar="NAME",
        help="checker to run, repeatable (default: inferred from the ops: linearizable, or "
        "list-append / rw-register for transactions; `dsjepsen list checkers`)",
    )
    p.add_argument(
        "--model",
        metavar="NAME",
        help="sequential model (default: inferred from the operations' fs; `dsjepsen list models`)",
    )
    p.add_argument(
        "--initial",
        metavar="JSON",
        help="the state every object starts in, as JSON (default: the model's own, nil for a "
        "register): '0' for a register, '{\"x\": 0, \"y\": 0}' for a multi-register, "
        "'[1, 2]' for a set or a queue (Knossos's (cas-register 0), (multi-register {:x 0}))",
    )
    p.add_argument(
        "--format", choices=("auto", *format_names()), default="auto", help="history format"
    )
    p.add_argument(
        "--check-time-limit",
        dest="time_limit",
        metavar="SECONDS",
        help=f"give up with verdict unknown (exit 2) after this many seconds (default "
        f"{DEFAULT_TIME_LIMIT:g}, as `dsjepsen test --check-time-limit`)",
    )
    add_renamed(p, "--time-limit", "--check-time-limit", "time_limit")
    p.add_argument(
        "--consistency",
        metavar="MODEL",
        default=None,
        help="consistency model to check: linearizable (default) or sequential (runs the "
        "sequential checker in place of the linearizable one); for transactions one or more "
        "of Elle's models, comma-separated: " + ", ".join(TXN_MODELS) + " (default "
        f"{DEFAULT_TXN_MODEL})",
    )
    for flag in RW_ASSUMPTIONS:
        p.add_argument(
            f"--{flag}",
            action="store_true",
            help={
                "wfr-keys": "rw-register: infer version orders from writes following reads "
                "within a transaction (holds under read committed and above)",
                "sequential-keys": "rw-register: assume each key is sequentially consistent "
                "and infer version orders from process order",
                "linearizable-keys": "rw-register: assume each key is linearizable and infer "
                "version orders from real-time order",
            }[flag],
        )
    p.add_argument(
        "--negative-balances",
        action="store_true",
        help="bank: the store lets balances go negative (Jepsen's :negative-balances?); the "
        "total and the accounts come from --initial ({account: balance} or the total), else "
        "from the history's init-accounts op, else inferred from the reads",
    )
    p.add_argument(
        "--minimize",
        action="store_true",
        help="for a history that is not linearizable: also find its minimal core, the fewest "
        "ops of the first failing key that are still not linearizable (printed first)",
    )
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--report", metavar="OUT.html", help="also write an HTML report")
    p.set_defaults(func=run)


def checkers_named(names: list[str]) -> list[Checker]:
    """One instance of each named checker, in order, each once; ConfigError for an unknown
    name (listing the known ones)."""
    out: list[Checker] = []
    for name in dict.fromkeys(names):
        cls = plugins.get("checkers", name)
        checker = cls()
        if not isinstance(checker, Checker):
            raise ConfigError(f"--checker {name}: the plugin is not a Checker ({cls!r})")
        out.append(checker)
    return out


def check_time_limit(text: str | None) -> float | None:
    """--check-time-limit's seconds: None when absent (the checkers then stop at their default
    budget, DEFAULT_TIME_LIMIT), else a positive number up to MAX_TIME_LIMIT (ConfigError)."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"--check-time-limit: expected a number, got {text[:40]!r}") from None
    if not 0 < seconds <= MAX_TIME_LIMIT:
        raise ConfigError(
            f"--check-time-limit must be a positive number of seconds up to {MAX_TIME_LIMIT:g}, "
            f"got {text[:40]}"
        )
    return seconds


def run(args: argparse.Namespace) -> int:
    time_limit = check_time_limit(args.time_limit)
    consistency = getattr(args, "consistency", None)
    txn_models = consistency_kind(consistency)
    names = list(args.checker or [])
    if args.model is not None:
        get_model(args.model)  # an unknown name is a bad argument before any reading
    checkers = checkers_named(names) if names else []  # unknown names before any reading
    initial = parse_initial(args.initial)
    if args.report is not None:
        check_output_file(args.report, "--report")  # before the history is read
    t0 = time.monotonic()
    history = read_history(args.file, args.format)
    for warning in history.warnings:
        print(f"dsjepsen: warning: {printable(warning)}", file=sys.stderr)
    if not names:
        names = lock_checkers(history) if args.model is None else []
        names = names or [infer_checker(history, consistency, args.model, txn_models)]
    if consistency == SEQUENTIAL:
        names = [SEQUENTIAL if n == LINEARIZABLE else n for n in names]
    checkers = checkers_named(names)
    txn = [c for c in checkers if c.name in TXN_CHECKERS]
    if consistency is not None and not txn_models and txn and len(txn) == len(checkers):
        raise ConfigError(
            f"--consistency {consistency} is for single-object checkers; "
            f"{', '.join(c.name for c in txn)} take{'s' if len(txn) == 1 else ''} Elle's "
            f"transactional models ({', '.join(TXN_MODELS)})"
        )
    if txn_models and not txn:
        raise ConfigError(
            f"--consistency {consistency} is a transactional model; the history's checker "
            f"({', '.join(c.name for c in checkers)}) takes linearizable or sequential "
            "(pass --checker list-append or --checker rw-register for transactions)"
        )
    # Jepsen's process rules, with file and line (Elle's histories of completions only are
    # read by checkers that take them)
    history.operations(orphans=all(c.orphans for c in checkers))
    vacuous = without_client_ops(history)
    if vacuous is not None:
        if args.json:
            print(json.dumps(vacuous.to_dict(), indent=2, default=_json_default))
        else:
            print(printable(f"{history.source}: UNKNOWN ({vacuous.reason})"))
        return EXIT_UNKNOWN
    parse_s = time.monotonic() - t0
    context = CheckContext(
        time_limit=time_limit,
        model=args.model,
        initial=initial,
        consistency=consistency if consistency is not None else LINEARIZABLE,
        extra={
            "progress": _progress,
            "negative_balances": bool(getattr(args, "negative_balances", False)),
            **{
                f.replace("-", "_"): getattr(args, f.replace("-", "_"), False)
                for f in RW_ASSUMPTIONS
            },
        },
    )
    for checker in checkers:
        checker.validate_input(history, context)
    composed, results = run_checkers(checkers, history, context, name="dsjepsen")
    if getattr(args, "minimize", False):
        for r in results:
            attach_minimal_core(r, history.operations(), time_limit, initial)
    for r in (composed, *results):
        r.details["source"] = history.source
        r.details["parse_seconds"] = round(parse_s, 6)
    shown = results[0] if len(results) == 1 else composed
    if args.report:
        # imported here: pandas and jinja2 are only needed for a report
        from dsjepsen.reports.html import render_check_report

        report: CheckResult | dict[str, Any] = shown
        if len(results) > 1:  # in the shape of a run's results.json
            report = {
                "valid": composed.valid,
                "reason": composed.reason,
                "checks": {r.checker: r.to_dict() for r in results},
            }
        render_check_report(history, report, args.report)
    if args.json:
        print(json.dumps(shown.to_dict(), indent=2, default=_json_default))
    else:
        print(render(history, composed, results))
        if args.report:
            print(f"report: {args.report}")
    if composed.valid is True:
        return EXIT_VALID
    if composed.valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


def consistency_kind(consistency: str | None) -> tuple[str, ...]:
    """The transactional models `--consistency` names (empty for none, linearizable or
    sequential); ConfigError, one line, for anything else."""
    if consistency is None or consistency in CONSISTENCIES:
        return ()
    try:
        return consistency_models(consistency)
    except ConfigError:
        # validated here, not by argparse choices: one line and exit 254, no usage block
        raise ConfigError(
            f"--consistency: unknown consistency model {printable(repr(consistency))} "
            f"(expected {' or '.join(CONSISTENCIES)}, or for transactions one or more of "
            f"{', '.join(TXN_MODELS)})"
        ) from None


def infer_checker(
    history: History, consistency: str | None, model: str | None, txn_models: tuple[str, ...]
) -> str:
    """The checker for a history when --checker is not given.

    Histories of transactions (every client op `f: txn` with a list of micro-ops) go by
    their micro-ops: append, or a read that returned a list -> list-append; Elle's `r` / `w`
    -> rw-register; Knossos's `read` / `write` (its multi-register histories) -> the
    linearizable checker with the multi-register model, as before, unless a transactional
    model is asked for (then rw-register, which reads that spelling too). `--model`, or
    `--consistency linearizable` / `sequential`, keeps any history with the single-object
    checkers. Jepsen's bank histories (transfers and reads of all accounts, nothing else)
    -> bank. Everything else: linearizable."""
    if model is not None or consistency in CONSISTENCIES:
        return LINEARIZABLE
    fs = {op.f for op in history.ops[:INFER_TXNS] if op.process != NEMESIS}
    if "transfer" in fs and fs & set(BANK_READS) and fs <= {INIT, TRANSFER, *BANK_READS}:
        return BankChecker.name
    kind = txn_kind(history)
    if kind == LIST_APPEND:
        return LIST_APPEND
    if kind == RW_REGISTER or (kind == "multi-register" and txn_models):
        return RW_REGISTER
    return LINEARIZABLE


def parse_initial(text: str | None) -> Any:
    """`--initial`'s JSON; NOT_GIVEN when absent. Bad JSON is one line and exit 254."""
    if text is None:
        return NOT_GIVEN
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise ConfigError(f"--initial: not JSON ({e}): {printable(text[:80])}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _progress(key: Any, explored: int, elapsed: float) -> None:
    """Called by the checker about once a second on checks longer than ~2 s."""
    print(
        printable(f"  ... {elapsed:.0f} s: key {show(key)}, {explored} configurations explored"),
        file=sys.stderr,
        flush=True,
    )


def _json_default(o: Any) -> Any:
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    return str(o)


# ---------------------------------------------------------------------------------------------
# Text output. Everything printed passes through `printable`: histories are input, and an
# escape sequence in a process name or a value must show as text, not act on the terminal.

VERDICTS = {True: "VALID", False: "INVALID"}


def _verdict(result: CheckResult) -> str:
    return VERDICTS.get(result.valid, "UNKNOWN")  # type: ignore[call-overload]


def render(history: History, composed: CheckResult, results: list[CheckResult]) -> str:
    """Every checker's block; with several, a last line with the composed verdict."""
    blocks = [
        render_text(history, r)
        if r.checker == LINEARIZABLE and "model" in r.details
        else render_sequential(history, r)
        if r.checker == SEQUENTIAL and "model" in r.details
        else render_txn(history, r)
        if r.checker in TXN_CHECKERS and "consistency_models" in r.details
        else render_other(history, r)  # also a checker that failed: its reason says why
        for r in results
    ]
    if len(results) > 1:
        names = ", ".join(r.checker for r in results)
        blocks.append(f"{history.source}: {_verdict(composed)} (checkers: {names})")
    return "\n".join(printable(line) for block in blocks for line in block.split("\n"))


def render_other(history: History, result: CheckResult) -> str:
    """A checker without its own layout: verdict, reason, anomalies, and for stats the
    counts per f."""
    lines = [f"{history.source}: {_verdict(result)} ({result.checker})"]
    by_f = result.details.get("by_f")
    if isinstance(by_f, dict):
        for f, c in by_f.items():
            lat = c.get("latency_ms", {})
            lines.append(
                f"  {f}: {c.get('ok', 0)} ok, {c.get('fail', 0)} fail, {c.get('info', 0)} info, "
                f"{c.get('pending', 0)} pending; latency p50 {lat.get('p50', 0)} ms, "
                f"p99 {lat.get('p99', 0)} ms"
            )
    if "total_from" in result.details:  # bank: where its invariant came from
        d = result.details
        lines.append(
            f"  accounts: {', '.join(map(str, d.get('accounts') or [])) or 'none'}; total "
            f"{d.get('total')} (from {d.get('total_from') or 'nowhere'}); "
            f"{d.get('read_count')} ok reads"
        )
    if result.reason:
        lines.append(f"  reason: {result.reason}")
    for a in result.anomalies:
        message = a.get("message")
        if message and (not result.reason or message not in result.reason):
            lines.append(f"  {a.get('type', 'anomaly')}: {message}")
    return "\n".join(lines)


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
    """The linearizability verdict, with each failing key's explanation."""
    d = result.details
    lines = [
        f"{history.source}: {_verdict(result)} (linearizable, model {d['model']})",
        "  consistency: linearizable, scope: whole-history (linearizability is local)"
        + _initial_note(d),
        f"  ops: {d['ops']}  keys: {d['keys']}  time: {d['seconds'] * 1000:.1f} ms "
        f"(parse {d.get('parse_seconds', 0) * 1000:.1f} ms)  configurations: "
        f"{d['configurations_explored']}  memory: ~{d['memory']['estimated_cache_bytes'] // 1024}"
        f" KiB search cache, max RSS {d['memory']['maxrss_kb_after'] // 1024} MiB",
    ]
    if d.get("failing_keys"):
        keys = sorted(d["failing_keys"], key=_key_order)
        lines.append("  failing keys: " + _key_list(keys))
    if d.get("minimal"):
        lines.extend(_minimal_lines(d["minimal"]))
    if d.get("unexplained_keys"):
        # the explanation work is capped (linearizable.EXPLAIN_KEYS): say which keys went
        # without, so that nobody reads the explanations below as the only failures
        rest = sorted(d["unexplained_keys"], key=_key_order)
        lines.append(
            f"  explained below: {len(result.anomalies)} of {len(d['failing_keys'])} failing "
            f"keys; not explained ({len(rest)}): " + _key_list(rest)
        )
    if d.get("undecided_note"):
        lines.append("  " + d["undecided_note"])
    elif d.get("undecided_keys"):
        lines.append("  undecided keys: " + ", ".join(str(k) for k in d["undecided_keys"]))
    if result.valid == "unknown" and result.reason:
        lines.append(f"  reason: {result.reason}")
    for a in sorted(result.anomalies, key=lambda a: _key_order(a["key"])):
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


def _minimal_lines(m: dict[str, Any]) -> list[str]:
    """The minimal core, first: the anomaly a person can check by hand."""
    key = "" if m["key"] is None else f" of key {show(m['key'])}"
    what = m.get("consistency") or "linearizable"
    how = (
        f"removing any one op (a read goes with the write it returned) makes it {what}"
        if m["one_minimal"]
        else m.get("note") or "not shown to be minimal"
    )
    out = [
        "",
        f"Minimal history{key}: {len(m['ops'])} of its {m['of']} ops are still not "
        f"{what}; {how} ({m['checks']} checks, {m['seconds']:.2f} s):",
    ]
    out.extend(f"  op {o['id']}: {_opline(o)}" for o in m["ops"])
    return out


def render_sequential(history: History, result: CheckResult) -> str:
    """The sequential-consistency verdict: the scope it holds at, how it was decided, and for
    a violation the cycle or the op that cannot be placed with the longest consistent prefix."""
    d = result.details
    scope = d.get("scope", "?")
    lines = [
        f"{history.source}: {_verdict(result)} (sequential, model {d.get('model')})",
        "  consistency: sequential, scope: "
        + (
            "per key (a violation on one key is a violation of the whole history)"
            if scope == "per-key" and result.valid is False
            else SCOPES.get(scope, scope)
        )
        + _initial_note(d),
        f"  ops: {d.get('ops')}  keys: {d.get('keys')}  processes: {d.get('processes')}  "
        f"decided by: {d.get('method')}  time: {d.get('seconds', 0) * 1000:.1f} ms",
    ]
    if d.get("minimal"):
        lines.extend(_minimal_lines(d["minimal"]))
    explained = any(a.get("type") != "cycle" for a in result.anomalies)
    if result.valid is not True and result.reason and not explained:
        lines.append(f"  reason: {result.reason}")  # a cycle, or why it is unknown
    for a in result.anomalies:
        if a.get("type") == "cycle":
            continue  # the reason is the cycle in words
        key = "" if a.get("key") is None else f" on key {a['key']}"
        lines.append("")
        lines.append(f"Not sequentially consistent{key}: {a['message']}")
        lines.append(f"  cannot place: {_opline(a['op'] | {'description': a['op_description']})}")
        lines.append("  process orders:")
        for proc, descs in list(a.get("process_orders", {}).items())[:12]:
            lines.append(f"    process {proc}: " + ", ".join(descs[:20]))
        if a["prefix"]:
            lines.append(
                f"  longest consistent prefix ({a['prefix_length']} ops), with the state after each:"
            )
            for e in a["prefix"][-12:]:
                lines.append(
                    f"    {_opline(e['op'] | {'description': e['description']})}  -> {e['state']}"
                )
    return "\n".join(lines)


#: cycles and other cases printed per anomaly kind (the JSON has up to txn.MAX_CASES)
SHOWN_CASES = 3


def render_txn(history: History, result: CheckResult) -> str:
    """A transactional verdict: what was checked, the anomalies found by kind, Elle's `not` /
    `also not`, and each cycle step by step with its transactions."""

    d = result.details
    models = ", ".join(d.get("consistency_models", []))
    edges = d.get("edges", {})
    lines = [
        f"{history.source}: {_verdict(result)} ({result.checker}, checked for {models})",
        f"  txns: {d.get('txns')} ({d.get('ok')} ok, {d.get('info')} info, {d.get('fail')} "
        f"fail)  keys: {d.get('keys')}  edges: "
        + ", ".join(f"{k} {v}" for k, v in edges.items() if v)
        + f"  components: {d.get('sccs')}  time: {d.get('seconds', 0) * 1000:.1f} ms "
        f"(parse {d.get('parse_seconds', 0) * 1000:.1f} ms)",
    ]
    if d.get("version_sources"):
        lines.append("  version orders from: " + ", ".join(d["version_sources"]))
    counts = d.get("anomaly_counts", {})
    if d.get("anomaly_types"):
        lines.append(
            "  anomalies: " + ", ".join(f"{t} ({counts.get(t, 0)})" for t in d["anomaly_types"])
        )
    if d.get("unreported_types"):
        lines.append(
            "  also found, allowed by the models checked: "
            + ", ".join(f"{t} ({counts.get(t, 0)})" for t in d["unreported_types"])
        )
    if d.get("not"):
        lines.append("  not: " + ", ".join(d["not"]))
    if d.get("also_not"):
        lines.append("  also not: " + ", ".join(d["also_not"]))
    if counts:
        lines.append(
            "  strongest models not ruled out: "
            + (", ".join(d.get("strongest_possible", [])) or "none")
        )
    if result.reason and result.valid is not True:
        lines.append(f"  reason: {result.reason}")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for a in result.anomalies:
        by_kind.setdefault(str(a.get("type")), []).append(a)
    for kind, cases in by_kind.items():
        for n, a in enumerate(cases[:SHOWN_CASES], start=1):
            lines.append("")
            lines.append(f"{kind} #{n}: {a.get('message', '')}")
            for t in a.get("cycle", []):
                lines.append("  " + _txn_line(t))
            for step in a.get("steps", []):
                lines.append(f"    {step['from']} < {step['to']} ({step['type']})")
        if len(cases) > SHOWN_CASES:
            total = counts.get(kind, len(cases))
            lines.append(
                f"  ... {total - SHOWN_CASES} more {kind} (--json shows up to {len(cases)})"
            )
    return "\n".join(lines)


def _txn_line(t: dict[str, Any]) -> str:
    """`T1 = op 3 (index 7, line 8, process 2, node n1, ok): [append x 1] [r y [1]]`"""
    from dsjepsen.checkers.txn import shown

    where = [
        f"index {t.get('index')}",
        f"line {t.get('line')}",
        f"process {shown(t.get('process'))}",
    ]
    if t.get("node"):
        where.append(f"node {t['node']}")
    where.append(str(t.get("type")))
    mops = " ".join(shown(m) for m in t.get("mops") or [])
    return f"{t.get('name')} = op {t.get('op_id')} ({', '.join(where)}): {mops}"


#: keys listed on one line at most, and characters of each key shown
LISTED_KEYS = 50
KEY_CHARS = 80


def _key_list(keys: list[Any]) -> str:
    """Keys for one line of text: each cut to KEY_CHARS, at most LISTED_KEYS of them (a
    200 KB key, or 100,000 keys, must not flood the terminal; --json has them all)."""
    shown = [str(k) if len(str(k)) <= KEY_CHARS else str(k)[: KEY_CHARS - 3] + "..." for k in keys]
    more = len(shown) - LISTED_KEYS
    return ", ".join(shown[:LISTED_KEYS]) + (
        f" (and {more} more; --json lists all)" if more > 0 else ""
    )


def _initial_note(details: dict[str, Any]) -> str:
    """`; initial state {...}` when the user gave one (--initial), else nothing."""
    if "initial" not in details:
        return ""
    return "; initial state " + json.dumps(details["initial"], ensure_ascii=False)


def _key_order(key: Any) -> tuple[int, Any]:
    """Keys in the order a reader expects: numbers (also numeric strings) by value, the rest
    by their text; None (a history without keys) first."""
    if key is None:
        return (0, 0)
    text = str(key)
    try:
        return (1, float(text))
    except ValueError:
        return (2, text)
