"""The Target and Client contracts.

A Target knows how to run one system on a node through its Remote; a Client turns one
invocation into one completion with Jepsen's honesty rule: a definite error is `fail`, anything
that may have happened (timeout, dropped connection after sending) is `info`, never a guess.

A target says which op vocabulary its clients speak (`speaks`: the f values they implement), so
a workload runs on every target whose clients speak all the fs it needs, and an unsupported pair
is refused before a run. Its options are declared as `Option`s and arrive as keywords of the
constructor ('-' turned into '_'). To add one: subclass Target in one file and register it in
the `dsjepsen.targets` entry-point group (docs/extending.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.cluster.localnet import DEFAULT_COST, NodeCost

if TYPE_CHECKING:
    from pathlib import Path

    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import History, Op
    from dsjepsen.options import Option


class Client(ABC):
    """Talks to the system on behalf of one worker, bound to one node."""

    @abstractmethod
    def invoke(self, op: Op) -> Op:
        """Perform op (type invoke) and return its completion (ok / fail / info)."""

    def close(self) -> None:  # noqa: B027 - stateless clients need nothing
        """Release connections."""


class Target(ABC):
    """One system under test, driven only through the cluster's Remotes."""

    name: ClassVar[str] = "target"
    description: ClassVar[str] = ""
    #: the f values its clients implement (e.g. read, write, cas)
    speaks: ClassVar[frozenset[str]] = frozenset()
    #: the workload run when --workload is not given
    default_workload: ClassVar[str] = "register"
    #: options of `dsjepsen test` this target takes
    options: ClassVar[tuple[Option, ...]] = ()
    #: the system elects a leader that `leader()` can name: after healing, the run waits for
    #: one (up to --recovery-timeout) before its final reads
    elects_leader: ClassVar[bool] = False
    version: str = "unknown"
    #: what one node costs this machine, for the local cluster's capacity estimate
    node_cost: ClassVar[NodeCost] = DEFAULT_COST
    #: what setup found of earlier runs on the nodes and removed ({"node", "processes",
    #: "removed"}), recorded in test.json
    leftovers: list[dict[str, Any]] = []

    def __init__(self, **options: Any) -> None:
        self.values = options

    @classmethod
    def check_options(cls, **values: Any) -> None:
        """Validate option values together (keywords as the constructor takes them) before
        anything touches a node; raise ConfigError naming the option. Most targets need
        nothing beyond each option's own checks."""
        return None

    def expect_ops(self, fs: frozenset[str]) -> None:  # noqa: B027 - most targets need nothing
        """Told once, before setup, which op fs the run's workload invokes (its `needs`).

        A target whose protocol has setup messages that belong to one workload uses it: a
        Maelstrom broadcast node must have its `topology` before any client op, so the target
        sends it at setup instead of waiting to see the first broadcast op."""
        return None

    @abstractmethod
    def setup(self, cluster: Cluster) -> None:
        """Install (if needed), configure and start the system on every node; wait until it
        serves."""

    @abstractmethod
    def teardown(self, cluster: Cluster) -> None:
        """Stop the system on every node and remove its data."""

    @abstractmethod
    def start(self, cluster: Cluster, node: str) -> None: ...

    @abstractmethod
    def kill(self, cluster: Cluster, node: str) -> None: ...

    @abstractmethod
    def pause(self, cluster: Cluster, node: str) -> None: ...

    @abstractmethod
    def resume(self, cluster: Cluster, node: str) -> None: ...

    @abstractmethod
    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        """Paths on the node of log files worth collecting."""

    @abstractmethod
    def client(self, cluster: Cluster, node: str) -> Client: ...

    def leader(self, cluster: Cluster) -> str | None:
        """Name of the node that is leader now, when the system has one and it is known.

        Asked by faults aimed at the leader (`partition-leader`, `kill-leader`, ...) at any
        moment, also in the middle of other faults: a deposed leader that has not noticed yet
        may still claim to lead, so prefer the claim of the highest term; None when no node
        is known to lead (a fault then picks a random node and says so). Must return within a
        few seconds and should not raise (an exception counts as None)."""
        return None

    def ready_for_final_reads(self, cluster: Cluster) -> bool:
        """Whether the final reads may start: after the faults are healed, the run asks this
        every 0.5 s, for at most --recovery-timeout seconds, before it reads every key
        through every node. Default: a leader is known (`leader()`) when the system elects
        one, else at once. Override it for a system whose nodes need more than a leader
        before their reads are worth checking (replicas that catch up with a primary, a
        member that rejoins): a final read through a node that has not caught up would be a
        stale read the checker must report. Must return quickly and should not raise (an
        exception counts as not ready); when the timeout passes, the reads start anyway."""
        return not self.elects_leader or self.leader(cluster) is not None

    def run_results(self, run_dir: Path, history: History) -> dict[str, Any] | None:
        """Facts about the run that only the target knows (e.g. network statistics a relay
        counted), added to results.json under "target". They never make a run invalid; one
        key may keep it from being: `untrustworthy`, a sentence saying why the test's own
        ground gave way (a Maelstrom network that lost messages outside every fault), turns
        a failed verdict into unknown."""
        return None

    def process_nodes(self, cluster: Cluster) -> list[str]:
        """The nodes where the system runs a process: process faults (kill, pause) choose
        among these. Default every node; a system that runs on some of them (one database
        server, clients elsewhere) names those, so that a fault's record never says it
        killed a process on a node that has none."""
        return list(cluster.names)

    def pid(self, cluster: Cluster, node: str) -> int | None:
        """The system's process id on the node, when known: process faults record it."""
        return None

    def data_dirs(self, cluster: Cluster, node: str) -> list[str]:
        """Where on the node the system keeps what it must not lose (its log, its database):
        disk faults mount the fault file system there, before the system starts, so that a
        power failure can take back what it never fsynced. None by default: a target without
        durable state of its own has nothing a disk fault could show."""
        return []
