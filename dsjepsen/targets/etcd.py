"""etcd as a target: real etcd (Debian's etcd-server) on every node, spoken to through its v3
JSON gateway (the gRPC API mapped to HTTP/JSON under `/v3/`, keys and values base64).

Everything on a node goes through its Remote and the daemon helpers, so the same target runs
on local namespaces, over SSH or in docker. The client keeps Jepsen's honesty rule: a write
or cas whose outcome we cannot know is `info`; a read that errors is `fail`, because a read
changes nothing, so "did not happen" is always a correct account of it.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import logging
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster import daemon
from dsjepsen.options import Option
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import HttpJson, NotSent
from dsjepsen.targets.fenced.resource import FencedLockTarget
from dsjepsen.targets.lock_client import LOCK_FS, Answer, LockClient
from dsjepsen.targets.process import ProcessTarget, require_binary

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node
    from dsjepsen.history import Op

CLIENT_PORT = 2379
PEER_PORT = 2380
#: etcd 3.4 serves the gateway under both /v3/ and /v3beta/ (checked on 3.4.23); /v3/ is the
#: stable one and the only one 3.5 keeps.
API = "/v3"
BINARY = "etcd"
PACKAGE = "etcd-server"
READY_TIMEOUT = 60.0

log = logging.getLogger("dsjepsen.target")


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str) -> str:
    return base64.b64decode(s).decode()


def _decode_value(raw: str) -> Any:
    text = _unb64(raw)
    try:
        return int(text)
    except ValueError:
        return text


def _encode_value(v: Any) -> str:
    return _b64(json.dumps(v) if not isinstance(v, str) else v)


class GatewayError(Exception):
    """etcd answered with an error (HTTP status and gRPC error message)."""

    def __init__(self, status: int, message: str, code: int | None):
        self.status = status
        self.message = message
        self.code = code
        super().__init__(f"HTTP {status}: {message}")


def post(http: HttpJson, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One gateway call. Raises NotSent when the request certainly never left, GatewayError
    on an error answer, OSError / http.client errors when the outcome is unknown."""
    status, doc = http.request("POST", API + path, body)
    doc = doc if isinstance(doc, dict) else {}
    if status != 200:
        msg = doc.get("message") or doc.get("error") or f"HTTP {status}"
        raise GatewayError(status, str(msg), doc.get("code"))
    return doc


