"""`dsjepsen maelstrom test`: Maelstrom's `test` command, run as a dsjepsen test.

Takes the command lines that Maelstrom's docs and the Gossip Glomers pages give (with
`./maelstrom` replaced by `dsjepsen maelstrom`): every option of Maelstrom's `test` (its own and
the Jepsen CLI options it inherits, `MAELSTROM_OPTIONS`) is accepted with Maelstrom's meaning and
default, or refused with one line saying why; words that are not options are the node
program's arguments, as in Maelstrom. The command translates the line into the options of
`dsjepsen test --target maelstrom` (the same TestConfig, the same Runner: there is no second
runner), runs it on the local namespace cluster by default (`--hosts` for SSH hosts or
containers: `--nodes` is Maelstrom's, it names node ids), and prints Maelstrom-style results
(network statistics, stable latencies, availability, each check's `:valid?`, the transactional
anomalies in Elle's keys) before dsjepsen's verdict and report.

What is added after the run, here, because it is Maelstrom's and not every test's: the
`--availability` gate (as the `availability` checker, folded into results.json and the exit
code) and the network statistics counted from the relays' message logs and the controller's
own counts (`maelstrom` in results.json).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, ConfigError
from dsjepsen.workloads.gset import CONVERGENCE_TIMEOUT

log = logging.getLogger("dsjepsen.test")

#: Maelstrom workload -> extra `dsjepsen test` options it needs on Maelstrom nodes
WORKLOADS: dict[str, list[str]] = {
    "echo": [],
    "unique-ids": [],
    "broadcast": [],
    "g-set": ["--key-count", "1", "--adds-per-key", "1000000000"],
    "g-counter": ["--key-count", "1"],
    "pn-counter": ["--key-count", "1"],
    "lin-kv": [],
    "kafka": [],
    # Maelstrom checks txn-rw-register with Elle's writes-follow-reads inference (its
    # workload/txn_rw_register.clj: wfr-keys? true), txn-list-append with Elle's defaults
    "txn-rw-register": ["--wfr-keys"],
    "txn-list-append": [],
}
#: Maelstrom workloads that are dsjepsen workloads of another name
DSJEPSEN_WORKLOAD = {"txn-rw-register": "rw-register", "txn-list-append": "list-append"}
#: the transactional workloads, and Maelstrom's defaults for their options (its cli: 4
#: micro-ops at most, 16 writes per key; no --key-count, so Elle's 10 for exponential keys)
TXN_WORKLOADS = tuple(DSJEPSEN_WORKLOAD)
TXN_DEFAULTS = {"consistency_models": "strict-serializable", "max_txn_length": "4",
                "max_writes_per_key": "16", "key_count": "10"}  # fmt: skip
#: workloads whose final reads repeat until the nodes agree
CONVERGING = ("broadcast", "g-set", "g-counter", "pn-counter")
#: Maelstrom's nemesis names -> dsjepsen faults (kill and pause are dsjepsen's additions)
NEMESES = {"partition": "partition-majority", "kill": "kill", "pause": "pause"}
DEFAULT_INTERVAL = 10.0
#: Jepsen's nodes when none are named (jepsen.cli/default-nodes)
JEPSEN_DEFAULT_NODES = ("n1", "n2", "n3", "n4", "n5")
#: ids a relay could not route: clients (c1, ...) and services are addressed by name
CLIENT_ID = re.compile(r"^c\d*")
SERVICE_IDS = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")

#: every option of Maelstrom's `test` command: (flags, metavar or None for a switch, default,
#: what dsjepsen does with it). docs/maelstrom.md prints the same table.
MAELSTROM_OPTIONS: tuple[tuple[str, str | None, str | None, str], ...] = (
    ("--bin", "FILE", None, "the node program; a bare name is the file in this directory"),
    ("-w --workload", "NAME", "lin-kv", "the workload"),
    ("--availability", "EXPECTED", None, "total or a fraction: ok ops / invoked ops"),
    (
        "--consistency-models",
        "MODELS",
        "strict-serializable",
        "txn-*: Elle's models the transactions must satisfy, comma-separated",
    ),
    ("--key-count", "INT", None, "lin-kv, kafka (10), txn-* (10): keys in use at once"),
    ("--latency", "MILLIS", "0", "mean node-to-node delay, added by the relays"),
    ("--latency-dist", "TYPE", "constant", "constant, uniform or exponential"),
    ("--log-net-send", None, None, "log every message a node sends (always in messages.jsonl)"),
    ("--log-net-recv", None, None, "log every message a node receives"),
    ("--log-stderr", None, None, "log the nodes' stderr (always in node.log per node)"),
    ("--max-txn-length", "INT", "4", "txn-*: micro-ops per transaction, at most"),
    ("--max-writes-per-key", "INT", "16", "kafka, txn-*: writes to a key before a fresh key"),
    ("--node-count", "NUM", None, "nodes n0 .. n{NUM-1}; overrides --nodes"),
    ("--nemesis", "FAULTS", None, "partition (and dsjepsen's kill, pause)"),
    ("--nemesis-interval", "SECONDS", "10", "seconds between fault start and stop"),
    ("--rate", "RATE", "5", "total requests per second"),
    ("--topology", "SPEC", "grid", "broadcast: grid, line, total, tree, tree2-4"),
    ("-n --node", "HOSTNAME", None, "a node id (repeatable); default n1 .. n5"),
    ("--nodes", "NODE_LIST", None, "node ids, comma-separated"),
    ("--nodes-file", "FILENAME", None, "node ids, one per line"),
    ("--username", "USER", "root", "SSH: only with --hosts"),
    ("--password", "PASS", "root", "SSH sudo password: no effect, as in Maelstrom"),
    ("--strict-host-key-checking", None, None, "SSH: only with --hosts"),
    ("--no-ssh", None, None, "Maelstrom never uses SSH: no effect"),
    ("--ssh-private-key", "FILE", None, "SSH: only with --hosts"),
    ("--concurrency", "NUMBER", "1n", "client workers; Nn = N per node"),
    ("--leave-db-running", None, None, "leave the nodes running after the test"),
    ("--logging-json", None, None, "no effect: results.json is JSON already"),
    ("--test-count", "NUMBER", "1", "run the test NUMBER times, stop at the first failure"),
    ("--time-limit", "SECONDS", "60", "seconds of client load"),
)


def register(subparsers: Any) -> None:
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
        description="Maelstrom's `test` options, with Maelstrom's meanings and defaults (words "
        "that are not options are the node program's arguments), then dsjepsen's. Exit 0 "
        "valid, 1 invalid, 2 unknown, 254 bad options, 255 harness error.",
        epilog="example: dsjepsen maelstrom test -w broadcast --bin ./node --nemesis partition",
    )
    g = t.add_argument_group("Maelstrom's options (docs/maelstrom.md says what each does here)")
    for flags, metavar, default, what in MAELSTROM_OPTIONS:
        names = flags.split()
        help_text = what + (f" (default {default})" if default is not None else "")
        if names[-1] == "--node":
            g.add_argument(*names, dest="node", action="append", metavar=metavar, help=help_text)
        elif metavar is None:
            g.add_argument(*names, action="store_true", help=help_text)
        else:
            g.add_argument(*names, default=None, metavar=metavar, help=help_text)
    d = t.add_argument_group("dsjepsen's options")
    d.add_argument("--seed", default=None, metavar="N", help="random seed (default random)")
    d.add_argument("--store", default="store", metavar="DIR", help="run directories (store)")
    d.add_argument("--rpc-timeout", default=None, metavar="SECONDS", help="client timeout (2)")
    d.add_argument("--check-time-limit", default=None, metavar="SECONDS")
    d.add_argument("--json", action="store_true", help="results as JSON on stdout")
    d.add_argument("--leave-running", action="store_true", help="as --leave-db-running")
    d.add_argument(
        "--convergence-timeout",
        default=f"{CONVERGENCE_TIMEOUT.default:g}",
        metavar="SECONDS",
        help="broadcast and CRDTs: after healing, read every node until they agree, at most "
        f"this long (default {CONVERGENCE_TIMEOUT.default:g}, as `dsjepsen test`)",
    )
    d.add_argument("--hosts", metavar="H1,H2,...", help="run the nodes on SSH hosts (or "
                   "containers with --docker) instead of local namespaces")  # fmt: skip
    d.add_argument("--hosts-file", metavar="FILE", help="as --hosts, from a nodes file")
    d.add_argument("--docker", action="store_true", help="--hosts are docker containers")
    d.add_argument("--cluster-name", default="default", metavar="NAME", help="local cluster")
    d.add_argument(
        "--force-node-count",
        action="store_true",
        help="create a local cluster larger than this machine's estimated capacity",
    )
    t.add_argument("node_args", nargs="*", metavar="ARG", help="the node program's arguments")
    t.set_defaults(func=run, takes_extra=True)
    p.set_defaults(func=lambda a: _no_command(p))


def _no_command(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 254


def _float(text: str, option: str, minimum: float | None = None) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ConfigError(f"{option}: expected a number, got {text!r}") from None
    if minimum is not None and not x >= minimum:  # also refuses nan
        raise ConfigError(f"{option}: must be at least {minimum:g}, got {text}")
    return x


def _int(text: str, option: str, minimum: int = 1) -> int:
    try:
        x = int(text)
    except ValueError:
        raise ConfigError(f"{option}: expected a whole number, got {text!r}") from None
    if x < minimum:
        raise ConfigError(f"{option}: must be at least {minimum}, got {x}")
    return x


def node_args(args: argparse.Namespace) -> list[str]:
    """The node program's arguments: every word of the line that is not an option. A word
    that looks like an option and is none of Maelstrom's is refused, one line."""
    extra = list(getattr(args, "extra", None) or [])
    known = [f for flags, *_ in MAELSTROM_OPTIONS for f in flags.split() if f.startswith("--")]
    for word in extra:
        if word.startswith("-") and word != "-":
            flag = word.split("=", 1)[0]
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"{word}: not an option of Maelstrom's test command ({hint}docs/maelstrom.md "
                "lists them all; the node program's own options go after --)"
            )
    return [*(args.node_args or []), *extra]


