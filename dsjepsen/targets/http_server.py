"""HttpServerTarget: what every target that runs one HTTP-contract server per node shares.

raft-kv and http-kv differ only in how a node's server is installed and what its command line
is; where its files live, how it is started, signalled, wiped and observed (`GET /status`), and
the client (docs/http-kv-contract.md) are the same, so they are written once here.
"""

from __future__ import annotations

import http.client
import json
import shlex
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster.daemon import daemon_pid, signal_daemon, start_daemon, stop_daemon
from dsjepsen.errors import HarnessError
from dsjepsen.targets.base import Client, Target
from dsjepsen.targets.raft_kv.client import HttpKvClient

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node


class HttpServerTarget(Target):
    """One server process per node, under `<workdir>/<name>/` with data/, server.log and
    server.pid. Subclasses set `port` and `client_timeout` and provide `argv` and `setup`."""

    port: int
    client_timeout: float
    elects_leader = True

    # -- paths on a node ----------------------------------------------------------------------

    def home(self, node: Node) -> str:
        return f"{node.workdir.rstrip('/')}/{self.name}"

    def data_dir(self, node: Node) -> str:
        return f"{self.home(node)}/data"

    def log_file(self, node: Node) -> str:
        return f"{self.home(node)}/server.log"

    def pid_file(self, node: Node) -> str:
        return f"{self.home(node)}/server.pid"

    def members(self, nodes: list[Node]) -> str:
        """Nodes as `name=address:port,...`, the peer list servers are given."""
        return ",".join(f"{n.name}={n.address}:{self.port}" for n in nodes)

    # -- process control ----------------------------------------------------------------------

    @abstractmethod
    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        """The server command line for one node (also what a user can run by hand)."""

    def cwd(self, cluster: Cluster, node: Node) -> str:
        """Where the server runs."""
        return self.home(node)

    def start(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        # the data directory may have been wiped since setup
        cluster.remote(node).run(["mkdir", "-p", self.data_dir(n)], timeout=30.0)
        start_daemon(
            cluster.remote(node),
            self.argv(cluster, n),
            pidfile=self.pid_file(n),
            logfile=self.log_file(n),
            cwd=self.cwd(cluster, n),
        )

    def kill(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        signal_daemon(cluster.remote(node), self.pid_file(n), "KILL")
        # Wait until it is really gone, so that a restart right after cannot find it alive.
        stop_daemon(cluster.remote(node), self.pid_file(n), grace=0.1)

    def pause(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.pid_file(cluster.node(node)), "STOP")

    def resume(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.pid_file(cluster.node(node)), "CONT")

    def wipe(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        cluster.remote(node).run(["rm", "-rf", self.data_dir(n)], timeout=30.0)

    def teardown(self, cluster: Cluster) -> None:
        errors = []
        for node in cluster.nodes:
            remote = cluster.remote(node.name)
            try:
                stop_daemon(remote, self.pid_file(node))
                remote.run(["rm", "-rf", self.data_dir(node)], timeout=30.0)
            except HarnessError as e:
                errors.append(str(e))
        if errors:
            raise HarnessError(f"{self.name} teardown: " + "; ".join(errors))

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        return [self.log_file(cluster.node(node))]

    def pid(self, cluster: Cluster, node: str) -> int | None:
        return daemon_pid(cluster.remote(node), self.pid_file(cluster.node(node)))

    # -- observation --------------------------------------------------------------------------

    def status(self, cluster: Cluster, node: str, timeout: float = 1.0) -> dict[str, Any] | None:
        """The node's GET /status as a dict, or None (no answer, not 200, not a JSON object)."""
        n = cluster.node(node)
        conn = http.client.HTTPConnection(n.address, self.port, timeout=timeout)
        try:
            conn.request("GET", "/status")
            resp = conn.getresponse()
            body = json.loads(resp.read() or b"null")
            return body if resp.status == 200 and isinstance(body, dict) else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            conn.close()

    def leader(self, cluster: Cluster) -> str | None:
        """The node claiming leadership of the highest term."""
        best: tuple[int, str] | None = None
        for node in cluster.names:
            st = self.status(cluster, node)
            if not st or st.get("role") != "leader":
                continue
            term = st.get("term")
            term = term if isinstance(term, int) and not isinstance(term, bool) else 0
            if best is None or term > best[0]:
                best = (term, node)
        return best[1] if best else None

    def client(self, cluster: Cluster, node: str) -> Client:
        n = cluster.node(node)
        return HttpKvClient(n.address, self.port, timeout=self.client_timeout, node=node)

    def describe(self, cluster: Cluster, node: str) -> str:
        """The exact command a user can paste to run this node's server by hand."""
        return shlex.join(self.argv(cluster, cluster.node(node)))
