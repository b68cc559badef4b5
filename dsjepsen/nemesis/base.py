"""The Nemesis and FaultPackage contracts.

A nemesis performs one fault op and returns a completion that records what was really done
(which nodes were cut from which, which process got which signal), because the report and the
root-cause analysis are built from that record. `heal` must be idempotent and safe after a
crash of the harness, so that every run can start by healing and end by healing.

A fault package (Jepsen's nemesis packages) is one file: the fault names it offers with a
sentence each, the family that names its ops (`start-<family>` / `stop-<family>`), its heal
order, how to build the nemesis for a run, and how a completion shows that the fault took
effect. It is registered in the `dsjepsen.nemeses` entry-point group (docs/extending.md).
"""

from __future__ import annotations

import random
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.faults import FaultLook
from dsjepsen.nemesis.common import fault_name, not_done

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op
    from dsjepsen.options import Option
    from dsjepsen.targets.base import Target


@dataclass(frozen=True)
class NodeFacts:
    """What a fault package may know of the nodes when it judges a fault (`unsupported`).

    Twice per run: when the options are validated, before any node is reached, the facts are
    what the node options say (`cluster.nodes.own_kernels`); when the nemesis is built, after
    the nodes are open and before setup, `cluster` is set and `own_kernels` is what the nodes
    answered (kernel boot ids). Facts rather than the kind of cluster, so that no package
    branches on backends. The default is the safe one: nodes on this machine's kernel (the
    local namespace cluster), whose clock and kernel modules are the controller's.
    """

    #: every node runs a kernel of its own (real machines over SSH), so its clock can be set
    #: and its kernel modules are its own; False when any node shares this machine's kernel
    own_kernels: bool = False
    #: the opened cluster, when the nemesis is being built (None at option validation)
    cluster: Cluster | None = None


#: the nodes as assumed when nothing else is known: this machine's kernel
ON_THIS_KERNEL = NodeFacts()


class Nemesis(ABC):
    name: str = "nemesis"
    #: the f values this nemesis answers, e.g. ("start-partition", "stop-partition")
    fs: tuple[str, ...] = ()

    @abstractmethod
    def invoke(self, cluster: Cluster, op: Op) -> Op:
        """Perform the fault op and return its completion describing what was done."""

    @abstractmethod
    def heal(self, cluster: Cluster) -> None:
        """Undo every fault of this kind on every node. Idempotent."""


class StartStopNemesis(Nemesis):
    """A nemesis whose faults are a start op and a stop op (`fs[0]`, `fs[1]`), one op at a
    time: `invoke` holds the nemesis's lock (a subclass's heal takes the same `_lock`) and
    hands the op to `_start` or `_stop` with the fault name it asks for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        fault = fault_name(op, self.name)
        with self._lock:
            if op.f == self.fs[0]:
                return self._start(cluster, op, fault)
            if op.f == self.fs[1]:
                return self._stop(cluster, op, fault)
            return not_done(op, fault, f"{self.name} does not handle f={op.f!r}")

    @abstractmethod
    def _start(self, cluster: Cluster, op: Op, fault: str) -> Op: ...

    @abstractmethod
    def _stop(self, cluster: Cluster, op: Op, fault: str) -> Op: ...


class FaultPackage(ABC):
    """A family of faults that share one nemesis implementation."""

    #: names the ops: start-<family> / stop-<family>
    family: ClassVar[str] = "fault"
    #: fault name -> one sentence (what `--nemesis NAME` does)
    faults: ClassVar[dict[str, str]] = {}
    #: lower heals first at the end of a run (network before processes, so restarted nodes
    #: can rejoin)
    heal_order: ClassVar[int] = 50
    #: options of `dsjepsen test` this package takes
    options: ClassVar[tuple[Option, ...]] = ()
    #: how reports draw and explain this family (None: its family name, the default colour,
    #: no hypothesis of its own); recorded in each run's test.json (faults.FaultLook)
    look: ClassVar[FaultLook | None] = None

    @abstractmethod
    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        """The nemesis that performs fault `name` for this run."""

    def start_op(self, name: str) -> tuple[str, dict[str, Any]]:
        return f"start-{self.family}", {"fault": name}

    def stop_op(self, name: str) -> tuple[str, dict[str, Any]]:
        return f"stop-{self.family}", {"fault": name}

    def took_effect(self, completion: Op) -> bool:
        """Whether a start completion shows the fault really happened (vacuous-run check).

        The catalog asks only about completions of this fault's start op (`start_op`) that
        name this fault, so the package judges just what its own nemesis recorded.
        """
        return completion.type == "ok"

    def unsupported(
        self, name: str, target: Target, nodes: NodeFacts = ON_THIS_KERNEL
    ) -> str | None:
        """Why fault `name` cannot work with this target on these nodes (the run is refused
        before it starts), or None. Asked with the target class and the node options' facts
        when the options are validated, and again with the target instance and the opened
        cluster when the nemesis is built (still before setup). A package written before
        `nodes` existed may leave it out of its signature; the catalog then asks without it."""
        return None

    def min_nodes(self, name: str) -> int:
        """The fewest nodes fault `name` can do anything on (a partition needs two): a run on
        a smaller cluster is refused before it starts."""
        return 1