def node_ids(args: argparse.Namespace) -> list[str]:
    """The Maelstrom node ids, by Maelstrom's rules: --node-count N gives n0 .. n{N-1} and
    overrides the rest; otherwise --nodes-file, --nodes and -n (repeatable) together, and
    Jepsen's n1 .. n5 when none is given."""
    if args.node_count is not None:
        n = _int(args.node_count, "--node-count")
        return [f"n{i}" for i in range(n)]
    ids: list[str] = []
    if args.nodes_file:
        try:
            text = Path(args.nodes_file).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(
                f"--nodes-file {args.nodes_file}: cannot read ({e.strerror})"
            ) from None
        ids += [line.strip() for line in text.splitlines() if line.strip()]
    if args.nodes:
        ids += [x.strip() for x in args.nodes.split(",") if x.strip()]
    ids += list(args.node or [])
    if not ids:
        return list(JEPSEN_DEFAULT_NODES)
    for x in ids:
        if CLIENT_ID.match(x) or x in SERVICE_IDS or not re.match(r"^[A-Za-z0-9_.:-]+$", x):
            raise ConfigError(
                f"--nodes: {x!r} cannot be a node id (ids starting with c are clients, "
                f"{', '.join(SERVICE_IDS)} are services; use letters, digits, _ . : -)"
            )
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise ConfigError(f"--nodes: node id {dupes[0]!r} is given twice")
    return ids


