"""An example node backend, in one file: nodes that are network namespaces of this machine,
named by `--nodes` and reached with `nsenter(1)`.

What a backend is: how to open a node as a Remote (`run` with a timeout, `put`, `get`), and
the facts of what its nodes share with the controller (here everything but the network: this
kernel, these files, this process table). The faults and targets ask those facts; nothing in
dsjepsen names this backend. Registered by one line in `dsjepsen.backends`; then

    dsjepsen cluster up --node-count 3 --cluster-name demo
    dsjepsen test --backend nsenter --nodes dsj-demo-n1,dsj-demo-n2,dsj-demo-n3 ...

tests the namespaces of the local cluster `demo` as nodes listed by hand (any namespace with
an address the controller can reach would do).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from dsjepsen.cluster.backend import Backend, NodeSettings, NodeSpec
from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteConfigError,
    RemoteError,
    Result,
    env_assignments,
)
from dsjepsen.cluster.control.local import copy_path, run_argv

NETNS_DIR = "/run/netns"


class NsenterRemote(Remote):
    """Commands in one named network namespace: `nsenter --net=/run/netns/NS -- env ...`
    (argv as a list, no shell in between); files are this machine's, so put and get copy."""

    def __init__(self, node: Node, netns: str) -> None:
        self.node = node
        self.netns = netns

    def run(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        if not argv:
            raise RemoteError(self.node.name, [], "empty command")
        inner = ["env", *(["-C", cwd] if cwd else []), *env_assignments(env), *argv]
        wrapped = ["nsenter", f"--net={NETNS_DIR}/{self.netns}", "--", *inner]
        # run_argv: its own process group, killed whole on timeout; errors name the node
        return run_argv(self.node.name, wrapped, list(argv), timeout, check, input)

    def put(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._copy(local, remote, "put")

    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._copy(remote, local, "get")

    def _copy(self, src: str, dst: str, verb: str) -> None:
        try:
            copy_path(src, dst)
        except OSError as e:
            raise RemoteError(self.node.name, [verb, src, dst], f"copy failed ({e})") from None


class NsenterBackend(Backend):
    """Network namespaces of this machine, one per node, named by --nodes."""

    name = "nsenter"
    description = "named network namespaces of this machine, through nsenter (example plugin)"
    shares_kernel = True
    shares_files = True
    entry = "network namespace name"
    metavar = "NETNS"

    def node_spec(self, name: str, host: str, settings: NodeSettings, workdir: str) -> NodeSpec:
        # host is the namespace; a name that is no namespace is refused before anything runs
        if not os.path.exists(f"{NETNS_DIR}/{host}"):
            settings.invalid("host", f"no network namespace {host!r} in {NETNS_DIR}")
        return NodeSpec(name, self.name, host, workdir)

    def open_node(self, spec: NodeSpec) -> Remote:
        probe = NsenterRemote(Node(spec.name, "", spec.workdir), spec.host)
        out = probe.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], timeout=10).stdout
        addresses = [line.split()[3].split("/")[0] for line in out.splitlines() if " inet " in line]
        if not addresses:
            raise RemoteConfigError(spec.name, "", f"namespace {spec.host} has no IPv4 address")
        return NsenterRemote(Node(spec.name, addresses[0], spec.workdir), spec.host)

    @classmethod
    def machine_problems(cls) -> list[tuple[str, str | None, str]]:
        found = shutil.which("nsenter")
        return [("nsenter", None if found else "not installed (util-linux)", found or "")]
