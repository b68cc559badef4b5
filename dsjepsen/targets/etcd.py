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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster import daemon
from dsjepsen.cluster.control.base import Remote, RemoteError
from dsjepsen.errors import HarnessError
from dsjepsen.options import Option
from dsjepsen.targets.base import Client, Target
from dsjepsen.targets.clients import HttpJson, NotSent

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
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


@dataclasses.dataclass(frozen=True)
class Paths:
    data: str
    log: str
    pid: str


class EtcdTarget(Target):
    name = "etcd"
    description = "etcd (Debian's etcd-server) through its v3 JSON gateway"
    speaks = frozenset({"read", "write", "cas"})
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

    def __init__(self, serializable_reads: bool = False, client_timeout: float = 2.0):
        self.serializable_reads = serializable_reads
        self.client_timeout = client_timeout
        self.version = "unknown"
        #: what setup found of earlier runs and removed (see HttpServerTarget.leftovers)
        self.leftovers: list[dict[str, Any]] = []

    # -- layout --------------------------------------------------------------------------

    @staticmethod
    def paths(cluster: Cluster, node: str) -> Paths:
        w = cluster.node(node).workdir.rstrip("/")
        return Paths(data=f"{w}/etcd.data", log=f"{w}/etcd.log", pid=f"{w}/etcd.pid")

    def argv(self, cluster: Cluster, node: str) -> list[str]:
        me = cluster.node(node)
        initial = ",".join(f"{n.name}=http://{n.address}:{PEER_PORT}" for n in cluster.nodes)
        client_url = f"http://{me.address}:{CLIENT_PORT}"
        peer_url = f"http://{me.address}:{PEER_PORT}"
        return [
            BINARY,
            "--name", node,
            "--data-dir", self.paths(cluster, node).data,
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

    # -- lifecycle -----------------------------------------------------------------------

    def _each(self, cluster: Cluster, fn) -> None:
        errors = []
        with ThreadPoolExecutor(max_workers=max(1, len(cluster.nodes))) as pool:
            futures = {n: pool.submit(fn, n) for n in cluster.names}
            for n, fut in futures.items():
                try:
                    fut.result()
                except Exception as e:
                    errors.append(str(e) if n in str(e) else f"node {n}: {e}")
        if errors:
            raise HarnessError("; ".join(errors))

    def install(self, remote: Remote) -> str:
        """Make sure etcd is on the node (apt-get as root when missing); return its version."""
        res = remote.run([BINARY, "--version"], timeout=30, check=False)
        if res.exit != 0:
            uid = remote.run(["id", "-u"], timeout=30, check=False).stdout.strip()
            if uid != "0":
                raise HarnessError(
                    f"node {remote.node.name}: etcd is not installed and we are not root there; "
                    f"install it with: apt-get install {PACKAGE}"
                )
            remote.run(
                ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
                timeout=900,
                env={"DEBIAN_FRONTEND": "noninteractive"},
            )
            # Debian's package starts its own etcd service; ours must own the ports.
            remote.run(["systemctl", "disable", "--now", "etcd"], timeout=60, check=False)
            res = remote.run([BINARY, "--version"], timeout=30, check=False)
            if res.exit != 0:
                raise HarnessError(
                    f"node {remote.node.name}: etcd does not run even after apt-get install "
                    f"{PACKAGE}: {(res.stderr or res.stdout).strip()[:200]}"
                )
        m = re.search(r"etcd Version:\s*(\S+)", res.stdout)
        return m.group(1) if m else "unknown"

    def setup(self, cluster: Cluster) -> None:
        """A clean slate first (an earlier run whose controller died leaves its etcd members
        running, maybe paused, with their data: a new member must never join them), on every
        node before any new member starts; then start them all and wait for a quorum."""
        versions: dict[str, str] = {}
        found: dict[str, dict[str, Any]] = {}

        def prepare(node: str) -> None:
            remote = cluster.remote(node)
            versions[node] = self.install(remote)
            p = self.paths(cluster, node)
            got = daemon.clear_leftovers(
                remote,
                cluster.node(node).workdir,
                pidfiles=[p.pid],
                remove=[p.data],
                rotate=[p.log],
            )
            if got["processes"] or [x for x in got["removed"] if x != p.log]:
                found[node] = got

        self._each(cluster, prepare)
        self.leftovers = [found[n] for n in cluster.names if n in found]
        for got in self.leftovers:
            log.warning("etcd: %s", daemon.describe_leftovers(got))
        if not self.leftovers:
            log.info("etcd: no leftovers of earlier runs on %s", ", ".join(cluster.names))
        self.version = sorted(set(versions.values()))[0] if versions else "unknown"
        self._each(cluster, lambda n: self._start(cluster, n, wait=False))
        self.wait_ready(cluster)

    def wait_ready(self, cluster: Cluster, timeout: float = READY_TIMEOUT) -> None:
        """Until every node answers a linearizable read (so it has a leader and a quorum)."""
        deadline = time.monotonic() + timeout
        pending = list(cluster.names)
        last: dict[str, str] = {}
        while pending and time.monotonic() < deadline:
            for node in list(pending):
                try:
                    call(cluster.node(node).address, "/kv/range", {"key": _b64("dsj/ready")}, 2.0)
                    pending.remove(node)
                except Exception as e:
                    last[node] = str(e) or type(e).__name__
            if pending:
                time.sleep(0.3)
        if pending:
            details = "; ".join(f"{n}: {last.get(n, '?')}" for n in pending)
            raise HarnessError(
                f"etcd not ready within {timeout:g}s on {', '.join(pending)} ({details}); "
                f"see {self.paths(cluster, pending[0]).log} on {pending[0]}"
            )

    def _start(self, cluster: Cluster, node: str, wait: bool = True) -> None:
        p = self.paths(cluster, node)
        daemon.start_daemon(
            cluster.remote(node),
            self.argv(cluster, node),
            pidfile=p.pid,
            logfile=p.log,
            cwd=cluster.node(node).workdir,
        )
        if wait:
            daemon.wait_for_port(cluster.node(node).address, CLIENT_PORT, timeout=30.0)

    def teardown(self, cluster: Cluster) -> None:
        def one(node: str) -> None:
            remote = cluster.remote(node)
            p = self.paths(cluster, node)
            daemon.stop_daemon(remote, p.pid)
            remote.run(["rm", "-rf", "--", p.data], timeout=60)

        self._each(cluster, one)

    def start(self, cluster: Cluster, node: str) -> None:
        self._start(cluster, node, wait=True)

    def kill(self, cluster: Cluster, node: str) -> None:
        remote = cluster.remote(node)
        pidfile = self.paths(cluster, node).pid
        if not daemon.signal_daemon(remote, pidfile, "KILL"):
            raise HarnessError(f"node {node}: etcd is not running, nothing to kill")
        deadline = time.monotonic() + 10.0
        while daemon.daemon_running(remote, pidfile):
            if time.monotonic() > deadline:
                raise HarnessError(f"node {node}: etcd still running 10s after SIGKILL")
            time.sleep(0.05)

    def pause(self, cluster: Cluster, node: str) -> None:
        if not daemon.signal_daemon(cluster.remote(node), self.paths(cluster, node).pid, "STOP"):
            raise HarnessError(f"node {node}: etcd is not running, nothing to pause")

    def resume(self, cluster: Cluster, node: str) -> None:
        # Not running is fine: resuming is part of healing, which must be idempotent.
        daemon.signal_daemon(cluster.remote(node), self.paths(cluster, node).pid, "CONT")

    def wipe(self, cluster: Cluster, node: str) -> None:
        cluster.remote(node).run(["rm", "-rf", "--", self.paths(cluster, node).data], timeout=60)

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        return [self.paths(cluster, node).log]

    def pid(self, cluster: Cluster, node: str) -> int | None:
        try:
            return daemon.daemon_pid(cluster.remote(node), self.paths(cluster, node).pid)
        except RemoteError:
            return None

    def client(self, cluster: Cluster, node: str) -> Client:
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
