"""FencedResource: starts the fenced resource (`server.py`) on one node, through that node's
Remote, with the machinery every packaged server uses (PackagedServerTarget: upload, the
daemon start with its marker and pidfile, logs, teardown).

It is the harness's instrument, not a system under test: a target that speaks the lock
workload starts it in its own setup (after its clean slate, which removed whatever an earlier
run left), on the cluster's first node, and the lock client sends its guarded writes there.
It runs outside every fault: it is no `process_nodes` member of the target (so no kill or
pause reaches it), and it runs on the node's real clock (no faketime), because what it
records, the order writes arrive in, is the ground truth the checkers compare holders with.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster.daemon import clear_leftovers, stop_daemon, wait_for_port
from dsjepsen.errors import HarnessError
from dsjepsen.targets.base import Client
from dsjepsen.targets.http_server import PackagedServerTarget

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node

DEFAULT_PORT = 7080


class FencedResource(PackagedServerTarget):
    """The fenced resource on one node (the cluster's first): `address` once set up."""

    package = "fenced"
    package_dir = os.path.dirname(os.path.abspath(__file__))
    harness_only = frozenset({"resource.py"})
    name = "fenced-resource"
    description = "the lock workload's fenced resource (not a target of its own)"
    BUGS: dict[str, str] = {}  # noqa: RUF012 - a class constant, never mutated

    def __init__(
        self,
        fencing: bool,
        *,
        port: int = DEFAULT_PORT,
        client_timeout: float = 2.0,
        setup_timeout: float = 30.0,
        python: str = "python3",
    ) -> None:
        super().__init__((), client_timeout, port, setup_timeout, python)
        self.fencing = fencing
        self.node_name: str | None = None

    def where(self, cluster: Cluster) -> Node:
        """The node it runs on: the cluster's first."""
        return cluster.nodes[0]

    def address(self, cluster: Cluster) -> tuple[str, int]:
        return self.where(cluster).address, self.port

    def server_flags(self) -> list[str]:
        return ["--fencing"] if self.fencing else []

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        return [
            *self.server_command(cluster),
            "--id",
            node.name,
            "--listen",
            f"0.0.0.0:{self.port}",
            "--data-dir",
            self.data_dir(node),
            "--verbose",
            *self.server_flags(),
        ]

    def clear_leftovers(self, cluster: Cluster) -> list[dict[str, Any]]:
        """Only its own files and process on its node: it starts inside a target's setup,
        after the target's clean slate, and must not stop the target's servers."""
        node = self.where(cluster)
        got = clear_leftovers(
            cluster.remote(node.name),
            self.home(node),
            pidfiles=[self.pid_file(node)],
            remove=[self.data_dir(node)],
            rotate=[self.log_file(node)],
        )
        self.leftovers = [got] if got["processes"] else []
        return self.leftovers

    def setup(self, cluster: Cluster) -> None:
        node = self.where(cluster)
        remote = cluster.remote(node.name)
        if not cluster.shares_controller_files:
            self._upload(remote, node)
        remote.run(["mkdir", "-p", self.data_dir(node)], timeout=30.0)
        self.launch(cluster, node)
        wait_for_port(node.address, self.port, timeout=self.setup_timeout)
        self.node_name = node.name

    def teardown(self, cluster: Cluster) -> None:
        node = self.where(cluster)
        stop_daemon(cluster.remote(node.name), self.pid_file(node))
        cluster.remote(node.name).run(["rm", "-rf", "--", self.data_dir(node)], timeout=60.0)

    def process_nodes(self, cluster: Cluster) -> list[str]:
        return [self.where(cluster).name]

    def client(self, cluster: Cluster, node: str) -> Client:
        raise HarnessError("the fenced resource has no client of its own: lock clients write to it")