def translate(args: argparse.Namespace) -> list[str]:
    """The `dsjepsen test` options this Maelstrom command line means. ConfigError, one line,
    for anything refused."""
    from dsjepsen.targets.maelstrom.program import bin_line

    w = args.workload or "lin-kv"
    if w not in WORKLOADS:
        known = ", ".join(WORKLOADS)
        raise ConfigError(f"-w: unknown Maelstrom workload {w!r} (Maelstrom's: {known})")
    if not args.bin:
        raise ConfigError("--bin: expected --bin PATH, the node program to test")
    ids = node_ids(args)
    rate = _float(args.rate or "5", "--rate", minimum=0)
    if rate == 0:
        raise ConfigError(
            "--rate 0: Maelstrom then sends no client requests at all, which leaves nothing "
            "to check; give a rate above 0"
        )
    time_limit = _float(args.time_limit or "60", "--time-limit", minimum=0.001)
    latency = _float(args.latency or "0", "--latency", minimum=0)
    bin_ = bin_line(args.bin, node_args(args))
    workload = DSJEPSEN_WORKLOAD.get(w, w)
    argv = ["--target", "maelstrom", "--workload", workload, "--bin", bin_, *WORKLOADS[w]]
    argv += ["--node-ids", ",".join(ids)]
    argv += ["--time-limit", f"{time_limit:g}", "--rate", f"{rate:g}"]
    argv += ["--concurrency", args.concurrency or "1n", "--store", args.store]
    argv += ["--latency", f"{latency:g}", "--latency-dist", args.latency_dist or "constant"]
    argv += ["--topology", args.topology or "grid"]
    argv += ["--test-count", str(_int(args.test_count or "1", "--test-count"))]
    faults: list[str] = []
    for name in filter(None, (s.strip() for s in (args.nemesis or "").split(","))):
        if name not in NEMESES:
            raise ConfigError(
                f"--nemesis: unknown Maelstrom nemesis {name!r} (Maelstrom's: partition; "
                f"dsjepsen adds kill, pause)"
            )
        faults.append(NEMESES[name])
    if faults:
        argv += ["--nemesis", ",".join(faults)]
        if args.nemesis_interval is not None:
            interval = f"{_float(args.nemesis_interval, '--nemesis-interval', 0.001):g}"
        else:  # Maelstrom's 10 s, shortened so that every fault fits the time limit
            interval = f"{min(DEFAULT_INTERVAL, max(0.5, time_limit / (2 * len(faults)))):g}"
        argv += ["--nemesis-interval", interval]
    if w in CONVERGING:
        argv += ["--convergence-timeout", args.convergence_timeout]
    if args.key_count is not None:
        keys = str(_int(args.key_count, "--key-count"))
        if w in ("lin-kv", "kafka"):
            argv += ["--key-count", keys]
    if w == "kafka" and args.max_writes_per_key is not None:
        n = _int(args.max_writes_per_key, "--max-writes-per-key")
        argv += ["--max-writes-per-key", str(n)]
    if w in TXN_WORKLOADS:
        argv += txn_options(args)
    for opt in ("seed", "rpc_timeout", "check_time_limit"):
        if getattr(args, opt) is not None:
            argv += [f"--{opt.replace('_', '-')}", getattr(args, opt)]
    if args.json:
        argv.append("--json")
    if args.leave_running or args.leave_db_running:
        argv.append("--leave-running")
    return argv


