"""Process faults through the Target: kill (SIGKILL, restart on stop) and pause (SIGSTOP,
SIGCONT on stop), on one random node, the current leader, a random minority, a random
majority, or every node.

The Target owns how its process is signalled (pidfiles, daemon helpers), so the same nemesis
works for every system. The nemesis remembers which nodes it faulted, so that stop undoes
exactly those; `heal` of pause also CONTs every node, because after a harness crash that
memory is gone and SIGCONT to a running process is harmless.

A group is signalled in parallel, one thread per node: "kill a majority" should mean the
majority dies at about the same moment, not one node after another while the rest of the
cluster keeps acknowledging writes (that is what loses an unsynced tail on every node).

`KillFaults` and `PauseFaults` are the fault packages that offer these to `--nemesis`
(entry points `kill` and `pause` in the `dsjepsen.nemeses` group).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.errors import HarnessError
from dsjepsen.faults import FaultLook
from dsjepsen.nemesis.base import FaultPackage, Nemesis, StartStopNemesis
from dsjepsen.nemesis.common import (
    done,
    find_leader,
    maybe_done,
    not_done,
    process_nodes,
)

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target


@dataclass(frozen=True)
class Action:
    family: str  # "kill" or "pause": the f is start-<family> / stop-<family>
    signal: str  # what start sends
    undo_signal: str | None  # what stop sends (None: restart the process)
    verb: str
    undo_verb: str


ACTIONS = {
    "kill": Action("kill", "SIGKILL", None, "killed", "restarted"),
    "pause": Action("pause", "SIGSTOP", "SIGCONT", "paused", "resumed"),
}

#: which nodes a fault hits: the part of the catalog name after the family ("kill-majority"
#: -> "majority"; a bare "kill" is "one"). Jepsen's node specs (jepsen.nemesis.combined).
SCOPES = ("one", "leader", "minority", "majority", "all")


def majority(n: int) -> int:
    """More than half of n nodes (Jepsen's util/majority): ⌊n/2⌋ + 1."""
    return n // 2 + 1


def group_size(scope: str, n: int) -> int:
    """How many of n nodes a scope hits, as Jepsen's `db-nodes` counts them: one and leader
    1, minority majority(n) - 1 = ⌊n/2⌋ (exactly half when n is even, as in Jepsen and as the
    smaller side of partition-majority), majority ⌊n/2⌋ + 1, all n."""
    if n < 1:
        return 0
    sizes = {
        "one": 1,
        "leader": 1,
        "minority": majority(n) - 1,
        "majority": majority(n),
        "all": n,
    }
    return sizes[scope]


def choose(scope: str, nodes: list[str], free: list[str], rng: random.Random) -> list[str]:
    """`group_size(scope, len(nodes))` random nodes among `free` (the nodes not faulted
    already), in cluster order; ValueError saying why when there are not enough. Not for
    "leader", which asks the target instead of the rng."""
    k = group_size(scope, len(nodes))
    if k == 0:
        raise ValueError(f"a {scope} of {len(nodes)} node(s) is no node")
    if len(free) < k:
        busy = [n for n in nodes if n not in free]
        raise ValueError(
            f"{scope} needs {k} of {len(nodes)} nodes, but {', '.join(busy)} "
            f"{'is' if len(busy) == 1 else 'are'} already faulted"
        )
    picked = set(rng.sample(free, k))
    return [n for n in nodes if n in picked]


def share(k: int, n: int) -> str:
    """What k of n nodes is, said without overclaiming ("2 of 4" is half, not a minority)."""
    if k == n:
        return f"all {n} nodes"
    kind = "a majority" if 2 * k > n else "a minority" if 2 * k < n else "half"
    return f"{kind}, {k} of {n} nodes"


def on_nodes(nodes: list[str], fn: Callable[[str], Any]) -> dict[str, BaseException | None]:
    """Run fn(node) for every node at once; {node: the exception it raised, or None}."""
    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        futures = {n: pool.submit(fn, n) for n in nodes}
    return {n: f.exception() for n, f in futures.items()}


def _node_error(node: str, e: BaseException) -> str:
    return str(e) if node in str(e) else f"node {node}: {e}"


class ProcessNemesis(StartStopNemesis):
    def __init__(
        self, name: str, action: str, scope: str, target: Target, rng: random.Random
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"unknown process fault scope {scope!r} (one of {SCOPES})")
        self.name = name
        self.action = ACTIONS[action]
        self.scope = scope
        self.target = target
        self.rng = rng
        self.fs = (f"start-{action}", f"stop-{action}")
        self.faulted: list[str] = []  # nodes we signalled and have not undone yet
        super().__init__()  # the lock invoke and heal share

    def _pick(self, cluster: Cluster) -> tuple[list[str], str, dict]:
        """(victims, "", extra) or ([], why not, extra)."""
        nodes = self._nodes(cluster)
        free = [n for n in nodes if n not in self.faulted]
        if self.scope != "leader":
            try:
                return choose(self.scope, nodes, free, self.rng), "", {}
            except ValueError as e:
                return [], str(e), {}
        leader, reason = find_leader(self.target, cluster)
        if leader is None:
            return [], reason, {"leader": None}
        if leader in self.faulted:
            return [], f"leader {leader} is already {self.action.verb}", {"leader": leader}
        return [leader], "", {"leader": leader}

    def _nodes(self, cluster: Cluster) -> list[str]:
        """The nodes the target runs a process on (all, unless it says otherwise)."""
        return process_nodes(self.target, cluster)

    def _pid(self, cluster: Cluster, node: str) -> int | None:
        try:
            return self.target.pid(cluster, node)
        except Exception:  # the pid is a detail of the record, not worth failing a fault for
            return None

    def _pids(self, cluster: Cluster, nodes: list[str]) -> dict[str, int | None]:
        """{node: pid} looked up on all nodes at once (`_pid` never raises)."""
        pids: dict[str, int | None] = {}

        def look(node: str) -> None:
            pids[node] = self._pid(cluster, node)

        on_nodes(nodes, look)
        return {n: pids.get(n) for n in nodes}

    @staticmethod
    def _shown(nodes: list[str], pids: dict[str, int | None]) -> str:
        return ", ".join(f"{n} (pid {pids[n]})" if pids.get(n) is not None else n for n in nodes)

    def _signal(self, cluster: Cluster, node: str) -> None:
        if self.action.family == "kill":
            self.target.kill(cluster, node)
        else:
            self.target.pause(cluster, node)

    def _start(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes, reason, extra = self._pick(cluster)
        if not nodes:
            return not_done(op, fault, reason, **extra)
        pids = self._pids(cluster, nodes)
        data: dict[str, Any] = {"signal": self.action.signal, "pids": pids, **extra}
        if len(nodes) == 1 and self.scope in ("one", "leader"):
            data["pid"] = pids[nodes[0]]  # the one-node record, as it always was
        outcome = on_nodes(nodes, lambda n: self._signal(cluster, n))
        # every node we tried may have been hit, so stop and heal must undo all of them
        self.faulted.extend(nodes)
        errors = [_node_error(n, e) for n, e in outcome.items() if e is not None]
        if errors:
            data["signalled"] = [n for n, e in outcome.items() if e is None]
            tried = f"send {self.action.signal} to {', '.join(nodes)}"
            return maybe_done(op, fault, nodes, tried, "; ".join(errors), **data)
        what = f"{self.action.verb} {self.target.name} on {self._shown(nodes, pids)}"
        what += f" with {self.action.signal}"
        if self.scope == "leader":
            what += ", the leader"
        elif self.scope != "one":
            what += f": {share(len(nodes), len(self._nodes(cluster)))}"
        return done(op, fault, nodes, what, **data)

    def _undo(self, cluster: Cluster, node: str) -> None:
        if self.action.family == "kill":
            self.target.start(cluster, node)
        else:
            self.target.resume(cluster, node)

    def _stop(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = list(self.faulted)
        if not nodes:
            return done(op, fault, [], f"nothing to undo: no node is {self.action.verb}")
        undone, errors = self._undo_all(cluster, nodes)
        how = self.action.undo_signal or "restart"
        data = {"signal": self.action.undo_signal} if self.action.undo_signal else {}
        if errors:
            return maybe_done(op, fault, nodes, f"{how} {', '.join(nodes)}", "; ".join(errors))
        pids = self._pids(cluster, undone)
        what = f"{self.action.undo_verb} {self.target.name} on {self._shown(undone, pids)}"
        if self.action.undo_signal:
            what += f" with {self.action.undo_signal}"
        return done(op, fault, undone, what, pids=pids, **data)

    def _undo_all(self, cluster: Cluster, nodes: list[str]) -> tuple[list[str], list[str]]:
        """Undo on every node at once; the ones that worked leave `faulted`."""
        outcome = on_nodes(nodes, lambda n: self._undo(cluster, n))
        undone = [n for n in nodes if outcome[n] is None]
        for n in undone:
            self.faulted.remove(n)
        errors = [_node_error(n, e) for n, e in outcome.items() if e is not None]
        return undone, errors

    def heal(self, cluster: Cluster) -> None:
        with self._lock:
            _, errors = self._undo_all(cluster, list(self.faulted))
            if self.action.family == "pause":
                outcome = on_nodes(cluster.names, lambda n: self.target.resume(cluster, n))
                errors += [_node_error(n, e) for n, e in outcome.items() if e is not None]
            if errors:
                raise HarnessError(f"{self.name}: could not heal: {'; '.join(errors)}")


class _ProcessFaults(FaultPackage):
    """The faults of one action (kill or pause) at every scope: the fault name is the family
    alone ("kill": one random node) or the family and a scope ("kill-majority")."""

    def scope(self, name: str) -> str:
        """Which nodes fault `name` hits: "kill" is "one", "kill-majority" is "majority"."""
        if name not in self.faults:
            raise ValueError(f"{self.family}: no fault {name!r}")
        return name.removeprefix(self.family).removeprefix("-") or "one"

    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        return ProcessNemesis(name, self.family, self.scope(name), target, rng)

    def took_effect(self, completion: Op) -> bool:
        """An `ok` start that signalled at least one node (an `info` start may have signalled
        nothing at all, so it does not count as the fault having happened)."""
        value = completion.value
        return (
            completion.type == "ok"
            and isinstance(value, dict)
            and bool(value.get("nodes"))
            and value.get("signal") == ACTIONS[self.family].signal
        )


class KillFaults(_ProcessFaults):
    """SIGKILL, restarted on stop. Kills heal last: a restarted node must find the network
    already whole and no peer paused, or it may fail to rejoin within the recovery timeout."""

    family: ClassVar[str] = "kill"
    heal_order: ClassVar[int] = 30
    look: ClassVar[FaultLook] = FaultLook(
        label="kill",
        colour="#5a5a5a",
        title="The answering node was killed around the op: {node}",
        on_node="\u201c{fault}\u201d killed it around the op",
        suggests=(
            "State acknowledged before the crash may have been lost on restart (writes "
            "acknowledged before being made durable), or the restarted node served reads "
            "before catching up with the log."
        ),
        rank=30,
    )
    faults: ClassVar[dict[str, str]] = {
        "kill": "SIGKILL the system on one random node; restart it on stop",
        "kill-leader": "SIGKILL the system on the current leader; restart it on stop",
        "kill-minority": (
            "SIGKILL the system on n//2 random nodes at once (Jepsen's minority); restart"
        ),
        "kill-majority": "SIGKILL the system on n//2+1 random nodes at once (a majority); restart",
        "kill-all": "SIGKILL the system on every node at once; restart them all on stop",
    }


class PauseFaults(_ProcessFaults):
    """SIGSTOP, SIGCONT on stop. Pauses heal after the network and before kills."""

    family: ClassVar[str] = "pause"
    heal_order: ClassVar[int] = 20
    look: ClassVar[FaultLook] = FaultLook(
        label="pause",
        colour="#2557a7",
        title="A paused node answered: {node}",
        on_node="it was paused by \u201c{fault}\u201d during the op",
        suggests=(
            "A leader that resumes after a pause may still believe it leads (lease or timing "
            "assumptions) and serve stale or conflicting results until it learns of the new "
            "term."
        ),
        rank=20,
    )
    faults: ClassVar[dict[str, str]] = {
        "pause": "SIGSTOP the system on one random node; SIGCONT it on stop",
        "pause-leader": "SIGSTOP the system on the current leader; SIGCONT it on stop",
        "pause-minority": (
            "SIGSTOP the system on n//2 random nodes (Jepsen's minority); SIGCONT on stop"
        ),
        "pause-majority": "SIGSTOP the system on n//2+1 random nodes (a majority); SIGCONT on stop",
        "pause-all": "SIGSTOP the system on every node; SIGCONT them all on stop",
    }
