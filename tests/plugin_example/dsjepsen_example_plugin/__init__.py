"""An example third-party plugin for dsjepsen: here a target, a workload, a fault package and a
checker; beside it `redis.py` (a target started from its own binary) and `nsenter.py` (a node
backend), each one file, all registered only through entry points (see the dist-info beside
this package). The test suite puts this directory on PYTHONPATH and runs real tests with them;
docs/extending.md walks through it. Nothing in dsjepsen/ knows these names.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.cluster.daemon import wait_for_port
from dsjepsen.faults import FaultLook
from dsjepsen.history import NEMESIS, History, Op
from dsjepsen.nemesis.base import FaultPackage, Nemesis
from dsjepsen.nemesis.common import done, not_done
from dsjepsen.options import Option
from dsjepsen.targets.http_server import HttpServerTarget
from dsjepsen.workloads.base import OpSpec, Workload

MARKER = "dsj-example-marker"


class WriteThenRead(Workload):
    """Write a fresh value to one of a few keys, then read it back: the smallest register
    workload, judged by the built-in linearizability checker and by this plugin's own."""

    name = "write-then-read"
    description = "write a fresh value, then read it back (example plugin)"
    needs = frozenset({"read", "write"})
    model = "register"
    required_ok = {"read": 1, "write": 1}
    options = (Option("example-keys", "int", 3, "keys the example writes", minimum=1),)

    def __init__(self, *, seed: int, example_keys: int = 3) -> None:
        super().__init__(seed=seed)
        self.rng = random.Random(seed)
        self.keys = example_keys
        self.next_value = 0
        self.pending: list[OpSpec] = []

    def next_op(self) -> OpSpec:
        if self.pending:
            return self.pending.pop()
        self.next_value += 1
        key = self.rng.randrange(self.keys)
        self.pending.append(OpSpec("read", key, None))
        return OpSpec("write", key, self.next_value)

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec("read", k, None) for k in range(self.keys)]

    def checkers(self) -> list[Checker]:
        from dsjepsen import plugins

        return [plugins.get("checkers", "linearizable")(), MarkerSeen()]


class _MarkerNemesis(Nemesis):
    """Leaves a marker file in one node's working directory; heal removes it everywhere."""

    fs = ("start-marker", "stop-marker")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _path(self, cluster: Any, node: str) -> str:
        return f"{cluster.node(node).workdir.rstrip('/')}/{MARKER}"

    def invoke(self, cluster: Any, op: Op) -> Op:
        node = self.rng.choice(cluster.names)
        if op.f == "start-marker":
            res = cluster.remote(node).run(["touch", self._path(cluster, node)], timeout=10.0)
            if res.exit != 0:
                return not_done(op, "marker", res.stderr.strip())
            return done(op, "marker", [node], f"left a marker file on {node}")
        self.heal(cluster)
        return done(op, "marker", [], "removed every marker file")

    def heal(self, cluster: Any) -> None:
        for node in cluster.names:
            cluster.remote(node).run(["rm", "-f", self._path(cluster, node)], timeout=10.0)


class MarkerFaults(FaultPackage):
    family = "marker"
    faults = {"marker": "leave a marker file on one random node (example plugin)"}
    heal_order = 90
    # how the report draws this family (its band and legend colour) and what the root-cause
    # analysis says when an anomalous op was answered by a node it marked
    look = FaultLook(
        label="marker",
        colour="#0e7c86",
        title="The answering node carried a marker: {node}",
        on_node="\u201c{fault}\u201d left a marker file on it during the op",
        suggests="An example plugin's fault: markers change nothing, so look elsewhere.",
    )

    def nemesis(self, name: str, target: Any, rng: random.Random, options: dict) -> Nemesis:
        return _MarkerNemesis(rng)


class MarkerSeen(Checker):
    """Valid when at least one marker fault took effect during the run."""

    name = "marker-seen"
    description = "a marker fault took effect (example plugin)"

    def check(self, history: History, context: CheckContext) -> CheckResult:
        seen = [
            op
            for op in history.ops
            if op.process == NEMESIS and op.f == "start-marker" and op.type == "ok"
        ]
        if seen:
            return CheckResult(self.name, True, details={"markers": len(seen)})
        return CheckResult(self.name, False, reason="no marker fault took effect")


SERVER = Path(__file__).with_name("server.py")


class UnreplicatedKv(HttpServerTarget):
    """One server per node that speaks the HTTP contract but never replicates: a register
    test through several nodes must find it not linearizable."""

    name = "unreplicated-kv"
    description = "every node answers from its own memory, no replication (example plugin)"
    speaks = frozenset({"read", "write", "cas"})
    default_workload = "register"
    elects_leader = False
    options = (Option("example-port", "int", 7090, "port of the example server", keyword="port"),)

    def __init__(self, port: int = 7090) -> None:
        super().__init__(port=port)
        self.port = port
        self.client_timeout = 2.0

    def server_path(self, cluster: Any, node: Any) -> str:
        if cluster.shares_controller_files:
            return str(SERVER)
        return f"{self.home(node)}/server.py"

    def argv(self, cluster: Any, node: Any) -> list[str]:
        python = sys.executable if cluster.shares_controller_files else "python3"
        return [python, self.server_path(cluster, node), "--port", str(self.port)]

    def setup(self, cluster: Any) -> None:
        for node in cluster.nodes:
            if not cluster.shares_controller_files:
                remote = cluster.remote(node.name)
                remote.run(["mkdir", "-p", self.home(node)], timeout=30.0)
                remote.put(str(SERVER), self.server_path(cluster, node), timeout=60.0)
            self.start(cluster, node.name)
        for node in cluster.nodes:
            wait_for_port(node.address, self.port, timeout=30.0)
