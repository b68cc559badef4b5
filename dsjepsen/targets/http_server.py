"""HttpServerTarget: what every target that runs one HTTP-contract server per node shares.

raft-kv and http-kv differ only in how a node's server is installed and what its command line
is; the process lifecycle is ProcessTarget's (targets/process.py: paths, clean slate, start,
kill, pause, resume, wipe, teardown, logs), and what the HTTP contract adds is written once
here: observing a node (`GET /status`), naming the leader, and the client
(docs/http-kv-contract.md).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shlex
import sys
from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.targets.base import Client
from dsjepsen.targets.contract_client import ContractClient
from dsjepsen.targets.process import ProcessTarget

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node, Remote

log = logging.getLogger("dsjepsen.target")

#: dsjepsen/targets, where the modules the packaged servers share live
TARGETS_DIR = os.path.dirname(os.path.abspath(__file__))


class HttpServerTarget(ProcessTarget):
    """One HTTP-contract server per node, under `<workdir>/<name>/` with data/, server.log
    and server.pid. Subclasses set `port` and `client_timeout` and provide `argv` and `setup`;
    their `setup` runs on nodes already cleared of earlier runs (see `clear_leftovers`)."""

    port: int
    client_timeout: float
    elects_leader = True

    def members(self, nodes: list[Node]) -> str:
        """Nodes as `name=address:port,...`, the peer list servers are given."""
        return ",".join(f"{n.name}={n.address}:{self.port}" for n in nodes)

    def start(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        # the data directory may have been wiped since setup
        cluster.remote(node).run(["mkdir", "-p", self.data_dir(n)], timeout=30.0)
        self.launch(cluster, n)

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
        return ContractClient(n.address, self.port, timeout=self.client_timeout, node=node)

    def describe(self, cluster: Cluster, node: str) -> str:
        """The exact command a user can paste to run this node's server by hand."""
        return shlex.join(self.shown_argv(cluster, cluster.node(node)))


class PackagedServerTarget(HttpServerTarget):
    """A server that is one of dsjepsen's own standard-library-only packages (raft-kv,
    crdt-kv): run from the installed package where the nodes share the controller's files,
    and uploaded to `<home>/code/<package>` and run with the node's own python3 elsewhere.

    Subclasses set `package` (the directory name under dsjepsen/targets), `package_dir`,
    `harness_only` (modules that import dsjepsen and so stay on the controller), `BUGS` (the
    server's bug switches) and, if the package imports any, `shared`: modules of
    dsjepsen/targets the servers share, uploaded beside the package as `<home>/code/<name>.py`
    (serverkit's docstring says how a package imports them in both layouts).
    """

    package: str
    package_dir: str
    harness_only: frozenset[str] = frozenset({"target.py"})
    shared: tuple[str, ...] = ("serverkit",)
    BUGS: dict[str, str]
    #: the interpreter on ssh / docker nodes
    python: str = "python3"

    def __init__(
        self,
        bugs: Sequence[str],
        client_timeout: float,
        port: int,
        setup_timeout: float,
        python: str,
    ):
        """What every packaged server is configured with, in the order of the subclasses' own
        parameters; a subclass sets its own tunables after this."""
        self.bugs = self.known_bugs(bugs, tuple(self.BUGS))
        super().__init__(bugs=self.bugs)
        self.client_timeout = client_timeout
        self.port = port
        self.setup_timeout = setup_timeout
        self.python = python

    def code_dir(self, node: Node) -> str:
        return f"{self.home(node)}/code"

    def known_bugs(self, bugs: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
        """The bug switches asked for, each once; ConfigError for one the server lacks (the
        CLI's option checks this too, but the class is also built from Python)."""
        unknown = [b for b in bugs if b not in known]
        if unknown:
            raise ConfigError(
                f"--bug: unknown {self.name} bug {unknown[0]!r} (known: {', '.join(known)})"
            )
        return tuple(dict.fromkeys(bugs))

    def server_command(self, cluster: Cluster) -> list[str]:
        """`python -m ...server`, from the installed package or from the uploaded copy."""
        if cluster.shares_controller_files:
            return [sys.executable, "-m", f"dsjepsen.targets.{self.package}.server"]
        return [self.python, "-m", f"{self.package}.server"]

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        """The server command line for one node (also what a user runs by hand): the flags
        every packaged server takes, then the subclass's `server_flags`, then one --bug per
        bug switched on."""
        argv = [
            *self.server_command(cluster),
            "--id",
            node.name,
            "--listen",
            f"0.0.0.0:{self.port}",
            *self.address_flags(node),
            "--peers",
            self.members([n for n in cluster.nodes if n.name != node.name]),
            "--data-dir",
            self.data_dir(node),
            # debug logging: a line per client request served (the report's log windows)
            "--verbose",
            *self.server_flags(),
        ]
        for bug in self.bugs:
            argv += ["--bug", bug]
        return argv

    def address_flags(self, node: Node) -> list[str]:
        """Flags telling a server the address its peers reach it at, for a server that must
        announce it (raft-kv names the leader to clients); none by default."""
        return []

    @abstractmethod
    def server_flags(self) -> list[str]:
        """The subclass's own tunables as command-line flags (the same on every node)."""

    def start_everywhere(self, cluster: Cluster) -> None:
        """Upload the server where the nodes need a copy, then start it on every node: the
        first half of a setup, which then waits until the servers are ready."""
        self.upload(cluster)
        for node in cluster.nodes:
            self.start(cluster, node.name)

    def cwd(self, cluster: Cluster, node: Node) -> str:
        # on ssh / docker nodes `python -m <package>.server` imports the uploaded copy
        return self.home(node) if cluster.shares_controller_files else self.code_dir(node)

    def upload(self, cluster: Cluster) -> None:
        """Copy the package to every node that does not share the controller's files."""
        if cluster.shares_controller_files:
            return
        for node in cluster.nodes:
            self._upload(cluster.remote(node.name), node)

    def _upload(self, remote: Remote, node: Node) -> None:
        res = remote.run(
            [self.python, "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 3)"],
            timeout=30.0,
            check=False,
        )
        if res.exit != 0:
            raise HarnessError(
                f"node {node.name}: {self.name} needs {self.python} >= 3.11 on the node "
                f"(exit {res.exit}: {res.stderr.strip()[:200]})"
            )
        # the whole code directory is replaced, so that nothing of an older upload (a module
        # since renamed or removed) can be imported in place of the current one
        code = self.code_dir(node)
        dest = f"{code}/{self.package}"
        remote.run(["rm", "-rf", code], timeout=30.0)
        remote.run(["mkdir", "-p", dest], timeout=30.0)
        for name in sorted(os.listdir(self.package_dir)):
            if name.endswith(".py") and name not in self.harness_only:
                remote.put(os.path.join(self.package_dir, name), f"{dest}/{name}", timeout=60.0)
        for module in self.shared:
            remote.put(
                os.path.join(TARGETS_DIR, f"{module}.py"), f"{code}/{module}.py", timeout=60.0
            )
