"""`dsjepsen cluster up|down|status|exec|heal`: manage the embedded local namespace cluster."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dsjepsen.cluster import localnet
from dsjepsen.cluster.nodes import add_node_options, heal_selected, open_nodes
from dsjepsen.errors import ConfigError
from dsjepsen.options import add_renamed

#: `cluster up --nodes N`, the old name of --node-count: accepted until the next release
_NODES_DEPRECATED = (
    "dsjepsen: warning: `cluster up --nodes N` is deprecated and will be removed in the next "
    "release; use --node-count N (--nodes means a host list everywhere else)"
)


class _DeprecatedNodeCount(argparse.Action):
    """The hidden `cluster up --nodes N`: stores into node_count, says so on stderr once."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if not getattr(namespace, "_nodes_warned", False):
            print(_NODES_DEPRECATED, file=sys.stderr)
            namespace._nodes_warned = True
        setattr(namespace, self.dest, values)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="manage the local network-namespace cluster",
        description="Create, inspect, use, heal and remove the local cluster: one network "
        "namespace per node (n1..nN) on a private bridge; every name starts with dsj-. "
        "Every action takes --cluster-name NAME (alias --name).",
        epilog="example: dsjepsen cluster up --node-count 3 --cluster-name demo",
    )
    sub = parser.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    def add(name: str, help: str, func: Any, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, epilog=f"example: {example}")
        p.add_argument(
            "--cluster-name",
            dest="cluster_name",
            metavar="NAME",
            default=localnet.DEFAULT_NAME,
            help=f"cluster name, 1-7 lowercase letters/digits (default: {localnet.DEFAULT_NAME})",
        )
        add_renamed(p, "--name", "--cluster-name", "cluster_name")
        p.set_defaults(func=func)
        return p

    p = add("up", "create the cluster (idempotent)", run_up, "dsjepsen cluster up --node-count 3")
    p.add_argument(
        "--node-count",
        type=int,
        default=localnet.DEFAULT_NODE_COUNT,
        metavar="N",
        help=f"node count (default {localnet.DEFAULT_NODE_COUNT})",
    )
    p.add_argument(
        "--nodes",
        type=int,
        dest="node_count",
        action=_DeprecatedNodeCount,
        help=argparse.SUPPRESS,
    )
    p.add_argument("--subnet", metavar="CIDR", help="IPv4 subnet (default: a /24 of 10.213.0.0/16)")
    p.add_argument(
        "--force-node-count",
        action="store_true",
        help="create a cluster larger than this machine's estimated capacity",
    )

    p = add(
        "down",
        "kill every process in the cluster and remove it",
        run_down,
        "dsjepsen cluster down --cluster-name demo",
    )
    p.add_argument("--keep-data", action="store_true", help="keep node data and logs")

    p = add(
        "status",
        "show the cluster's nodes, processes and leftover faults",
        run_status,
        "dsjepsen cluster status --json",
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add(
        "exec",
        "run a command on a node: exec NODE -- CMD...",
        run_exec,
        "dsjepsen cluster exec n1 -- ip -4 addr",
    )
    p.add_argument("node", help="node name, e.g. n1")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    # exec also reaches SSH hosts and containers, to check a node list before a test
    add_node_options(p, local=False)

    p = add(
        "heal",
        "remove every fault dsjepsen left (firewall, qdiscs, paused processes) and stop every "
        "process left in the nodes (a crashed run's target)",
        run_heal,
        "dsjepsen cluster heal --docker --nodes dsj-n1,dsj-n2,dsj-n3",
    )
    # heal also reaches SSH hosts and containers: what a killed run left on them
    add_node_options(p, local=False)


def run_up(args: argparse.Namespace) -> int:
    if not 1 <= args.node_count <= localnet.MAX_NODES:
        raise ConfigError(f"--node-count {args.node_count}: must be 1-{localnet.MAX_NODES}")
    cluster = localnet.up(
        args.cluster_name,
        node_count=args.node_count,
        subnet=args.subnet,
        force=args.force_node_count,
    )
    print(
        f"cluster {cluster.name}: {len(cluster.nodes)} nodes on {cluster.meta['subnet']} "
        f"(controller {cluster.meta['controller_address']})"
    )
    for n in cluster.nodes:
        print(f"  {n.name}  {n.address:<15}  {n.extra['netns']}  {n.workdir}")
    return 0


def run_down(args: argparse.Namespace) -> int:
    removed = localnet.down(args.cluster_name, keep_data=args.keep_data)
    namespaces = sum(1 for r in removed if r.startswith("namespace "))
    processes = sum(1 for r in removed if r.startswith("process "))
    if removed:
        print(
            f"cluster {args.cluster_name}: removed {namespaces} namespaces, killed {processes} processes"
        )
    else:
        print(f"cluster {args.cluster_name}: nothing to remove")
    return 0


def run_status(args: argparse.Namespace) -> int:
    st = localnet.status(args.cluster_name)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0 if st["exists"] else 1
    if not st["exists"]:
        others = [c for c in localnet.list_clusters() if c != args.cluster_name]
        print(
            f"cluster {args.cluster_name}: not created"
            + (f" (stray: {', '.join(st['stray'])})" if st["stray"] else "")
        )
        if others:
            print(f"other clusters: {', '.join(others)}")
        return 1
    print(
        f"cluster {st['name']}: {len(st['nodes'])} nodes on {st['subnet']}, created {st['created']}"
    )
    if st["missing"]:
        print(f"  DAMAGED, missing: {', '.join(st['missing'])}")
    print(
        f"  {'node':<5} {'address':<15} {'up':<4} {'procs':>5} {'paused':>6} {'rules':>5} "
        f"{'clock':>9}  netns"
    )
    for n in st["nodes"]:
        offset = n.get("clock_offset") or 0.0
        clock = f"{offset:+.3f}s" if offset else "-"
        print(
            f"  {n['name']:<5} {n['address']:<15} {'yes' if n['up'] else 'NO':<4} "
            f"{n['processes']:>5} {n['stopped']:>6} {n['iptables_rules']:>5} {clock:>9}  "
            f"{n['netns']}"
        )
    return 0


def run_exec(args: argparse.Namespace) -> int:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise ConfigError("cluster exec: no command given (usage: cluster exec NODE -- CMD...)")
    if not 0 < args.timeout <= 86400:  # also refuses nan
        raise ConfigError(f"--timeout {args.timeout}: must be a number of seconds up to 86400")
    cluster = open_nodes(args, create=False, check=False)
    try:
        res = cluster.remote(args.node).run(cmd, timeout=args.timeout, check=False)
    finally:
        cluster.close()
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.exit


def run_heal(args: argparse.Namespace) -> int:
    where, report = heal_selected(args)
    faults = stopped = 0
    for node, done in report.items():
        # listed nodes say one line per thing undone; the local cluster says it by kind
        items = done.items() if isinstance(done, dict) else [(None, done)]
        for kind, lines in items:
            for line in lines:
                if kind == "stopped" or (kind is None and line.startswith("killed ")):
                    stopped += 1
                else:
                    faults += 1
                print(f"{node}: {line}" if kind is None else f"{node}: {kind}: {line}")
    if report and not any(isinstance(d, dict) for d in report.values()):
        print(f"healed {len(report)} nodes ({faults + stopped} leftovers removed)")
    else:
        print(f"{where}: healed ({faults} faults undone, {stopped} processes stopped)")
    return 0
