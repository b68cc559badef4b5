"""ProcessTarget: a system that runs as one server process per node, started from its own
command line (a database binary, a reference server), driven only through the nodes' Remotes.

Everything such a target needs besides its command line and its client is the same for all of
them, so it is written once here: where a node's files live (`home`, its data directory, log
and pidfile), a clean slate before every setup, installing and starting on every node at once,
waiting until every node serves, kill / pause / resume / start as the process faults use them,
teardown, log collection and the process id the fault records carry. A subclass says:

- `argv(cluster, node)`: the command line that starts the server on one node (required);
- `client(cluster, node)`: the Client of one worker (required, from Target);
- `install(cluster, node)`: make sure the binary is there, return its version (optional;
  `require_binary` does the usual: run `BINARY --version`, apt-get the package as root);
- `ready(cluster, node)`: whether the node serves yet (optional: default, its `port` accepts
  connections);
- its file names (`data_name`, `log_name`, `pid_name`) and `home` when the defaults
  (`<workdir>/<name>/data`, `server.log`, `server.pid`) do not suit it.

Every run starts from a clean slate: before a subclass's `setup` runs (also one it overrides),
whatever an earlier run left on the nodes (a controller killed by SIGKILL, the OOM killer or a
lost SSH session leaves its servers running, possibly paused, with their data) is stopped and
removed, on every node before any new server starts (an old server that is still up would
otherwise replicate its old state into the new ones, or answer the new run's clients itself).
`leftovers` says what was found, for test.json. docs/extending.md walks through a target.
"""

from __future__ import annotations

import functools
import logging
import re
import socket
import time
from abc import abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from dsjepsen.cluster import faultmount
from dsjepsen.cluster.daemon import (
    clear_leftovers,
    daemon_pid,
    describe_leftovers,
    signal_daemon,
    start_daemon,
    stop_daemon,
)
from dsjepsen.errors import HarnessError
from dsjepsen.targets.base import Target

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node, Remote

log = logging.getLogger("dsjepsen.target")

T = TypeVar("T")


def _clean_slate_first(setup: Callable[[Any, Cluster], None]) -> Callable[[Any, Cluster], None]:
    """Wrap a subclass's setup so that the nodes are cleared before it runs (once per setup,
    also when a subclass's setup calls its parent's)."""

    @functools.wraps(setup)
    def wrapped(self: ProcessTarget, cluster: Cluster) -> None:
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


