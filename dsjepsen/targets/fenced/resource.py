"""FencedResource: starts the fenced resource (`server.py`) on one node, and a holder's agent
(the same program with `--relay-to`) on every node, through the nodes' Remotes, with the
machinery every packaged server uses (PackagedServerTarget: upload, the daemon start with its
marker and pidfile, logs, teardown).

It is the harness's instrument, not a system under test: a target that speaks the lock
workload starts it in its own setup (after its clean slate, which removed whatever an earlier
run left), on the cluster's first node, and the lock client sends its guarded writes there.
The resource runs outside every process and clock fault: it is not the target's process (so
no kill or pause reaches it), and it runs on the node's real clock (no faketime), because what
it records, the order writes arrive in, is the ground truth the checkers compare holders with.
The agents are the holders' side: a lock client bound to a node sends its guarded writes
through that node's agent, and the target pauses and resumes a node's agent with its own
server (`pause_agent`), so that a pause fault pauses the holders of that node as it would
pause an application sharing the machine (a write sent meanwhile lands after the pause).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster.daemon import (
    clear_leftovers,
    signal_daemon,
    start_daemon,
    stop_daemon,
    wait_for_port,
)
from dsjepsen.errors import HarnessError
from dsjepsen.targets.base import Client
from dsjepsen.targets.http_server import PackagedServerTarget

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node

DEFAULT_PORT = 7080
#: where each node's agent listens
AGENT_PORT = 7081


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
        agent_port: int = AGENT_PORT,
        client_timeout: float = 2.0,
        setup_timeout: float = 30.0,
        python: str = "python3",
    ) -> None:
        super().__init__((), client_timeout, port, setup_timeout, python)
        self.fencing = fencing
        self.agent_port = agent_port
        self.node_name: str | None = None

    def where(self, cluster: Cluster) -> Node:
        """The node it runs on: the cluster's first."""
        return cluster.nodes[0]

    def address(self, cluster: Cluster) -> tuple[str, int]:
        return self.where(cluster).address, self.port

    def agent(self, cluster: Cluster, node: str) -> tuple[str, int]:
        """Where the holders bound to `node` send their writes: that node's agent."""
        return cluster.node(node).address, self.agent_port

    def agent_paths(self, node: Node) -> tuple[str, str, str]:
        """(pidfile, logfile, data directory) of the node's agent."""
        home = self.home(node)
        return f"{home}/agent.pid", f"{home}/agent.log", f"{home}/agent"

    def agent_argv(self, cluster: Cluster, node: Node) -> list[str]:
        host, port = self.address(cluster)
        return [
            *self.server_command(cluster),
            "--id",
            node.name,
            "--listen",
            f"0.0.0.0:{self.agent_port}",
            "--data-dir",
            self.agent_paths(node)[2],
            "--verbose",
            "--relay-to",
            f"{host}:{port}",
        ]

    def pause_agent(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.agent_paths(cluster.node(node))[0], "STOP")

    def resume_agent(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.agent_paths(cluster.node(node))[0], "CONT")

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
        """Only its own files and processes: it starts inside a target's setup, after the
        target's clean slate, and must not stop the target's servers."""

        def clear(node: Node) -> dict[str, Any]:
            pid, log, data = self.agent_paths(node)
            return clear_leftovers(
                cluster.remote(node.name),
                self.home(node),
                pidfiles=[self.pid_file(node), pid],
                remove=[self.data_dir(node), data],
                rotate=[self.log_file(node), log],
            )

        found = self.each(cluster, clear)
        self.leftovers = [got for got in found.values() if got["processes"]]
        return self.leftovers

    def setup(self, cluster: Cluster) -> None:
        self.upload(cluster)
        node = self.where(cluster)
        remote = cluster.remote(node.name)
        remote.run(["mkdir", "-p", self.data_dir(node)], timeout=30.0)
        self.launch(cluster, node)
        wait_for_port(node.address, self.port, timeout=self.setup_timeout)
        self.each(cluster, lambda n: self._start_agent(cluster, n))
        for n in cluster.nodes:
            wait_for_port(n.address, self.agent_port, timeout=self.setup_timeout)
        self.node_name = node.name

    def _start_agent(self, cluster: Cluster, node: Node) -> None:
        pid, log, data = self.agent_paths(node)
        remote = cluster.remote(node.name)
        remote.run(["mkdir", "-p", data], timeout=30.0)
        start_daemon(
            remote,
            self.agent_argv(cluster, node),
            pidfile=pid,
            logfile=log,
            cwd=self.cwd(cluster, node),
        )

    def teardown(self, cluster: Cluster) -> None:
        def one(node: Node) -> None:
            remote = cluster.remote(node.name)
            pid, _log, data = self.agent_paths(node)
            remote.run(["rm", "-rf", "--", self.data_dir(node), data], timeout=60.0)
            stop_daemon(remote, pid)
            stop_daemon(remote, self.pid_file(node))

        self.each(cluster, one)

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        n = cluster.node(node)
        logs = [self.agent_paths(n)[1]]
        return [self.log_file(n), *logs] if n.name == self.where(cluster).name else logs

    def process_nodes(self, cluster: Cluster) -> list[str]:
        return [self.where(cluster).name]

    def client(self, cluster: Cluster, node: str) -> Client:
        raise HarnessError("the fenced resource has no client of its own: lock clients write to it")


class FencedLockTarget:
    """What a target whose clients speak the lock workload adds to its ProcessTarget base
    (mixed in first: `class RaftKvTarget(FencedLockTarget, PackagedServerTarget)`): the
    resource and the agents for a lock run (told by `expect_ops`), started by the target's
    setup through `start_resource`, paused and resumed with the target's own process on a
    node, torn down and logged with it. For any other workload it changes nothing."""

    resource: FencedResource | None = None
    client_timeout: float = 2.0

    def expect_ops(self, fs: frozenset[str]) -> None:
        if "acquire" in fs:
            self.resource = FencedResource(
                False,
                client_timeout=self.client_timeout,
                python=getattr(self, "python", "python3"),
            )
        super().expect_ops(fs)  # type: ignore[misc]

    def start_resource(self, cluster: Cluster) -> None:
        """The last step of the target's setup (after its own clean slate and start)."""
        if self.resource is not None:
            self.resource.setup(cluster)

    def lock_routes(self, cluster: Cluster, node: str) -> tuple[tuple[str, int], tuple[str, int]]:
        """(where a client bound to `node` sends its writes: that node's agent, the resource)."""
        assert self.resource is not None
        return self.resource.agent(cluster, node), self.resource.address(cluster)

    def pause(self, cluster: Cluster, node: str) -> None:
        super().pause(cluster, node)  # type: ignore[misc]
        if self.resource is not None:  # the node's lock holders pause with it
            self.resource.pause_agent(cluster, node)

    def resume(self, cluster: Cluster, node: str) -> None:
        super().resume(cluster, node)  # type: ignore[misc]
        if self.resource is not None:
            self.resource.resume_agent(cluster, node)

    def teardown(self, cluster: Cluster) -> None:
        if self.resource is not None:
            self.resource.teardown(cluster)
        super().teardown(cluster)  # type: ignore[misc]

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        logs: list[str] = super().log_files(cluster, node)  # type: ignore[misc]
        if self.resource is not None:
            logs += self.resource.log_files(cluster, node)
        return logs
