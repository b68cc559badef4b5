"""MaelstromTarget: any Maelstrom-protocol node program as the system under test.

`--bin 'CMD'` is started once per node (split like a shell line, never run by a shell) by the
relay (relay.py, standard library only) beside it: on the local cluster both run inside the
node's network namespace, over SSH and docker on the real host (the relay, and every argument
of CMD that names a file on the controller, are uploaded to `<workdir>/maelstrom/`). Node-to-node
messages cross the real network between node addresses, client and service messages go to the
controller (net.py, services.py). Maelstrom ids are n0..n{N-1}, given to the cluster's nodes
in order; clients are c1, c2, ...

Lifecycle, as Maelstrom's: start every relay + node, connect, send each node `init` and wait
for `init_ok` (a node that exits or stays silent is one error line naming it). Kill is SIGKILL
to the node's process group (the node and its relay: the node's state and in-flight messages
are gone, as in Maelstrom); restart starts both again and sends `init` again. Pause is SIGSTOP
to the same group. For a broadcast workload (`expect_ops`), every node gets Maelstrom's
`topology` after `init` and before any client op, and again after each restart, before clients
may use it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster.control.base import RemoteError
from dsjepsen.cluster.daemon import (
    daemon_pid,
    daemon_running,
    signal_daemon,
    start_daemon,
    stop_daemon,
)
from dsjepsen.cluster.localnet import MIB, NodeCost
from dsjepsen.errors import ConfigError, DsjError, HarnessError
from dsjepsen.faults import windows
from dsjepsen.options import Option
from dsjepsen.targets.base import Client, Target
from dsjepsen.targets.maelstrom.client import SPEAKS, ClientIds, MaelstromClient
from dsjepsen.targets.maelstrom.net import Network
from dsjepsen.targets.maelstrom.netstats import network_stats, read_logs
from dsjepsen.targets.maelstrom.program import resolve, split_bin

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node
    from dsjepsen.history import History

RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")
DEFAULT_PORT = 7171
LATENCY_DISTS = ("constant", "uniform", "exponential")
TOPOLOGIES = ("grid", "line", "total", "tree", "tree2", "tree3", "tree4", "none")
BROADCAST_FS = frozenset({"broadcast", "read-messages"})
INIT_SRC = "c0"  # the harness's own messages (init, topology)
#: the relay's own lines in the node log that say nothing about why a node failed
BOOKKEEPING = re.compile(r"^\d\d:\d\d:\d\d relay \S+: (node pid \d+|node exited with code)")
#: stderr lines quoted in a start-up error
LAST_WORDS = 6


def topology(ids: list[str], kind: str) -> dict[str, list[str]]:
    """Maelstrom's topologies (workload/broadcast.clj), neighbours in Maelstrom's order, since
    a node may well treat its first neighbour differently: grid (a square of side
    ceil(sqrt(n)); below, above, right, left), line (left, right; no entry at all for fewer
    than two nodes), total, tree / tree2 / tree3 / tree4 (nodes in tiers 1, b, b^2, ...;
    parent first, then children). `none` (dsjepsen's) gives every node no neighbours."""
    n = len(ids)
    if kind == "total":
        return {i: [j for j in ids if j != i] for i in ids}
    if kind == "none":
        return {i: [] for i in ids}
    if kind == "line":
        if n < 2:
            return {}
        return {ids[a]: [ids[b] for b in (a - 1, a + 1) if 0 <= b < n] for a in range(n)}
    if kind.startswith("tree"):
        k = int(kind[4:] or 2)  # heap order: the children of a are k*a+1 .. k*a+k
        return {
            ids[a]: ([ids[(a - 1) // k]] if a else []) + ids[k * a + 1 : min(n, k * a + k + 1)]
            for a in range(n)
        }
    side = math.isqrt(n - 1) + 1 if n > 1 else 1  # ceil(sqrt(n))

    def at(i: int, j: int) -> str | None:
        return ids[i * side + j] if i >= 0 and 0 <= j < side and i * side + j < n else None

    out: dict[str, list[str]] = {}
    for a in range(n):
        i, j = divmod(a, side)
        near = (at(i + 1, j), at(i - 1, j), at(i, j + 1), at(i, j - 1))
        out[ids[a]] = [x for x in near if x is not None]
    return out


class MaelstromTarget(Target):
    name = "maelstrom"
    description = (
        "any Maelstrom-protocol node program (--bin), with relays carrying its messages over "
        "the real network (docs/maelstrom.md)"
    )
    speaks = SPEAKS
    default_workload = "echo"
    elects_leader = False
    version = "maelstrom-protocol"
    #: a node program and its relay: two small processes that idle between messages. The
    #: figures are measured (docs/maelstrom.md): 25 nodes of Gossip Glomers 3d's broadcast
    #: (rate 100, latency 100) on a 2-core machine
    node_cost = NodeCost(memory=64 * MIB, per_core=16, what="Maelstrom node and its relay")
    options = (
        Option(
            "bin",
            "str",
            None,
            "maelstrom: the node program, split like a shell line, never run by a shell",
            metavar="CMD",
        ),  # fmt: skip
        Option(
            "latency",
            "float",
            0.0,
            "maelstrom: mean delay (ms) the relays add to every node-to-node message",
            minimum=0.0,
            maximum=60_000.0,
            metavar="MS",
            aliases=("msg-latency",),
        ),
        Option(
            "latency-dist",
            "str",
            "constant",
            "maelstrom: how --latency is distributed",
            choices=LATENCY_DISTS,
            aliases=("msg-latency-dist",),
        ),
        Option(
            "topology",
            "str",
            "grid",
            "maelstrom broadcast: the topology sent to the nodes",
            choices=TOPOLOGIES,
        ),
        Option(
            "relay-port",
            "int",
            DEFAULT_PORT,
            "maelstrom: UDP / TCP port of the relays",
            minimum=1,
            maximum=65535,
            metavar="N",
            keyword="port",
        ),  # fmt: skip
        Option(
            "node-ids",
            "str",
            None,
            "maelstrom: the Maelstrom node ids, comma-separated, one per node in order "
            "(default n0, n1, ...)",
            metavar="ID,ID,...",
        ),
        Option(
            "rpc-timeout",
            "float",
            2.0,
            "maelstrom: seconds a client waits for a reply",
            minimum=0.05,
            maximum=3600.0,
            metavar="SECONDS",
        ),  # fmt: skip
    )

    def __init__(
        self,
        bin: str | None = None,
        latency: float = 0.0,
        latency_dist: str = "constant",
        topology: str = "grid",
        port: int = DEFAULT_PORT,
        rpc_timeout: float = 2.0,
        node_ids: str | None = None,
        *,
        init_timeout: float = 10.0,
        python: str = "python3",
        seed: int | None = None,
    ) -> None:
        self.check_options(bin=bin, port=port)
        assert bin is not None
        self.argv_template = split_bin(bin)
        self.bin = bin
        self.latency = latency
        self.latency_dist = latency_dist
        self.topology_kind = topology
        self.port = port
        self.rpc_timeout = rpc_timeout
        self.node_ids = [x.strip() for x in node_ids.split(",")] if node_ids else None
        self.init_timeout = init_timeout
        self.python = python
        self.seed = seed
        self.net: Network | None = None
        self.client_ids = ClientIds()
        #: the workload broadcasts: every node gets `topology` after `init` (expect_ops)
        self.topology_needed = False
        self.ids: dict[str, str] = {}
        self.uploaded: dict[str, str] = {}  # local file -> path on the nodes (ssh / docker)

    @classmethod
    def check_options(cls, **values: Any) -> None:
        bin = values.get("bin")
        if not bin or not str(bin).strip():
            raise ConfigError("--bin: the maelstrom target needs the node program (--bin 'CMD')")
        split_bin(str(bin))

    # -- paths on a node ------------------------------------------------------------------------

    def home(self, node: Node) -> str:
        return f"{node.workdir.rstrip('/')}/maelstrom"

    def log_file(self, node: Node) -> str:
        return f"{self.home(node)}/node.log"

    def messages_file(self, node: Node) -> str:
        return f"{self.home(node)}/messages.jsonl"

    def pid_file(self, node: Node) -> str:
        return f"{self.home(node)}/relay.pid"

    # -- the command line -----------------------------------------------------------------------

    def node_argv(self, cluster: Cluster) -> list[str]:
        """The node program's argv as the node runs it: here, with the program resolved as
        Maelstrom resolves `--bin` (program.resolve); elsewhere, with the uploaded files."""
        if cluster.shares_controller_files:
            return resolve(self.argv_template)
        return [self.uploaded.get(a, a) for a in self.argv_template]

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        """The relay's command line for one node (also what a user can run by hand)."""
        if cluster.shares_controller_files:
            head = [sys.executable, RELAY]
        else:
            head = [self.python, f"{self.home(node)}/relay.py"]
        peers = ",".join(
            f"{self.ids[n.name]}={n.address}:{self.port}" for n in cluster.nodes if n != node
        )
        return [
            *head,
            "--id",
            self.ids[node.name],
            "--port",
            str(self.port),
            "--peers",
            peers,
            "--log",
            self.messages_file(node),
            "--latency",
            f"{self.latency:g}",
            "--latency-dist",
            self.latency_dist,
            "--node-cwd",
            os.getcwd() if cluster.shares_controller_files else self.home(node),
            "--",
            *self.node_argv(cluster),
        ]

    def describe(self, cluster: Cluster, node: str) -> str:
        return shlex.join(self.argv(cluster, cluster.node(node)))

    # -- lifecycle ------------------------------------------------------------------------------

    def _upload(self, cluster: Cluster) -> None:
        """SSH / docker: the relay and every argument of --bin that is a file here."""
        files = [a for a in self.argv_template if os.path.isfile(a)]
        for node in cluster.nodes:
            remote = cluster.remote(node.name)
            res = remote.run([self.python, "-c", "import sys"], timeout=30.0, check=False)
            if res.exit != 0:
                raise HarnessError(f"node {node.name}: the maelstrom relay needs {self.python}")
            remote.run(["mkdir", "-p", f"{self.home(node)}/bin"], timeout=30.0)
            remote.put(RELAY, f"{self.home(node)}/relay.py", timeout=60.0)
            for f in files:
                dest = f"{self.home(node)}/bin/{os.path.basename(f)}"
                remote.put(f, dest, timeout=60.0)
                if os.access(f, os.X_OK):
                    remote.run(["chmod", "+x", dest], timeout=30.0)
                self.uploaded[f] = dest

    def setup(self, cluster: Cluster) -> None:
        if cluster.shares_controller_files:
            resolve(self.argv_template)  # a program that cannot start: one line, no node touched
        names = self.node_ids or [f"n{i}" for i in range(len(cluster.nodes))]
        if len(names) != len(cluster.nodes):
            raise ConfigError(
                f"--node-ids: {len(names)} Maelstrom id(s) ({', '.join(names)}) for "
                f"{len(cluster.nodes)} node(s); give one id per node"
            )
        self.ids = {n.name: mid for n, mid in zip(cluster.nodes, names, strict=True)}
        self.net = Network(self.ids, seed=self.seed)
        if not cluster.shares_controller_files:
            self._upload(cluster)
        for node in cluster.nodes:
            cluster.remote(node.name).run(["mkdir", "-p", self.home(node)], timeout=30.0)
            # a fresh message log per run (a restart appends to it)
            cluster.remote(node.name).run(["rm", "-f", self.messages_file(node)], timeout=30.0)
        # every relay up before any node is initialised: a node may talk to its peers as
        # soon as it knows them; every node initialised (and given its topology) before any
        # client op, as in Maelstrom
        self._on_all(cluster, self._launch)
        self._on_all(cluster, self._initialise)
        self._on_all(cluster, self._send_topology)
        for node in cluster.names:
            self._ready(cluster, node)

    def expect_ops(self, fs: frozenset[str]) -> None:
        self.topology_needed = bool(fs & BROADCAST_FS)

    def _on_all(self, cluster: Cluster, step: Callable[[Cluster, str], None]) -> None:
        """step on every node at once; one error line if any failed."""

        def attempt(node: str) -> str | None:
            try:
                step(cluster, node)
                return None
            except HarnessError as e:
                return str(e)

        with ThreadPoolExecutor(max_workers=len(cluster.nodes)) as pool:
            outcome = dict(zip(cluster.names, pool.map(attempt, cluster.names), strict=True))
        failed = [n for n, e in outcome.items() if e is not None]
        if failed:
            # one line: the first node's story in full, the others by name
            also = f" (also {', '.join(failed[1:])})" if failed[1:] else ""
            raise HarnessError(f"{outcome[failed[0]]}{also}")

    def start(self, cluster: Cluster, node: str) -> None:
        """Start the relay and the node program, connect, send `init` (and the broadcast
        `topology`) and wait for the replies; only then may clients use the node."""
        self._launch(cluster, node)
        self._initialise(cluster, node)
        self._send_topology(cluster, node)
        self._ready(cluster, node)

    def _launch(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        mid = self.ids[node]
        try:
            start_daemon(
                cluster.remote(node),
                self.argv(cluster, n),
                pidfile=self.pid_file(n),
                logfile=self.log_file(n),
                cwd=self.home(n),
            )
        except RemoteError as e:
            raise HarnessError(
                f"node {node} (maelstrom {mid}): the node program exited at startup"
                f"{self._last_words(cluster, n)}"
            ) from e

    def _initialise(self, cluster: Cluster, node: str) -> None:
        assert self.net is not None
        n = cluster.node(node)
        mid = self.ids[node]
        link = self.net.add_link(node, n.address, self.port)
        try:
            link.connect(timeout=self.init_timeout)
        except OSError as e:
            running = daemon_running(cluster.remote(node), self.pid_file(n))
            what = str(e) if running else "the node program exited at startup"
            raise HarnessError(
                f"node {node} (maelstrom {mid}): {what}{self._last_words(cluster, n)}"
            ) from None
        body = {"type": "init", "node_id": mid, "node_ids": [self.ids[x] for x in cluster.names]}
        reply, why, _ = self.net.rpc(node, INIT_SRC, body, self.init_timeout, setup=True)
        if reply is None or reply.get("type") != "init_ok":
            if reply is not None:
                why = f"answered init with {str(reply)[:200]}"
            elif link.exit_code is not None:
                why = f"the node program exited with code {link.exit_code} before init_ok"
            elif not daemon_running(cluster.remote(node), self.pid_file(n)):
                why = f"the node program exited before init_ok ({why})"
            raise HarnessError(
                f"node {node} (maelstrom {mid}): no init_ok ({why}){self._last_words(cluster, n)}"
            )

    def _last_words(self, cluster: Cluster, n: Node) -> str:
        """The last lines the node program (or its relay, when it could not start it) wrote
        to stderr, in one line: a node that needs a newer interpreter dies with a
        SyntaxError there, and that is the line the user needs. The relay's own bookkeeping
        lines are left out."""
        try:
            res = cluster.remote(n.name).run(
                ["tail", "-n", "40", self.log_file(n)], timeout=10.0, check=False
            )
        except HarnessError:
            return ""
        lines = [x.strip() for x in res.stdout.splitlines() if x.strip()]
        lines = [x for x in lines if not BOOKKEEPING.match(x)][-LAST_WORDS:]
        if not lines:
            return ""
        return f"; the node's last stderr lines ({self.log_file(n)}): {' | '.join(lines)[-600:]}"

    def _send_topology(self, cluster: Cluster, node: str) -> None:
        """Broadcast runs: send the node Maelstrom's `topology` and wait for `topology_ok`.

        Maelstrom sends it to every node after `init` and before any client op (and a
        restarted node gets it again before it is used): a node that forwards only to its
        neighbours must know them before the first message arrives, or that message stops
        at the first node that does not."""
        if not self.topology_needed:
            return
        assert self.net is not None
        n = cluster.node(node)
        body = {
            "type": "topology",
            "topology": topology(list(self.ids.values()), self.topology_kind),
        }
        reply, why, _ = self.net.rpc(node, INIT_SRC, body, self.init_timeout, setup=True)
        if reply is None or reply.get("type") != "topology_ok":
            if reply is not None:
                why = f"answered topology with {str(reply)[:200]}"
            raise HarnessError(
                f"node {node} (maelstrom {self.ids[node]}): no topology_ok ({why})"
                f"{self._last_words(cluster, n)}"
            )

    def _ready(self, cluster: Cluster, node: str) -> None:
        """From now on clients may send the node requests."""
        assert self.net is not None
        self.net.links[node].ready = True

    def kill(self, cluster: Cluster, node: str) -> None:
        n = cluster.node(node)
        signal_daemon(cluster.remote(node), self.pid_file(n), "KILL")
        stop_daemon(cluster.remote(node), self.pid_file(n), grace=0.1)
        if self.net is not None and node in self.net.links:
            self.net.links[node].close()

    def pause(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.pid_file(cluster.node(node)), "STOP")

    def resume(self, cluster: Cluster, node: str) -> None:
        signal_daemon(cluster.remote(node), self.pid_file(cluster.node(node)), "CONT")

    def teardown(self, cluster: Cluster) -> None:
        if self.net is not None:
            self.net.close()
        errors = []
        for node in cluster.nodes:
            try:
                stop_daemon(cluster.remote(node.name), self.pid_file(node), grace=1.0)
            except HarnessError as e:
                errors.append(str(e))
        if errors:
            raise HarnessError("maelstrom teardown: " + "; ".join(errors))

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        n = cluster.node(node)
        return [self.log_file(n), self.messages_file(n)]

    def pid(self, cluster: Cluster, node: str) -> int | None:
        return daemon_pid(cluster.remote(node), self.pid_file(cluster.node(node)))

    def client(self, cluster: Cluster, node: str) -> Client:
        if self.net is None:
            raise HarnessError("maelstrom: client before setup")
        return MaelstromClient(self.net, node, self.client_ids.next(), self.rpc_timeout)

    def results(self) -> dict[str, Any]:
        """What the controller saw of the network, for the results (malformed output etc.)."""
        out: dict[str, Any] = {"node_ids": dict(self.ids)}
        if self.latency > 0:
            out["latency"] = {
                "mean_ms": self.latency,
                "dist": self.latency_dist,
                "applied_by": "relays (not netem)",
            }
        return {**out, **(self.net.summary() if self.net is not None else {})}

    def run_results(self, run_dir: Path, history: History | None) -> dict[str, Any]:
        """The `maelstrom` part of results.json, once the node logs are collected: network
        statistics from the relays' message logs (per client op of the history) and what
        the controller saw (malformed output, late replies, service calls).

        Datagrams between nodes that were lost outside every fault window mean this machine
        dropped them (a relay too busy to empty its socket buffer), which Maelstrom's network
        never does: a node that relied on Maelstrom not to lose them could then fail a check
        through no fault of its own, so `untrustworthy` says why a failed verdict must not
        be believed (the run layer makes it unknown)."""
        ops = 0
        windows: list[tuple[float, float]] = []
        if history is not None:
            ops = sum(1 for op in history.ops if op.type == "invoke" and op.is_client)
            windows = fault_windows_wall(history, run_dir)
        mine = self.results()
        controller = {
            "clients": mine.get("client_messages") or {},
            "services": mine.get("service_messages") or {},
        }
        net = network_stats(read_logs(run_dir), ops, controller, windows)
        out = {"net": net, **mine}
        outside = net["lost"]["outside-faults"]
        if outside:
            out["untrustworthy"] = (
                f"{outside} message(s) between nodes were lost outside every fault (this "
                "machine was too busy: a relay's receive buffer overflowed), which "
                "Maelstrom's network never does; run fewer nodes or a lower rate"
            )
        return out


def fault_windows_wall(history: History, run_dir: Path) -> list[tuple[float, float]]:
    """Wall-clock (start, end) of every fault of the history that was applied: the widest
    span of each window (faults.windows: the one rule every reader of fault ops uses),
    placed on the wall clock by test.json's `history_start_time`."""
    try:
        test = json.loads((run_dir / "test.json").read_text(encoding="utf-8"))
        origin = datetime.fromisoformat(test["history_start_time"]).timestamp()
        found, _ = windows(history.ops)
    except (OSError, ValueError, KeyError, TypeError, DsjError):
        return []
    return [(origin + w.start / 1e9, origin + w.end / 1e9) for w in found if not w.failed]
