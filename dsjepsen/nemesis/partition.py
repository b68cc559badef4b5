"""Network partitions: a grudge computed by shape, applied with iptables on every node.

One class serves every partition shape of the package; the shape only decides the grudge.
`stop-partition` and `heal` both remove our chain on every node, whatever is installed, so
they also clean up after a crashed run. `PartitionFaults` is the fault package that offers
the shapes to `--nemesis` (entry point `partition` in the `dsjepsen.nemeses` group).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.faults import FaultLook
from dsjepsen.nemesis import grudge as g
from dsjepsen.nemesis import netfilter
from dsjepsen.nemesis.base import FaultPackage, Nemesis, StartStopNemesis
from dsjepsen.nemesis.common import done, find_leader, maybe_done, not_done

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target

START, STOP = "start-partition", "stop-partition"


def _halves(nodes: list[str], rng: random.Random, _t: Any, _c: Any) -> tuple[g.Grudge, dict]:
    grudge = g.random_halves(nodes, rng)
    return grudge, {"components": g.components(grudge, nodes)}


def _one(nodes: list[str], rng: random.Random, _t: Any, _c: Any) -> tuple[g.Grudge, dict]:
    isolated = rng.choice(nodes)
    return g.isolate(nodes, isolated), {"isolated": isolated}


def _ring(nodes: list[str], rng: random.Random, _t: Any, _c: Any) -> tuple[g.Grudge, dict]:
    grudge = g.majorities_ring(nodes, rng)
    seen = g.visible(grudge, nodes)
    return grudge, {"sees": {n: [m for m in nodes if m in seen[n]] for n in nodes}}


def _bridge(nodes: list[str], rng: random.Random, _t: Any, _c: Any) -> tuple[g.Grudge, dict]:
    grudge = g.bridge(nodes, rng)
    return grudge, {"bridge": next(n for n in nodes if not grudge[n])}


def _leader(
    nodes: list[str], rng: random.Random, target: Target, cluster: Cluster
) -> tuple[g.Grudge, dict]:
    leader, reason = find_leader(target, cluster)
    if leader is None:
        node = rng.choice(nodes)
        return g.isolate(nodes, node), {
            "isolated": node,
            "leader": None,
            "fallback": f"{reason}; isolated random node {node} instead",
        }
    return g.isolate(nodes, leader), {"isolated": leader, "leader": leader}


Shape = Callable[[list[str], random.Random, Any, Any], tuple[g.Grudge, dict]]

SHAPES: dict[str, Shape] = {
    "partition-majority": _halves,
    "partition-majorities-ring": _ring,
    "partition-one": _one,
    "partition-leader": _leader,
    "bridge": _bridge,
}


class PartitionNemesis(StartStopNemesis):
    fs = (START, STOP)

    def __init__(self, name: str, target: Target, rng: random.Random):
        if name not in SHAPES:
            raise ValueError(f"unknown partition shape {name!r}")
        self.name = name
        self.target = target
        self.rng = rng
        super().__init__()  # the lock invoke and heal share

    def _start(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = cluster.names
        try:
            grudge, extra = SHAPES[self.name](nodes, self.rng, self.target, cluster)
        except ValueError as e:  # too few nodes for this shape
            return not_done(op, fault, str(e))
        cut = [n for n in nodes if grudge[n]]
        description = g.describe(grudge, nodes)
        if extra.get("leader"):
            # say whom the cut isolated as well as where: the RCA and the log read it
            description = f"{description} (the leader, {extra['leader']})"
        if extra.get("fallback"):
            description = f"{description} ({extra['fallback']})"
        try:
            netfilter.apply_grudge(cluster, grudge)
        except Exception as e:
            return maybe_done(op, fault, cut, description, str(e), grudge=grudge, **extra)
        return done(op, fault, cut, description, grudge=grudge, **extra)

    def _stop(self, cluster: Cluster, op: Op, fault: str) -> Op:
        try:
            healed = netfilter.heal_cluster(cluster)
        except Exception as e:
            return maybe_done(op, fault, cluster.names, "heal the network", str(e))
        if healed:
            description = f"healed the network: removed {netfilter.CHAIN} on {', '.join(healed)}"
        else:
            description = "healed the network: no partition rules were installed"
        return done(op, fault, healed, description)

    def heal(self, cluster: Cluster) -> None:
        with self._lock:
            netfilter.heal_cluster(cluster)


class PartitionFaults(FaultPackage):
    """Every partition shape, one `PartitionNemesis` per requested shape.

    Network faults heal first at the end of a run: a node restarted after a kill, or resumed
    after a pause, can only rejoin its cluster once it can reach the others again.
    """

    family: ClassVar[str] = "partition"
    look: ClassVar[FaultLook] = FaultLook(
        label="partition",
        colour="#c9372c",
        partition=True,
        suggests=(
            "The node answered from its local state without confirming it still belonged to "
            "a quorum: reads that bypass consensus (no read index, no leader lease check, or "
            "serving from a follower) return values that a newer majority has already "
            "overwritten."
        ),
        rank=10,
    )
    heal_order: ClassVar[int] = 10
    faults: ClassVar[dict[str, str]] = {
        "partition-majority": "cut a random minority of nodes off from the majority (iptables)",
        "partition-majorities-ring": "every node sees a majority, no two nodes the same one",
        "partition-one": "isolate one random node from all others",
        "partition-leader": "isolate the current leader (a random node when none is known)",
        "bridge": "two halves that cannot talk, joined by one node that sees both",
    }

    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        return PartitionNemesis(name, target, rng)

    def min_nodes(self, name: str) -> int:
        return 2  # nobody to cut off from on a single node

    def took_effect(self, completion: Op) -> bool:
        """Only an `ok` start whose grudge cuts at least one pair: a record of rules that
        drop nothing (possible only for a degenerate shape) tested nothing."""
        value = completion.value
        if completion.type != "ok" or not isinstance(value, dict):
            return False
        grudge = value.get("grudge")
        return isinstance(grudge, dict) and any(grudge.values())
