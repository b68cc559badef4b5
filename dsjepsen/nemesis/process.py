"""Process faults through the Target: kill (SIGKILL, restart on stop) and pause (SIGSTOP,
SIGCONT on stop), on a random node or on the current leader.

The Target owns how its process is signalled (pidfiles, daemon helpers), so the same nemesis
works for every system. The nemesis remembers which nodes it faulted, so that stop undoes
exactly those; `heal` of pause also CONTs every node, because after a harness crash that
memory is gone and SIGCONT to a running process is harmless.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsjepsen.errors import HarnessError
from dsjepsen.nemesis.base import Nemesis
from dsjepsen.nemesis.common import done, fault_name, find_leader, maybe_done, not_done

if TYPE_CHECKING:
    from dsjepsen.harness.cluster import Cluster
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


class ProcessNemesis(Nemesis):
    def __init__(
        self, name: str, action: str, leader: bool, target: Target, rng: random.Random
    ) -> None:
        self.name = name
        self.action = ACTIONS[action]
        self.leader = leader
        self.target = target
        self.rng = rng
        self.fs = (f"start-{action}", f"stop-{action}")
        self.faulted: list[str] = []  # nodes we signalled and have not undone yet
        self._lock = threading.Lock()

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        fault = fault_name(op, self.name)
        with self._lock:
            if op.f == self.fs[0]:
                return self._start(cluster, op, fault)
            if op.f == self.fs[1]:
                return self._stop(cluster, op, fault)
            return not_done(op, fault, f"{self.name} does not handle f={op.f!r}")

    def _pick(self, cluster: Cluster) -> tuple[str | None, str, dict]:
        candidates = [n for n in cluster.names if n not in self.faulted]
        if not candidates:
            return None, "every node is already faulted", {}
        if not self.leader:
            return self.rng.choice(candidates), "", {}
        leader, reason = find_leader(self.target, cluster)
        if leader is None:
            return None, reason, {"leader": None}
        if leader in self.faulted:
            return None, f"leader {leader} is already {self.action.verb}", {"leader": leader}
        return leader, "", {"leader": leader}

    def _pid(self, cluster: Cluster, node: str) -> int | None:
        try:
            return self.target.pid(cluster, node)
        except Exception:  # the pid is a detail of the record, not worth failing a fault for
            return None

    def _start(self, cluster: Cluster, op: Op, fault: str) -> Op:
        node, reason, extra = self._pick(cluster)
        if node is None:
            return not_done(op, fault, reason, **extra)
        pid = self._pid(cluster, node)
        what = f"{self.action.verb} {self.target.name} on {node} ({self.action.signal}"
        what += f", pid {pid})" if pid is not None else ")"
        if self.leader:
            what += ", the leader"
        data = {"signal": self.action.signal, "pid": pid, **extra}
        try:
            if self.action.family == "kill":
                self.target.kill(cluster, node)
            else:
                self.target.pause(cluster, node)
        except Exception as e:
            self.faulted.append(node)  # it may have happened: stop and heal must undo it
            return maybe_done(
                op, fault, [node], f"send {self.action.signal} to {node}", str(e), **data
            )
        self.faulted.append(node)
        return done(op, fault, [node], what, **data)

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
        pids = {n: self._pid(cluster, n) for n in undone}
        shown = [f"{n} (pid {pids[n]})" if pids[n] is not None else n for n in undone]
        what = f"{self.action.undo_verb} {self.target.name} on {', '.join(shown)}"
        if self.action.undo_signal:
            what += f" with {self.action.undo_signal}"
        return done(op, fault, undone, what, pids=pids, **data)

    def _undo_all(self, cluster: Cluster, nodes: list[str]) -> tuple[list[str], list[str]]:
        undone: list[str] = []
        errors: list[str] = []
        for node in nodes:
            try:
                self._undo(cluster, node)
            except Exception as e:
                errors.append(str(e) if node in str(e) else f"node {node}: {e}")
                continue
            undone.append(node)
            self.faulted.remove(node)
        return undone, errors

    def heal(self, cluster: Cluster) -> None:
        with self._lock:
            _, errors = self._undo_all(cluster, list(self.faulted))
            if self.action.family == "pause":
                for node in cluster.names:
                    try:
                        self.target.resume(cluster, node)
                    except Exception as e:
                        errors.append(str(e) if node in str(e) else f"node {node}: {e}")
            if errors:
                raise HarnessError(f"{self.name}: could not heal: {'; '.join(errors)}")
