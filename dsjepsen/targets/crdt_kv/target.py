"""CrdtKvTarget: runs the reference crdt-kv server on every node through its Remote only.

On the local namespace cluster the nodes share this machine's files, so the server runs from
the installed package with this interpreter. On ssh and docker nodes the server package (this
directory, standard library only) is uploaded to `<workdir>/crdt-kv/code/crdt_kv`, beside the
shared `serverkit.py`, and run with the node's own `python3`, which must be 3.11 or newer.
There is no leader: every node serves every request, so `leader()` is always None and
leader-aimed faults pick a random node.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsjepsen.cluster.daemon import wait_for_port
from dsjepsen.errors import HarnessError
from dsjepsen.options import Option
from dsjepsen.targets.base import Client
from dsjepsen.targets.contract_client import CRDT_FS, ContractClient
from dsjepsen.targets.crdt_kv.bugs import BUGS
from dsjepsen.targets.http_server import PackagedServerTarget

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster

__all__ = ["BUGS", "CrdtKvTarget"]

DEFAULT_PORT = 7070
#: the f values of the set and counter endpoints (the register ones are not served)
SPEAKS = CRDT_FS


class CrdtKvTarget(PackagedServerTarget):
    package = "crdt_kv"
    package_dir = os.path.dirname(os.path.abspath(__file__))
    harness_only = frozenset({"target.py"})
    name = "crdt-kv"
    description = (
        "the reference CRDT store: G-Sets and PN-Counters replicated by gossip, no leader "
        "(docs/crdt.md)"
    )
    speaks = SPEAKS
    default_workload = "g-set"
    options = (
        Option(
            "bug",
            "list",
            (),
            "switch on a deliberate bug (see `dsjepsen list targets` and docs/crdt.md)",
            choices=tuple(BUGS),
            keyword="bugs",
            label="bug",
        ),
    )
    elects_leader = False
    version = "0.1.0"
    BUGS = BUGS

    def __init__(
        self,
        bugs: Sequence[str] = (),
        client_timeout: float = 2.0,
        *,
        port: int = DEFAULT_PORT,
        gossip_interval_ms: float = 100.0,
        gossip_timeout: float = 1.0,
        flush_interval: float = 2.0,
        snapshot_interval: float = 5.0,
        setup_timeout: float = 30.0,
        python: str = "python3",
    ):
        super().__init__(bugs, client_timeout, port, setup_timeout, python)
        self.gossip_interval_ms = gossip_interval_ms
        self.gossip_timeout = gossip_timeout
        self.flush_interval = flush_interval
        self.snapshot_interval = snapshot_interval

    # -- process control ----------------------------------------------------------------------

    def server_flags(self) -> list[str]:
        return [
            "--gossip-interval",
            f"{self.gossip_interval_ms:g}",
            "--gossip-timeout",
            f"{self.gossip_timeout:g}",
            "--flush-interval",
            f"{self.flush_interval:g}",
            "--snapshot-interval",
            f"{self.snapshot_interval:g}",
        ]

    def setup(self, cluster: Cluster) -> None:
        self.start_everywhere(cluster)
        deadline = time.monotonic() + self.setup_timeout
        for node in cluster.nodes:
            wait_for_port(node.address, self.port, timeout=max(1.0, deadline - time.monotonic()))
        silent = [n.name for n in cluster.nodes if self.status(cluster, n.name) is None]
        while silent:
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"crdt-kv: {', '.join(silent)} never answered GET /status within "
                    f"{self.setup_timeout:g}s; see {self.log_file(cluster.nodes[0])} on the nodes"
                )
            time.sleep(0.1)
            silent = [n for n in silent if self.status(cluster, n) is None]

    # -- clients and observation --------------------------------------------------------------

    def client(self, cluster: Cluster, node: str) -> Client:
        n = cluster.node(node)
        return ContractClient(n.address, self.port, timeout=self.client_timeout, node=node)

    def leader(self, cluster: Cluster) -> str | None:
        """A CRDT store has no leader."""
        return None