def txn_options(args: argparse.Namespace) -> list[str]:
    """The transactional workload's options for Maelstrom's txn options, with Maelstrom's
    defaults. --consistency-models is comma-separated as Maelstrom's (spaces around the
    commas are taken too); every model must be one of Elle's transactional models."""
    from dsjepsen.checkers.consistency import TXN_MODELS

    given = {k: getattr(args, k) for k in TXN_DEFAULTS}
    opts = {k: given[k] if given[k] is not None else v for k, v in TXN_DEFAULTS.items()}
    models = [m.strip() for m in opts["consistency_models"].split(",") if m.strip()]
    if not models:
        raise ConfigError("--consistency-models: no model named (e.g. read-committed)")
    for m in models:
        if m not in TXN_MODELS:
            close = difflib.get_close_matches(m, TXN_MODELS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"--consistency-models: {m!r} is not one of Elle's transactional models "
                f"({hint}known: {', '.join(TXN_MODELS)})"
            )
    argv = ["--consistency", ",".join(dict.fromkeys(models))]
    argv += ["--key-count", str(_int(opts["key_count"], "--key-count"))]
    argv += ["--max-txn-length", str(_int(opts["max_txn_length"], "--max-txn-length"))]
    n = _int(opts["max_writes_per_key"], "--max-writes-per-key")
    return [*argv, "--max-writes-per-key", str(n)]


