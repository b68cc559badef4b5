"""The nemesis catalog: every fault `--nemesis` accepts, and the composite that runs them.

Faults of one family share an f (`start-partition` / `stop-partition` for every partition
shape), so schedule ops carry the catalog name in `value["fault"]` and the composite dispatches
on that name first and on f second (for hand-written ops without a name).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.nemesis.base import Nemesis
from dsjepsen.nemesis.common import fault_name, not_done
from dsjepsen.nemesis.partition import PartitionNemesis
from dsjepsen.nemesis.process import ProcessNemesis

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target

NEMESES: dict[str, str] = {
    "partition-majority": "cut a random minority of nodes off from the majority (iptables)",
    "partition-majorities-ring": "every node sees a majority, no two nodes the same one",
    "partition-one": "isolate one random node from all others",
    "partition-leader": "isolate the current leader (a random node when none is known)",
    "bridge": "two halves that cannot talk, joined by one node that sees both",
    "kill": "SIGKILL the system on one random node; restart it on stop",
    "kill-leader": "SIGKILL the system on the current leader; restart it on stop",
    "kill-minority": "SIGKILL the system on n//2 random nodes at once (Jepsen's minority); restart",
    "kill-majority": "SIGKILL the system on n//2+1 random nodes at once (a majority); restart",
    "kill-all": "SIGKILL the system on every node at once; restart them all on stop",
    "pause": "SIGSTOP the system on one random node; SIGCONT it on stop",
    "pause-leader": "SIGSTOP the system on the current leader; SIGCONT it on stop",
    "pause-minority": "SIGSTOP the system on n//2 random nodes (Jepsen's minority); SIGCONT on stop",
    "pause-majority": "SIGSTOP the system on n//2+1 random nodes (a majority); SIGCONT on stop",
    "pause-all": "SIGSTOP the system on every node; SIGCONT them all on stop",
}

#: catalog name -> the family that names its f (start-<family> / stop-<family>)
FAMILY: dict[str, str] = {
    "partition-majority": "partition",
    "partition-majorities-ring": "partition",
    "partition-one": "partition",
    "partition-leader": "partition",
    "bridge": "partition",
    "kill": "kill",
    "kill-leader": "kill",
    "kill-minority": "kill",
    "kill-majority": "kill",
    "kill-all": "kill",
    "pause": "pause",
    "pause-leader": "pause",
    "pause-minority": "pause",
    "pause-majority": "pause",
    "pause-all": "pause",
}

#: heal order at the end of a run: network first so that restarted nodes can rejoin
_HEAL_ORDER = ("partition", "pause", "kill")


def check_names(names: Sequence[str]) -> list[str]:
    """The fault names without "none"; ConfigError naming the unknown one and the known."""
    out = []
    for name in names:
        if name == "none":
            continue
        if name not in NEMESES:
            raise ConfigError(
                f"--nemesis: unknown fault {name!r} (known: none, {', '.join(NEMESES)})"
            )
        if name not in out:
            out.append(name)
    return out


def _make(name: str, target: Target, rng: random.Random) -> Nemesis:
    family = FAMILY[name]
    if family == "partition":
        return PartitionNemesis(name, target, rng)
    # "kill" -> one random node, "kill-majority" -> a majority, ... (process.SCOPES)
    scope = name.removeprefix(family).removeprefix("-") or "one"
    return ProcessNemesis(name, family, scope, target, rng)


class CompositeNemesis(Nemesis):
    """Several faults behind one nemesis; heals all of them."""

    name = "composite"

    def __init__(self, members: dict[str, Nemesis]):
        self.members = members
        self.fs = tuple(dict.fromkeys(f for m in members.values() for f in m.fs))

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        name = fault_name(op, "")
        member = self.members.get(name)
        if member is None and not name:
            member = next((m for m in self.members.values() if op.f in m.fs), None)
        if member is None or op.f not in member.fs:
            known = ", ".join(self.members) or "none"
            return not_done(
                op, name or op.f, f"no fault here handles f={op.f!r} {name!r} (have: {known})"
            )
        return member.invoke(cluster, op)

    def heal(self, cluster: Cluster) -> None:
        """Heal every member, all of them even when one fails; then report the failures."""
        errors = []
        ordered = sorted(
            self.members.items(), key=lambda kv: _HEAL_ORDER.index(FAMILY.get(kv[0], "kill"))
        )
        for _name, member in ordered:
            try:
                member.heal(cluster)
            except Exception as e:
                errors.append(str(e))
        if errors:
            raise HarnessError("healing failed: " + "; ".join(errors))


def build_nemesis(names: Sequence[str], target: Target, rng: random.Random) -> CompositeNemesis:
    """The composite for `--nemesis a,b,...`; each fault gets its own rng derived from `rng`
    (in the order given), so that one seed gives one schedule of cuts and victims."""
    members = {}
    for name in check_names(names):
        members[name] = _make(name, target, random.Random(rng.getrandbits(64)))
    return CompositeNemesis(members)
