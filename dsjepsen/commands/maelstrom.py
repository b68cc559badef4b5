"""`dsjepsen maelstrom test`: Maelstrom's command line, run as a dsjepsen test.

Takes the command lines that Maelstrom's docs and the Gossip Glomers pages give (with
`./maelstrom/maelstrom` replaced by `dsjepsen maelstrom`), translates them into the options of
`dsjepsen test --target maelstrom` (the same TestConfig, the same Runner: there is no second
runner), runs them on the local namespace cluster by default, and prints Maelstrom-style
results (network statistics, latencies, availability) before dsjepsen's verdict and report.

What is added after the run, here, because it is Maelstrom's and not every test's: the
`--availability` gate (as the `availability` checker, folded into results.json and the exit
code) and the network statistics counted from the relays' message logs (`maelstrom` in
results.json).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, ConfigError

log = logging.getLogger("dsjepsen.test")

#: Maelstrom workload -> extra `dsjepsen test` options it needs on Maelstrom nodes
WORKLOADS: dict[str, list[str]] = {
    "echo": [],
    "unique-ids": [],
    "broadcast": [],
    "g-set": ["--keys", "1", "--adds-per-key", "1000000000"],
    "g-counter": ["--keys", "1"],
    "pn-counter": ["--keys", "1"],
    "lin-kv": [],
}
#: workloads whose final reads repeat until the nodes agree
CONVERGING = ("broadcast", "g-set", "g-counter", "pn-counter")
LATER = ("txn-rw-register", "txn-list-append", "kafka", "datomic")
#: Maelstrom's nemesis names -> dsjepsen faults
NEMESES = {"partition": "partition-majority", "kill": "kill", "pause": "pause"}
DEFAULT_INTERVAL = 10.0


def register(subparsers: Any) -> None:
    from dsjepsen.cluster.nodes import add_node_options

    p = subparsers.add_parser(
        "maelstrom",
        help="run Maelstrom's command line (test -w W --bin BIN ...) on a real cluster",
        description="Maelstrom's `test` command on real nodes: the node program runs once per "
        "node with a relay carrying its messages over the network (docs/maelstrom.md).",
        epilog="example: dsjepsen maelstrom test -w g-counter --bin ./my_node --node-count 3",
    )
    sub = p.add_subparsers(dest="maelstrom_command", metavar="COMMAND", parser_class=type(p))
    t = sub.add_parser(
        "test",
        help="test a Maelstrom node program",
        description="Exit 0 valid, 1 invalid, 2 unknown, 254 bad options, 255 harness error.",
        epilog="example: dsjepsen maelstrom test -w g-counter --bin ./my_node --node-count 3",
    )
    t.add_argument("-w", "--workload", required=True, help="Maelstrom workload")
    t.add_argument("--bin", required=True, help="the node program (split like a shell line)")
    t.add_argument("--time-limit", default="60", metavar="SECONDS")
    t.add_argument("--rate", default="5", metavar="OPS_PER_SECOND")
    t.add_argument("--concurrency", default="1n", metavar="N|Nn")
    t.add_argument("--latency", default="0", metavar="MS", help="mean node-to-node delay, ms")
    t.add_argument(
        "--latency-dist", default="constant", help="constant (default), uniform, exponential"
    )
    t.add_argument(
        "--nemesis", default=None, metavar="F1,F2", help="partition, kill, pause (comma list)"
    )
    t.add_argument("--nemesis-interval", default=None, metavar="SECONDS")
    t.add_argument("--availability", default=None, metavar="total|FRACTION")
    t.add_argument("--topology", default="grid", help="broadcast topology (default grid)")
    t.add_argument("--key-count", default=None, metavar="N", help="lin-kv: keys in use at once")
    t.add_argument(
        "--convergence-timeout",
        default="10",
        metavar="SECONDS",
        help="broadcast and CRDTs: after healing, read every node until they agree, at most "
        "this long (default 10)",
    )
    t.add_argument("--seed", default=None, metavar="N")
    t.add_argument("--store", default="store", metavar="DIR")
    t.add_argument("--rpc-timeout", default=None, metavar="SECONDS")
    t.add_argument("--check-time-limit", default=None, metavar="SECONDS")
    t.add_argument("--json", action="store_true", help="results as JSON on stdout")
    t.add_argument("--leave-running", action="store_true")
    # Maelstrom's logging switches: the node's stderr and every message are always logged
    for flag in ("--log-stderr", "--log-net-send", "--log-net-recv"):
        t.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    add_node_options(t)
    t.set_defaults(func=run, node_count=5)
    p.set_defaults(func=lambda a: _no_command(p))


def _no_command(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 254


def _float(text: str, option: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{option}: expected a number, got {text!r}") from None


def test_argv(args: argparse.Namespace) -> list[str]:
    """The `dsjepsen test` options this Maelstrom command line means."""
    w = args.workload
    if w in LATER:
        raise ConfigError(f"-w: Maelstrom workload {w} is not supported yet (may come later)")
    if w not in WORKLOADS:
        raise ConfigError(f"-w: unknown Maelstrom workload {w!r} (known: {', '.join(WORKLOADS)})")
    argv = ["--target", "maelstrom", "--workload", w, "--bin", args.bin, *WORKLOADS[w]]
    argv += ["--time-limit", args.time_limit, "--rate", args.rate]
    argv += ["--concurrency", args.concurrency, "--store", args.store]
    argv += ["--msg-latency", args.latency, "--msg-latency-dist", args.latency_dist]
    argv += ["--topology", args.topology]
    faults: list[str] = []
    if args.nemesis:
        for name in filter(None, (s.strip() for s in args.nemesis.split(","))):
            if name not in NEMESES:
                raise ConfigError(
                    f"--nemesis: unknown Maelstrom nemesis {name!r} (known: {', '.join(NEMESES)})"
                )
            faults.append(NEMESES[name])
    if faults:
        argv += ["--nemesis", ",".join(faults)]
        interval = args.nemesis_interval
        if interval is None:  # Maelstrom's 10 s, shortened so every fault fits the time limit
            limit = _float(args.time_limit, "--time-limit")
            interval = f"{min(DEFAULT_INTERVAL, max(0.5, limit / (2 * len(faults)))):g}"
        argv += ["--nemesis-interval", interval]
    if w in CONVERGING:
        argv += ["--convergence-timeout", args.convergence_timeout]
    if args.key_count is not None and w == "lin-kv":
        argv += ["--keys", args.key_count]
    for opt in ("seed", "rpc_timeout", "check_time_limit"):
        if getattr(args, opt) is not None:
            argv += [f"--{opt.replace('_', '-')}", getattr(args, opt)]
    if args.json:
        argv.append("--json")
    if args.leave_running:
        argv.append("--leave-running")
    return argv


def run(args: argparse.Namespace) -> int:
    from dsjepsen import plugins
    from dsjepsen.checkers.availability import parse_availability
    from dsjepsen.cluster.nodes import add_node_options, node_option_dests, open_nodes
    from dsjepsen.commands.test import console_logging, print_summary, render_report
    from dsjepsen.harness.config import add_test_options, config_from_args
    from dsjepsen.harness.runner import Runner, exit_code_for
    from dsjepsen.options import kwargs

    required = parse_availability(args.availability)
    translated = test_argv(args)
    parser = argparse.ArgumentParser(prog="dsjepsen test", add_help=False)
    add_test_options(parser)
    add_node_options(parser)
    test_args = parser.parse_args(translated)
    listed = args.nodes is not None or args.nodes_file is not None
    for name in node_option_dests():  # the node options, as given
        if name == "node_count" and listed:
            continue  # the default size of a local cluster; listed nodes have their own count
        if hasattr(args, name):
            setattr(test_args, name, getattr(args, name))
    raw = sys.argv[1:]
    config = config_from_args(test_args, argv=["dsjepsen", *raw] if "maelstrom" in raw else [])
    cls = plugins.get("targets", "maelstrom")
    target = cls(**kwargs(cls.options, config.target_options), seed=config.seed)
    handler = console_logging(bool(getattr(args, "debug", False)))
    try:
        with open_nodes(test_args) as cluster:
            cluster.keep = config.leave_running
            if float(config.target_options.get("msg-latency") or 0) > 0:
                log.info(
                    "--latency %s ms (%s): applied by the relays to every node-to-node "
                    "message, as Maelstrom's simulated network does, not by netem",
                    args.latency,
                    args.latency_dist,
                )
            outcome = Runner(config, cluster, target=target).run()
            results = _maelstrom_results(outcome.run_dir, outcome.results, target, required)
            (outcome.run_dir / "results.json").write_text(
                json.dumps(results, indent=2, default=str), encoding="utf-8"
            )
            outcome.results = results
            outcome.valid = results["valid"]
            outcome.exit_code = exit_code_for(results["valid"])
            try:
                render_report(outcome.run_dir)
            except Exception as e:  # noqa: BLE001 - the verdict stands whatever the report does
                log.error("report rendering failed (the verdict stands): %s", e)
    finally:
        logging.getLogger("dsjepsen").removeHandler(handler)
    stream = sys.stderr if config.json else sys.stdout
    print(_maelstrom_text(results), file=stream, flush=True)
    print_summary(config, outcome, json_out=config.json)
    if config.json:
        json.dump({"run_dir": str(outcome.run_dir), **results}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return {True: EXIT_VALID, False: EXIT_INVALID}.get(results["valid"], EXIT_UNKNOWN)


def _maelstrom_results(
    run_dir: Path, results: dict[str, Any], target: Any, required: float | None
) -> dict[str, Any]:
    """results.json with Maelstrom's parts: network statistics, availability."""
    from dsjepsen.checkers.availability import AvailabilityChecker
    from dsjepsen.checkers.base import CheckContext
    from dsjepsen.checkers.result import merge_validity
    from dsjepsen.formats.jsonl import read_jsonl

    out = dict(results)
    checks = dict(out.get("checks") or {})
    history = None
    try:
        history = read_jsonl(run_dir / "history.jsonl")
        context = CheckContext(final_from_index=out.get("final_reads_from_index"))
        avail = AvailabilityChecker(required).check(history, context)
        checks["availability"] = avail.to_dict()
    except Exception as e:  # noqa: BLE001 - an unreadable history was already judged unknown
        log.warning("availability not measured: %s", e)
        avail = None
    out["maelstrom"] = target.run_results(run_dir, history)
    if avail is not None and checks:
        out["checks"] = checks
        valid = merge_validity([out.get("valid"), avail.valid])
        if valid is not out.get("valid") and avail.valid is False:
            out["reason"] = "; ".join(filter(None, [out.get("reason"), avail.reason]))
        out["valid"] = valid
    return out


