"""`dsjepsen docker up|down|status`: a cluster of containers for a user who has a docker engine
but no root network namespaces. The containers are then the nodes of
`dsjepsen test --docker --nodes ...`, which `up` prints ready to paste."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from dsjepsen.cluster import docker_cluster
from dsjepsen.errors import ConfigError
from dsjepsen.options import add_renamed, warn_renamed


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "docker",
        help="make or remove a cluster of docker containers to test on",
        description="Containers of dsjepsen's node image (Debian with python3, iproute2, "
        "iptables, procps, fuse3; built from Debian's packages and cached, no registry) on a network "
        "of their own: NAME-n1..NAME-nN, for `dsjepsen test --docker --nodes ...` "
        "(with --disk-faults, ready for the disk faults too).",
        epilog="example: dsjepsen docker up 3",
    )
    sub = parser.add_subparsers(dest="docker_command", metavar="ACTION", required=True)

    def add(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help, description=help, epilog=f"example: dsjepsen docker {name}"
        )
        p.add_argument(
            "--cluster-name",
            dest="name",
            metavar="NAME",
            default=docker_cluster.DEFAULT_NAME,
            help=f"cluster name, the containers' prefix (default {docker_cluster.DEFAULT_NAME})",
        )
        add_renamed(p, "--name", "--cluster-name", "name")
        p.add_argument("--docker", dest="docker_cli", default="docker", help=argparse.SUPPRESS)
        p.set_defaults(func=func)
        return p

    p = add("up", "create N running containers on a network of their own", run_up)
    p.add_argument("--node-count", type=int, default=None, metavar="N", help="nodes (default 3)")
    # `docker up 3`, the former way: taken for one release, with a warning
    p.add_argument("count", type=int, nargs="?", default=None, help=argparse.SUPPRESS)
    p.add_argument("--image", help=f"use this image instead of building {docker_cluster.IMAGE}")
    p.add_argument(
        "--disk-faults",
        action="store_true",
        help="give the containers the fuse device and CAP_SYS_ADMIN, which the disk faults' "
        "file system needs to mount inside them (not given otherwise)",
    )
    add("down", "remove the containers (and what runs in them) and the network", run_down)
    add("status", "list the cluster's containers and their addresses", run_status)


def run_up(args: argparse.Namespace) -> int:
    if args.count is not None:
        if args.node_count is not None and args.node_count != args.count:
            raise ConfigError(f"docker up {args.count} contradicts --node-count {args.node_count}")
        warn_renamed(f"docker up {args.count}", f"docker up --node-count {args.count}")
    count = args.node_count or args.count or 3
    # the first `up` on a machine builds the node image (a minute or more): say so as it goes
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dsjepsen: %(message)s"))
    progress = logging.getLogger(docker_cluster.log.name)
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    names = docker_cluster.up(
        args.name, count, image=args.image, docker=args.docker_cli, disk_faults=args.disk_faults
    )
    addresses = docker_cluster.addresses(names, docker=args.docker_cli)
    print(
        f"docker cluster {args.name}: {len(names)} containers on {docker_cluster.network_name(args.name)}"
    )
    for c in names:
        print(f"  {c:<20} {addresses[c]}")
    print(f"use: dsjepsen test --docker --nodes {','.join(names)} ...")
    return 0


def run_down(args: argparse.Namespace) -> int:
    removed = docker_cluster.down(args.name, docker=args.docker_cli)
    if removed:
        print(f"docker cluster {args.name}: removed {', '.join(removed)}")
    else:
        print(f"docker cluster {args.name}: nothing to remove")
    return 0


def run_status(args: argparse.Namespace) -> int:
    docker_cluster.check_name(args.name)
    names = docker_cluster.running(args.name, docker=args.docker_cli)
    every = docker_cluster.containers(args.name, docker=args.docker_cli)
    if not every:
        print(f"docker cluster {args.name}: not created")
        return 1
    addresses = docker_cluster.addresses(names, docker=args.docker_cli) if names else {}
    print(f"docker cluster {args.name}: {len(names)} of {len(every)} containers running")
    for c in every:
        print(f"  {c:<20} {addresses.get(c, 'stopped')}")
    return 0