def call(address: str, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One gateway call on a connection of its own."""
    http = HttpJson(address, CLIENT_PORT, timeout)
    try:
        return post(http, path, body)
    finally:
        http.close()


# gRPC errors that etcd returns before proposing anything: the write definitely did not happen.
_DEFINITE = re.compile(
    r"too many requests|proposal dropped|no leader|request is too large|not capable|"
    r"invalid|permission denied|user name|authentication",
    re.IGNORECASE,
)
_GRPC_INVALID_ARGUMENT = 3


class EtcdClient(Client):
    """One worker's connection to one etcd node."""

    def __init__(self, address: str, timeout: float, serializable: bool, port: int = CLIENT_PORT):
        self.address = address
        self.port = port
        self.timeout = timeout
        self.serializable = serializable
        self.http = HttpJson(address, port, timeout)

    def close(self) -> None:
        self.http.close()

    def invoke(self, op: Op) -> Op:
        key = _b64(f"dsj/{op.key}")
        try:
            if op.f == "read":
                return self._read(op, key)
            if op.f == "write":
                self._post("/kv/put", {"key": key, "value": _encode_value(op.value)})
                return dataclasses.replace(op, type="ok")
            if op.f == "cas":
                return self._cas(op, key)
            return dataclasses.replace(op, type="fail", error=f"unsupported f {op.f!r}")
        except NotSent as e:
            return dataclasses.replace(op, type="fail", error=f"not sent: {e}")
        except GatewayError as e:
            definite = (
                op.f == "read"
                or e.code == _GRPC_INVALID_ARGUMENT
                or 400 <= e.status < 500
                or bool(_DEFINITE.search(e.message))
            )
            return dataclasses.replace(op, type="fail" if definite else "info", error=e.message)
        except (OSError, http.client.HTTPException) as e:
            what = "timeout" if isinstance(e, socket.timeout | TimeoutError) else str(e)
            what = what or type(e).__name__
            return dataclasses.replace(op, type="fail" if op.f == "read" else "info", error=what)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return post(self.http, path, body)

    def _read(self, op: Op, key: str) -> Op:
        body: dict[str, Any] = {"key": key}
        if self.serializable:
            body["serializable"] = True
        doc = self._post("/kv/range", body)
        kvs = doc.get("kvs") or []
        value = _decode_value(kvs[0].get("value", "")) if kvs else None
        return dataclasses.replace(op, type="ok", value=value)

    def _cas(self, op: Op, key: str) -> Op:
        try:
            old, new = op.value
        except (TypeError, ValueError):
            return dataclasses.replace(
                op, type="fail", error=f"cas needs [old, new], got {op.value!r}"
            )
        # A compare on the value of an absent key is false, so cas on an absent key fails.
        doc = self._post(
            "/kv/txn",
            {
                "compare": [
                    {"key": key, "target": "VALUE", "result": "EQUAL", "value": _encode_value(old)}
                ],
                "success": [{"request_put": {"key": key, "value": _encode_value(new)}}],
                "failure": [{"request_range": {"key": key}}],
            },
        )
        if doc.get("succeeded"):
            return dataclasses.replace(op, type="ok")
        current = None
        for r in doc.get("responses") or []:
            kvs = (r.get("response_range") or {}).get("kvs") or []
            if kvs:
                current = _decode_value(kvs[0].get("value", ""))
        why = "key absent" if current is None else f"value is {current!r}"
        return dataclasses.replace(op, type="fail", error=f"cas compare failed: {why}")


class EtcdLockClient(LockClient):
    """The lock workload on etcd (docs/locks.md): a lease (`/lease/grant`, the TTL rounded up
    to whole seconds: a longer lease than asked, never a shorter one) and a transaction that
    creates the lock key with that lease only if the key does not exist, the mechanism of
    etcd's own lock API without its queue of waiters (a waiter blocks until it holds the
    lock, which no client timeout can tell from a lost answer). The token is the revision of
    the transaction that created the key: etcd's revisions only grow. Release deletes the key
    if it still holds this holder's name at that revision."""

    KEY = _b64("dsj-lock/lock")

    def __init__(
        self,
        address: str,
        timeout: float,
        writes_to: tuple[str, int],
        direct: tuple[str, int],
        node: str | None = None,
        port: int = CLIENT_PORT,
    ):
        super().__init__(writes_to, timeout, node, direct)
        self.http = HttpJson(address, port, timeout)

    def close_lock(self) -> None:
        self.http.close()

    def _call(self, path: str, body: dict[str, Any], unsure: str) -> dict[str, Any] | Answer:
        """The gateway's answer, or the Answer its failure means (`unsure`: what an unknown
        outcome is for this call)."""
        try:
            return post(self.http, path, body)
        except NotSent as e:
            return Answer("fail", error=f"not sent: {e}")
        except GatewayError as e:
            definite = e.code == _GRPC_INVALID_ARGUMENT or bool(_DEFINITE.search(e.message))
            return Answer("fail" if definite else unsure, error=e.message)
        except (OSError, http.client.HTTPException) as e:
            what = "timeout" if isinstance(e, socket.timeout | TimeoutError) else str(e)
            return Answer(unsure, error=what or type(e).__name__)

    def try_acquire(self, holder: str, lease_ms: int) -> Answer:
        # a lease nobody attached the key to takes nothing: its failure is the acquire's fail
        lease = self._call("/lease/grant", {"TTL": -(-lease_ms // 1000)}, "fail")
        if isinstance(lease, Answer):
            return lease
        lease_id = lease.get("ID")
        if not lease_id:
            return Answer("fail", error=f"lease grant without an ID: {str(lease)[:200]}")
        doc = self._call(
            "/kv/txn",
            {
                "compare": [
                    {"key": self.KEY, "target": "CREATE", "result": "EQUAL", "create_revision": 0}
                ],
                "success": [
                    {"request_put": {"key": self.KEY, "value": _b64(holder), "lease": lease_id}}
                ],
                "failure": [{"request_range": {"key": self.KEY}}],
            },
            "info",
        )
        if isinstance(doc, Answer):
            return doc
        if doc.get("succeeded"):
            revision = (doc.get("header") or {}).get("revision")
            try:
                return Answer("ok", token=int(revision))
            except (TypeError, ValueError):
                return Answer("info", error=f"granted without a revision: {str(doc)[:200]}")
        held = None
        for r in doc.get("responses") or []:
            kvs = (r.get("response_range") or {}).get("kvs") or []
            if kvs:
                held = _unb64(kvs[0].get("value", ""))
        return Answer("fail", error={"refused": "held", "holder": held})

    def try_release(self, holder: str, token: int | None) -> Answer:
        compare: list[dict[str, Any]] = [
            {"key": self.KEY, "target": "VALUE", "result": "EQUAL", "value": _b64(holder)}
        ]
        if token is not None:
            compare.append(
                {"key": self.KEY, "target": "MOD", "result": "EQUAL", "mod_revision": token}
            )
        doc = self._call(
            "/kv/txn",
            {"compare": compare, "success": [{"request_delete_range": {"key": self.KEY}}]},
            "info",
        )
        if isinstance(doc, Answer):
            return doc
        if doc.get("succeeded"):
            return Answer("ok")
        return Answer("fail", error={"refused": "not the holder (the lease ran out)"})


class EtcdTarget(FencedLockTarget, ProcessTarget):
    """etcd, one member per node: the command line, the readiness check (a linearizable read
    answers: a leader and a quorum), the client and the leader; the process lifecycle is
    ProcessTarget's."""

    name = "etcd"
    description = "etcd (Debian's etcd-server) through its v3 JSON gateway"
    speaks = frozenset({"read", "write", "cas"}) | LOCK_FS
    default_workload = "register"
    elects_leader = True
    options = (
        Option(
            "serializable-reads",
            "bool",
            False,
            "serve reads from the local member (serializable), not through a quorum",
            label="serializable",
        ),
    )
    # `<workdir>/etcd.data`, `etcd.log`, `etcd.pid`, as before there was a base class
    data_name = "etcd.data"
    log_name = "etcd.log"
    pid_name = "etcd.pid"
    port = CLIENT_PORT
    ready_timeout = READY_TIMEOUT

    def __init__(self, serializable_reads: bool = False, client_timeout: float = 2.0):
        super().__init__(serializable_reads=serializable_reads)
        self.serializable_reads = serializable_reads
        self.client_timeout = client_timeout
        self.version = "unknown"
        self.leftovers = []

    def home(self, node: Node) -> str:
        return node.workdir.rstrip("/")

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        initial = ",".join(f"{n.name}=http://{n.address}:{PEER_PORT}" for n in cluster.nodes)
        client_url = f"http://{node.address}:{CLIENT_PORT}"
        peer_url = f"http://{node.address}:{PEER_PORT}"
        return [
            BINARY,
            "--name", node.name,
            "--data-dir", self.data_dir(node),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"dsj-{cluster.name}",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]  # fmt: skip

    def install(self, cluster: Cluster, node: Node) -> str | None:
        """etcd on the node (apt-get as root when missing), and Debian's own etcd service
        stopped: ours must own the ports."""
        remote = cluster.remote(node.name)
        if remote.run([BINARY, "--version"], timeout=30, check=False).exit != 0:
            require_binary(remote, BINARY, PACKAGE)
            remote.run(["systemctl", "disable", "--now", "etcd"], timeout=60, check=False)
        return require_binary(remote, BINARY, version_pattern=r"etcd Version:\s*(\S+)")

    def ready(self, cluster: Cluster, node: Node) -> bool:
        """A linearizable read answers: the member has a leader and a quorum."""
        try:
            call(node.address, "/kv/range", {"key": _b64("dsj/ready")}, 2.0)
        except Exception:  # noqa: BLE001 - not yet
            return False
        return True

    def start(self, cluster: Cluster, node: str) -> None:
        super().start(cluster, node)
        daemon.wait_for_port(cluster.node(node).address, CLIENT_PORT, timeout=30.0)

    def setup(self, cluster: Cluster) -> None:
        super().setup(cluster)
        self.start_resource(cluster)

    def client(self, cluster: Cluster, node: str) -> Client:
        if self.resource is not None:
            writes_to, direct = self.lock_routes(cluster, node)
            return EtcdLockClient(
                cluster.node(node).address, self.client_timeout, writes_to, direct, node
            )
        return EtcdClient(cluster.node(node).address, self.client_timeout, self.serializable_reads)

    # -- leader --------------------------------------------------------------------------

    def leader(self, cluster: Cluster) -> str | None:
        """The leader named by the node that reports the highest raft term.

        Each node's `/v3/maintenance/status` gives its member id and the leader id it follows;
        a member list maps ids to names (we name members after nodes). A deposed leader on the
        minority side reports an older term, so the highest term wins."""

        def status(node: str) -> dict[str, Any] | None:
            try:
                return call(cluster.node(node).address, "/maintenance/status", {}, 1.0)
            except Exception:
                return None

        with ThreadPoolExecutor(max_workers=max(1, len(cluster.nodes))) as pool:
            answers = dict(zip(cluster.names, pool.map(status, cluster.names), strict=True))
        ids: dict[str, str] = {}
        best: tuple[int, str] | None = None
        for node, doc in answers.items():
            if not doc:
                continue
            ids[str(doc.get("header", {}).get("member_id", ""))] = node
            leader_id = str(doc.get("leader", "0"))
            term = int(doc.get("raftTerm", doc.get("header", {}).get("raft_term", 0)) or 0)
            if leader_id != "0" and (best is None or term > best[0]):
                best = (term, leader_id)
        if best is None:
            return None
        if best[1] in ids:
            return ids[best[1]]
        for node, doc in answers.items():  # the leader itself did not answer: ask for names
            if doc:
                try:
                    members = call(cluster.node(node).address, "/cluster/member/list", {}, 1.0)
                except Exception:
                    continue
                for m in members.get("members", []):
                    if str(m.get("ID")) == best[1] and m.get("name") in cluster.names:
                        return m["name"]
        return None
