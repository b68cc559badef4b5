"""HttpServerTarget: what every target that runs one HTTP-contract server per node shares.

raft-kv and http-kv differ only in how a node's server is installed and what its command line
is; where its files live, how it is started, signalled, wiped and observed (`GET /status`), and
the client (docs/http-kv-contract.md) are the same, so they are written once here.

Every run starts from a clean slate: before a subclass's `setup` runs, whatever an earlier run
left on the nodes (a controller killed by SIGKILL, the OOM killer or a lost SSH session leaves
its servers running, possibly paused, with their data) is stopped and removed, on every node
before any new server starts (an old server that is still up would otherwise replicate its old
log into the new ones, or answer the new run's clients itself). `leftovers` says what was found,
for test.json.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import os
import shlex
import sys
from abc import abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster.daemon import (
    clear_leftovers,
    daemon_pid,
    describe_leftovers,
    signal_daemon,
    start_daemon,
    stop_daemon,
)
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.targets.base import Client, Target
from dsjepsen.targets.contract_client import ContractClient

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node, Remote

log = logging.getLogger("dsjepsen.target")

#: dsjepsen/targets, where the modules the packaged servers share live
TARGETS_DIR = os.path.dirname(os.path.abspath(__file__))


def _clean_slate_first(setup: Callable[[Any, Cluster], None]) -> Callable[[Any, Cluster], None]:
    """Wrap a subclass's setup so that the nodes are cleared before it runs (once per setup,
    also when a subclass's setup calls its parent's)."""

    @functools.wraps(setup)
    def wrapped(self: HttpServerTarget, cluster: Cluster) -> None:
        if self._in_setup:
            return setup(self, cluster)
        self._in_setup = True
        try:
            self.clear_leftovers(cluster)
            return setup(self, cluster)
        finally:
            self._in_setup = False

    wrapped._clean_slate = True  # type: ignore[attr-defined]
    return wrapped


class HttpServerTarget(Target):
    """One server process per node, under `<workdir>/<name>/` with data/, server.log and
    server.pid. Subclasses set `port` and `client_timeout` and provide `argv` and `setup`;
    their `setup` runs on nodes already cleared of earlier runs (see `clear_leftovers`)."""

    port: int
    client_timeout: float
    elects_leader = True
    #: set by the clock fault package before setup when the run asks for clock faults: an
    #: object whose `env(cluster, node)` gives the environment (libfaketime) a server needs
    #: so that its clock can be moved without touching the machine's (cluster/faketime.py)
    clock_control: Any = None
    #: what the last setup found and removed, one entry per node that had anything
    #: ({"node", "processes": [{"pid", "state", "command"}], "removed": [paths]})
    leftovers: list[dict[str, Any]] = []  # noqa: RUF012 - replaced per instance, never mutated
    _in_setup: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Done here rather than left to each subclass so that no target, built-in or plugin,
        # can forget it: a forgotten clean slate is a false verdict, not an error.
        super().__init_subclass__(**kwargs)
        setup = cls.__dict__.get("setup")
        if setup is not None and not getattr(setup, "_clean_slate", False):
            cls.setup = _clean_slate_first(setup)  # type: ignore[method-assign]

    # -- clean slate --------------------------------------------------------------------------

    def clear_leftovers(self, cluster: Cluster) -> list[dict[str, Any]]:
        """Stop every process an earlier run left on each node (any dsjepsen daemon under the
        node's workdir, and whatever this target's pidfile names), delete the old data and
        pidfile, and keep the old log as server.log.previous. Logs what it found; returns it
        (also kept in `leftovers`)."""

        def clear(node: Node) -> dict[str, Any]:
            return clear_leftovers(
                cluster.remote(node.name),
                node.workdir,
                pidfiles=[self.pid_file(node)],
                remove=[self.data_dir(node)],
                rotate=[self.log_file(node)],
            )

        with ThreadPoolExecutor(max_workers=max(1, len(cluster.nodes))) as pool:
            answers = list(pool.map(clear, cluster.nodes))  # the first error is raised here
        found: list[dict[str, Any]] = []
        for node, got in zip(cluster.nodes, answers, strict=True):
            # a log alone is what every finished run leaves (its copy is in that run's store)
            for proc in got["processes"]:
                proc["command"] = self.redact(proc["command"])
            if got["processes"] or [p for p in got["removed"] if p != self.log_file(node)]:
                found.append(got)
                log.warning("%s: %s", self.name, describe_leftovers(got))
            elif got["removed"]:
                log.info("%s: kept the previous server log of %s", self.name, node.name)
        if not found:
            log.info("%s: no leftovers of earlier runs on %s", self.name, ", ".join(cluster.names))
        self.leftovers = found
        return found

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

    def shown_argv(self, cluster: Cluster, node: Node) -> list[str]:
        """argv as it may be shown in errors, logs and the report: subclasses whose command
        line holds secrets return it with the secrets masked."""
        return self.argv(cluster, node)

    def redact(self, text: str) -> str:
        """text as it may be logged or stored: subclasses mask their secrets in it."""
        return text

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
            shown=self.shown_argv(cluster, n),
            env=self.clock_control.env(cluster, node) if self.clock_control else None,
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