def _node_options(args: argparse.Namespace, count: int) -> argparse.Namespace:
    """The node selection of `dsjepsen test` this command line means: the local cluster of
    one namespace per Maelstrom node, or --hosts / --hosts-file (with Jepsen's SSH options
    --username and --ssh-private-key)."""
    from dsjepsen.cluster.nodes import add_node_options

    parser = argparse.ArgumentParser(add_help=False)
    add_node_options(parser)
    ns = parser.parse_args([])
    ns.nodes, ns.nodes_file, ns.docker = args.hosts, args.hosts_file, args.docker
    ns.cluster_name, ns.force_node_count = args.cluster_name, args.force_node_count
    if args.hosts or args.hosts_file:
        ns.ssh_user = args.username or ns.ssh_user
        ns.ssh_key = args.ssh_private_key
        ns.ssh_insecure_host_keys = not args.strict_host_key_checking
    else:
        ns.node_count = count
    return ns


class Echo(threading.Thread):
    """Maelstrom's --log-stderr, --log-net-send and --log-net-recv: while the test runs,
    copy each node's new stderr lines (node.log) and the messages its relay carried
    (messages.jsonl, out = sent, in = received) to the console log, as Maelstrom logs them.
    Only where the nodes' files are this machine's (the local cluster); elsewhere they are in
    the run directory afterwards."""

    def __init__(self, cluster: Any, target: Any, stderr: bool, send: bool, recv: bool) -> None:
        super().__init__(name="maelstrom-echo", daemon=True)
        self.files: list[tuple[str, str, str]] = []
        for n in cluster.nodes:
            if stderr:
                self.files.append((n.name, target.log_file(n), "stderr"))
            if send or recv:
                self.files.append((n.name, target.messages_file(n), "net"))
        self.dirs = {d for d, want in (("out", send), ("in", recv)) if want}
        self.offsets = {path: _size(path) for _, path, _ in self.files}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.once()
        self.once()

    def once(self) -> None:
        for node, path, kind in self.files:
            try:
                with open(path, "rb") as fh:
                    if os.fstat(fh.fileno()).st_size < self.offsets.get(path, 0):
                        self.offsets[path] = 0  # setup started the file afresh
                    fh.seek(self.offsets.get(path, 0))
                    data = fh.read()
            except OSError:
                continue
            keep = data[: data.rfind(b"\n") + 1]  # whole lines only
            self.offsets[path] = self.offsets.get(path, 0) + len(keep)
            for raw in keep.decode("utf-8", "replace").splitlines():
                if kind == "stderr":
                    log.info("%s stderr: %s", node, raw)
                    continue
                try:
                    e = json.loads(raw)
                except ValueError:
                    continue
                if e.get("dir") in self.dirs:
                    verb = "sent" if e["dir"] == "out" else "received"
                    log.info("%s %s %s -> %s %s", node, verb, e.get("src"), e.get("dest"),
                             e.get("type"))  # fmt: skip


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def run(args: argparse.Namespace) -> int:
    from dsjepsen import plugins
    from dsjepsen.checkers.availability import parse_availability
    from dsjepsen.cluster.nodes import add_node_options, open_nodes
    from dsjepsen.commands.test import console_logging, print_summary, render_report
    from dsjepsen.harness.config import add_test_options, config_from_args
    from dsjepsen.harness.runner import Runner, exit_code_for, run_with_seed_offset
    from dsjepsen.nemesis.catalog import check_cluster_size
    from dsjepsen.options import kwargs
    from dsjepsen.targets.maelstrom.program import resolve, split_bin

    if args.maelstrom_command != "test":
        raise ConfigError("usage: dsjepsen maelstrom test -w WORKLOAD --bin PROGRAM ...")
    required = parse_availability(args.availability)
    translated = translate(args)
    parser = argparse.ArgumentParser(prog="dsjepsen test", add_help=False)
    add_test_options(parser)
    add_node_options(parser)
    test_args = parser.parse_args(translated)
    ids = translated[translated.index("--node-ids") + 1].split(",")
    vars(test_args).update(vars(_node_options(args, len(ids))))
    raw = sys.argv[1:]
    config = config_from_args(test_args, argv=["dsjepsen", *raw] if "maelstrom" in raw else [])
    cls = plugins.get("targets", "maelstrom")
    remote = bool(args.hosts or args.hosts_file)
    if not remote:  # a program that cannot start: one line, before any namespace is touched
        resolve(split_bin(config.target_options["bin"]))
    handler = console_logging(bool(getattr(args, "debug", False)))
    worst = EXIT_VALID
    outputs: list[dict[str, Any]] = []
    try:
        with open_nodes(test_args, node_cost=cls.node_cost) as cluster:
            cluster.keep = config.leave_running
            if len(cluster.nodes) != len(ids):
                raise ConfigError(
                    f"--hosts: {len(cluster.nodes)} host(s) for {len(ids)} Maelstrom node id(s) "
                    f"({', '.join(ids)}); give one host per node"
                )
            check_cluster_size(config.nemesis, len(cluster.nodes))
            if float(config.target_options.get("latency") or 0) > 0:
                log.info(
                    "--latency %s ms (%s): applied by the relays to every node-to-node "
                    "message, as Maelstrom's simulated network does, not by netem",
                    args.latency,
                    args.latency_dist or "constant",
                )
            for i in range(config.test_count):
                cfg = run_with_seed_offset(config, i)
                if config.test_count > 1:
                    log.info("run %d of %d (seed %d)", i + 1, config.test_count, cfg.seed)
                target = cls(**kwargs(cls.options, cfg.target_options), seed=cfg.seed)
                echo = None
                if cluster.shares_controller_files and (
                    args.log_stderr or args.log_net_send or args.log_net_recv
                ):
                    echo = Echo(cluster, target, args.log_stderr, args.log_net_send,
                                args.log_net_recv)  # fmt: skip
                    echo.start()
                try:
                    outcome = Runner(cfg, cluster, target=target).run()
                finally:
                    if echo is not None:
                        echo.stop.set()
                        echo.join(timeout=5)
                results = _maelstrom_results(outcome.run_dir, outcome.results, target, required)
                (outcome.run_dir / "results.json").write_text(
                    json.dumps(results, indent=2, default=str), encoding="utf-8"
                )
                outcome.results = results
                outcome.valid = results["valid"]
                outcome.exit_code = exit_code_for(results["valid"])
                render_report(outcome.run_dir)
                stream = sys.stderr if cfg.json else sys.stdout
                print(_maelstrom_text(results), file=stream, flush=True)
                print_summary(cfg, outcome, json_out=cfg.json)
                outputs.append({"run_dir": str(outcome.run_dir), **results})
                code = {True: EXIT_VALID, False: EXIT_INVALID}.get(results["valid"], EXIT_UNKNOWN)
                if code != EXIT_VALID:  # Jepsen stops at the first run that is not valid
                    worst = code
                    break
    finally:
        logging.getLogger("dsjepsen").removeHandler(handler)
    if config.json:
        out = outputs[0] if len(outputs) == 1 else {"runs": outputs}
        json.dump(out, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return worst


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
    out["maelstrom"] = out.get("target") or target.run_results(run_dir, history)
    if avail is not None and checks:
        out["checks"] = checks
        valid = merge_validity([out.get("valid"), avail.valid])
        if valid is not out.get("valid") and avail.valid is False:
            out["reason"] = "; ".join(filter(None, [out.get("reason"), avail.reason]))
        out["valid"] = valid
    return out


def _elle_entry(details: dict[str, Any]) -> dict[str, Any]:
    """A transactional check's part of the printed results, in Elle's keys as Maelstrom
    prints them: nothing beyond `:valid?` when no anomaly the models care about was found;
    else the anomaly types, how many of each were found (Elle prints the cases themselves:
    they are in results.json and the report), and the models every anomaly found rules out
    (`:not` the weakest, `:also-not` every stronger one)."""
    from dsjepsen.targets.maelstrom.netstats import Bare

    def keywords(names: list[str], brackets: str) -> Bare:
        return Bare(brackets[:-1] + " ".join(f":{n}" for n in names) + brackets[-1])

    types = list(details.get("anomaly_types") or [])
    if not types:
        return {}
    counts = details.get("anomaly_counts") or {}
    return {
        "anomaly-types": keywords(types, "[]"),
        "anomalies": {Bare(f":{t}"): counts.get(t, 0) for t in types},
        "not": keywords(list(details.get("not") or []), "#{}"),
        "also-not": keywords(list(details.get("also_not") or []), "#{}"),
    }


def _maelstrom_text(results: dict[str, Any]) -> str:
    """The end of a Maelstrom run, as Maelstrom prints it (an EDN-ish map), then a verdict."""
    from dsjepsen.targets.maelstrom.netstats import Bare, edn

    m = results.get("maelstrom", {})
    net = {k: v for k, v in m.get("net", {}).items() if k in ("all", "clients", "servers")}
    stats = (results.get("stats") or {}).get("by_f", {})
    # ok ops have latencies; an f that never succeeded (kafka's crash) has none to show
    latency = {f: s.get("latency_ms") for f, s in stats.items() if s.get("ok")}
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
    lost = m.get("net", {}).get("lost") or {}
    if lost.get("during-faults") or lost.get("outside-faults"):
        shown["lost-between-nodes"] = {
            "during-faults": lost.get("during-faults", 0),
            "outside-faults": lost.get("outside-faults", 0),
        }
    for name, check in (results.get("checks") or {}).items():
        if name in ("stats", "vacuous", "availability"):
            continue
        entry: dict[str, Any] = {"valid?": check.get("valid")}
        details = check.get("details") or {}
        if details.get("stable_latencies_ms"):
            # Maelstrom prints {0 0, 0.5 452, 0.95 674, 0.99 731, 1 794}: quantile -> ms
            entry["stable-latencies"] = {
                Bare(k): v for k, v in details["stable_latencies_ms"].items()
            }
        for key in ("error_types", "bad_error_types"):
            if key in details:
                entry[key.replace("_", "-")] = [Bare(f":{x}") for x in details[key]]
        if "consistency_models" in details:  # Elle's result, as Maelstrom prints it
            entry.update(_elle_entry(details))
        shown[name] = entry
    shown["valid?"] = results.get("valid")
    verdict = {
        True: "Everything looks good! ヽ(‘ー`)ノ",
        False: "Analysis invalid! (ﾉಥ益ಥ）ﾉ ┻━┻",
    }.get(results.get("valid"), "Errors occurred during analysis, but no anomalies found. ಠ~ಠ")
    return edn(shown) + "\n\n" + verdict