def require_binary(
    remote: Remote,
    binary: str,
    package: str | None = None,
    version_pattern: str = r"(\d+\.\d+(?:\.\d+)?)",
) -> str:
    """Make sure `binary` runs on the node: when `binary --version` fails and a Debian
    `package` is named, install it with apt-get (as root only; otherwise one line saying
    what to install). Returns the version the binary prints (the first match of
    `version_pattern`), or "unknown"."""
    res = remote.run([binary, "--version"], timeout=30, check=False)
    if res.exit != 0 and package is not None:
        uid = remote.run(["id", "-u"], timeout=30, check=False).stdout.strip()
        if uid != "0":
            raise HarnessError(
                f"node {remote.node.name}: {binary} is not installed and we are not root "
                f"there; install it with: apt-get install {package}"
            )
        remote.run(
            ["apt-get", "install", "-y", "--no-install-recommends", package],
            timeout=900,
            env={"DEBIAN_FRONTEND": "noninteractive"},
        )
        res = remote.run([binary, "--version"], timeout=30, check=False)
    if res.exit != 0:
        raise HarnessError(
            f"node {remote.node.name}: {binary} does not run"
            + (f" even after apt-get install {package}" if package else "")
            + f": {(res.stderr or res.stdout).strip()[:200]}"
        )
    m = re.search(version_pattern, res.stdout + res.stderr)
    return m.group(1) if m else "unknown"


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether host:port accepts a TCP connection now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ProcessTarget(Target):
    """One server process per node, under `home(node)` with its data directory, log and
    pidfile. Subclasses provide `argv` and `client`; see the module docstring."""

    #: file names under home(node)
    data_name: str = "data"
    log_name: str = "server.log"
    pid_name: str = "server.pid"
    #: the port a node serves clients on: the default `ready` waits until it accepts
    port: int | None = None
    #: seconds setup waits for every node to be ready
    ready_timeout: float = 60.0
    #: set by the clock fault package before setup when the run asks for clock faults: an
    #: object whose `env(cluster, node)` gives the environment (libfaketime) a server needs
    #: so that its clock can be moved without touching the machine's (cluster/faketime.py)
    clock_control: Any = None
    #: True when the server cannot start under libfaketime (Redis: jemalloc reads the clock
    #: while libfaketime initialises, and it hangs): clock faults then preload the project's
    #: own clock shim instead (cluster/clockshim.py), which moves the clock the same way
    clock_shim: ClassVar[bool] = False
    #: set by the disk fault package before setup when the run asks for disk faults: an object
    #: whose `mount(cluster, node, path)` puts the fault file system over a data directory
    #: before the server starts and `unmount(cluster, node)` takes it away at teardown
    disk_control: Any = None
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

    # -- what a subclass says -----------------------------------------------------------------

    @abstractmethod
    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        """The server command line for one node (also what a user can run by hand)."""

    def install(self, cluster: Cluster, node: Node) -> str | None:
        """Make sure the server can run on the node (see `require_binary`); its version, or
        None when it is not known. Runs on every node at once, after the clean slate."""
        return None

    def ready(self, cluster: Cluster, node: Node) -> bool:
        """Whether the node serves clients yet (asked every 0.3 s until ready_timeout; must
        return quickly and not raise). Default: its `port` accepts connections."""
        return self.port is None or port_open(node.address, self.port)

    # -- paths on a node ----------------------------------------------------------------------

    def home(self, node: Node) -> str:
        return f"{node.workdir.rstrip('/')}/{self.name}"

    def data_dir(self, node: Node) -> str:
        return f"{self.home(node)}/{self.data_name}"

    def log_file(self, node: Node) -> str:
        return f"{self.home(node)}/{self.log_name}"

    def pid_file(self, node: Node) -> str:
        return f"{self.home(node)}/{self.pid_name}"

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

    # -- every node at once -------------------------------------------------------------------

    def each(self, cluster: Cluster, fn: Callable[[Node], T]) -> dict[str, T]:
        """fn(node) on every node at once: {node name: result}; one HarnessError naming every
        node that failed."""
        with ThreadPoolExecutor(max_workers=max(1, len(cluster.nodes))) as pool:
            futures = {n.name: pool.submit(fn, n) for n in cluster.nodes}
        errors, out = [], {}
        for name, fut in futures.items():
            try:
                out[name] = fut.result()
            except Exception as e:  # noqa: BLE001 - every node's error is told
                errors.append(str(e) if name in str(e) else f"node {name}: {e}")
        if errors:
            raise HarnessError(f"{self.name}: " + "; ".join(errors))
        return out

    # -- clean slate --------------------------------------------------------------------------

    def clear_leftovers(self, cluster: Cluster) -> list[dict[str, Any]]:
        """Stop every process an earlier run left on each node (any dsjepsen daemon under the
        node's workdir, and whatever this target's pidfile names), delete the old data and
        pidfile, and keep the old log as `<log>.previous`. Logs what it found; returns it
        (also kept in `leftovers`)."""

        def clear(node: Node) -> dict[str, Any]:
            # a fault file system a crashed run left mounted (a dead one cannot be removed)
            unmounted = faultmount.heal_for(cluster, node.name, self.home(node))
            layout = faultmount.FaultMount.beside(self.data_dir(node))
            got = clear_leftovers(
                cluster.remote(node.name),
                node.workdir,
                pidfiles=[self.pid_file(node)],
                remove=[self.data_dir(node), layout.backing, layout.state],
                rotate=[self.log_file(node)],
            )
            got["removed"] = unmounted + got["removed"]
            return got

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

    # -- lifecycle ----------------------------------------------------------------------------

    def setup(self, cluster: Cluster) -> None:
        """(After the clean slate) install on every node, start every node, wait until every
        node is ready."""
        versions = {v for v in self.each(cluster, lambda n: self.install(cluster, n)).values() if v}
        self.version = sorted(versions)[0] if versions else "unknown"
        self.each(cluster, lambda n: self.launch(cluster, n))
        self.wait_ready(cluster)

    def wait_ready(self, cluster: Cluster, timeout: float | None = None) -> None:
        """Until `ready` says so of every node; HarnessError naming the nodes that are not
        and where their logs are."""
        limit = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        pending = list(cluster.nodes)
        while pending:
            pending = [n for n in pending if not self.ready(cluster, n)]
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(n.name for n in pending)
                raise HarnessError(
                    f"{self.name} not ready within {limit:g}s on {names}; "
                    f"see {self.log_file(pending[0])} on {pending[0].name}"
                )
            time.sleep(0.3)

    def launch(self, cluster: Cluster, node: Node) -> None:
        """Start the server on one node, detached (daemon.start_daemon); returns once it was
        started, not when it serves. A running server is left as it is. Under disk faults its
        data directories are on the fault file system first."""
        if self.disk_control is not None:
            for path in self.data_dirs(cluster, node.name):
                self.disk_control.mount(cluster, node.name, path)
        start_daemon(
            cluster.remote(node.name),
            self.argv(cluster, node),
            pidfile=self.pid_file(node),
            logfile=self.log_file(node),
            cwd=self.cwd(cluster, node),
            shown=self.shown_argv(cluster, node),
            env=self.clock_control.env(cluster, node.name) if self.clock_control else None,
        )

    def start(self, cluster: Cluster, node: str) -> None:
        self.launch(cluster, cluster.node(node))

    def kill(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        signal_daemon(cluster.remote(node), self.pid_file(n), "KILL")
        # Wait until it is really gone, so that a restart right after cannot find it alive.
        stop_daemon(cluster.remote(node), self.pid_file(n), grace=0.1)

    def pause(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.pid_file(cluster.node(node)), "STOP")

    def resume(self, cluster: Cluster, node: str) -> None:
        # not running is fine: resuming is part of healing, which must be idempotent
        signal_daemon(cluster.remote(node), self.pid_file(cluster.node(node)), "CONT")

    def wipe(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        cluster.remote(node).run(["rm", "-rf", "--", self.data_dir(n)], timeout=60.0)

    def teardown(self, cluster: Cluster) -> None:
        def one(node: Node) -> None:
            remote = cluster.remote(node.name)
            stop_daemon(remote, self.pid_file(node))
            if self.disk_control is not None:  # the data is in the backing directory
                self.disk_control.unmount(cluster, node.name)
            layout = faultmount.FaultMount.beside(self.data_dir(node))
            remote.run(
                ["rm", "-rf", "--", self.data_dir(node), layout.backing, layout.state],
                timeout=60.0,
            )

        self.each(cluster, one)

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        logs = [self.log_file(cluster.node(node))]
        if self.disk_control is not None:  # what the fault file system did and saw
            logs += self.disk_control.log_files(node)
        return logs

    def pid(self, cluster: Cluster, node: str) -> int | None:
        return daemon_pid(cluster.remote(node), self.pid_file(cluster.node(node)))

    def data_dirs(self, cluster: Cluster, node: str) -> list[str]:
        return [self.data_dir(cluster.node(node))]