def _maelstrom_text(results: dict[str, Any]) -> str:
    """The end of a Maelstrom run, as Maelstrom prints it (an EDN-ish map), then a verdict."""
    from dsjepsen.targets.maelstrom.netstats import edn

    m = results.get("maelstrom", {})
    net = {k: v for k, v in m.get("net", {}).items() if k in ("all", "clients", "servers",
                                                              "services")}  # fmt: skip
    stats = (results.get("stats") or {}).get("by_f", {})
    latency = {f: s.get("latency_ms") for f, s in stats.items()}
    avail = (results.get("checks") or {}).get("availability", {}).get("details", {})
    shown: dict[str, Any] = {
        "net": {**net, "valid?": True},
        "latency-ms": latency,
        "availability": {
            "ok-fraction": round(avail["availability"], 4)
            if avail.get("availability") is not None
            else None,
            "required": avail.get("required"),
        },
        "malformed": m.get("malformed", 0),
    }
    if m.get("latency"):
        shown["msg-latency"] = m["latency"]
    if m.get("node_ids"):
        shown["node-ids"] = m["node_ids"]
    if m.get("malformed"):
        shown["malformed-by-kind"] = m.get("malformed_by_kind")
    if m.get("net", {}).get("dropped-by-relays"):
        shown["dropped-by-relays"] = m["net"]["dropped-by-relays"]
    for name, check in (results.get("checks") or {}).items():
        if name not in ("stats", "vacuous", "availability"):
            shown[name] = {"valid?": check.get("valid")}
    shown["valid?"] = results.get("valid")
    verdict = {
        True: "Everything looks good! ヽ(‘ー`)ノ",
        False: "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻",
    }.get(results.get("valid"), "Errors occurred during analysis, but no anomalies found. ಠ~ಠ")
    return edn(shown) + "\n\n" + verdict
