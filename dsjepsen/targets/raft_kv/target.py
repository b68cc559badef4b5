"""RaftKvTarget: runs the reference raft-kv server on every node through its Remote only.

On the local namespace cluster the nodes share this machine's files, so the server runs from
the installed package with this interpreter. On ssh and docker nodes the server package (this
directory, standard library only) is uploaded to `<workdir>/raft-kv/code/raft_kv`, beside the
shared `serverkit.py`, and run with the node's own `python3`, which must be 3.11 or newer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dsjepsen.cluster.daemon import wait_for_port
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.options import Option
from dsjepsen.targets.fenced.resource import FencedLockTarget
from dsjepsen.targets.http_server import PackagedServerTarget
from dsjepsen.targets.lock_client import LOCK_FS, ContractLockClient
from dsjepsen.targets.raft_kv.bugs import BUGS, READ_MODES

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node
    from dsjepsen.targets.base import Client

__all__ = ["BUGS", "RaftKvTarget"]

DEFAULT_PORT = 7070


class RaftKvTarget(FencedLockTarget, PackagedServerTarget):
    package = "raft_kv"
    package_dir = os.path.dirname(os.path.abspath(__file__))
    harness_only = frozenset({"target.py"})
    name = "raft-kv"
    description = (
        "the reference Raft key-value store shipped with dsjepsen (HTTP contract, switchable bugs)"
    )
    speaks = frozenset({"read", "write", "cas", "txn"}) | LOCK_FS
    default_workload = "register"
    options = (
        Option(
            "bug",
            "list",
            (),
            "switch on a deliberate bug (see `dsjepsen list targets`)",
            choices=tuple(BUGS),
            keyword="bugs",
            label="bug",
        ),
        Option(
            "read-mode",
            "str",
            "linearizable",
            "raft-kv: how reads are served; sticky-follower answers from the client's own node "
            "(sequentially consistent, not linearizable: check with --consistency sequential)",
            choices=READ_MODES,
            label="reads",
        ),
    )
    version = "0.1.0"
    BUGS = BUGS

    def __init__(
        self,
        bugs: Sequence[str] = (),
        client_timeout: float = 2.0,
        *,
        read_mode: str = "linearizable",
        port: int = DEFAULT_PORT,
        election_timeout_ms: float = 500.0,
        heartbeat_ms: float = 50.0,
        request_timeout: float = 1.0,
        setup_timeout: float = 30.0,
        python: str = "python3",
    ):
        if request_timeout >= client_timeout:
            # Otherwise the client gives up first and every slow write becomes `info`.
            raise ConfigError(
                f"raft-kv request timeout ({request_timeout:g}s) must be shorter than the "
                f"client timeout ({client_timeout:g}s)"
            )
        super().__init__(bugs, client_timeout, port, setup_timeout, python)
        self.election_timeout_ms = election_timeout_ms
        self.heartbeat_ms = heartbeat_ms
        self.request_timeout = request_timeout
        if read_mode not in READ_MODES:
            raise ConfigError(f"--read-mode: one of {', '.join(READ_MODES)}, got {read_mode!r}")
        self.read_mode = read_mode

    def client(self, cluster: Cluster, node: str) -> Client:
        if self.resource is None:
            return super().client(cluster, node)
        writes_to, direct = self.lock_routes(cluster, node)
        n = cluster.node(node)
        return ContractLockClient(
            n.address, self.port, writes_to, self.client_timeout, node, direct=direct
        )

    # -- process control ----------------------------------------------------------------------

    def address_flags(self, node: Node) -> list[str]:
        return ["--advertise", f"{node.address}:{self.port}"]

    def server_flags(self) -> list[str]:
        flags = [
            "--election-timeout",
            f"{self.election_timeout_ms:g}",
            "--heartbeat",
            f"{self.heartbeat_ms:g}",
            "--request-timeout",
            f"{self.request_timeout:g}",
        ]
        if self.read_mode != "linearizable":
            flags += ["--read-mode", self.read_mode]
        return flags

    def setup(self, cluster: Cluster) -> None:
        self.start_everywhere(cluster)
        for node in cluster.nodes:
            wait_for_port(node.address, self.port, timeout=self.setup_timeout)
        deadline = time.monotonic() + self.setup_timeout
        while self.leader(cluster) is None:
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"raft-kv elected no leader within {self.setup_timeout:g}s; "
                    f"see {self.log_file(cluster.nodes[0])} on the nodes"
                )
            time.sleep(0.1)
        self.start_resource(cluster)
