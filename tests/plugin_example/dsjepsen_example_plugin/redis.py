"""An example target started from its own binary, in one file: Redis (Debian's redis-server),
one process per node, n1 the primary and every other node its replica.

What it takes (docs/extending.md, "A target started from its own binary"): `ProcessTarget`
owns the node's files, the clean slate, start / kill / pause / resume, teardown and the logs;
this file says the command line, how to install it, when a node serves (`ready`), when the
replicas have caught up (`ready_for_final_reads`), which node leads, and the client, which
speaks RESP over a socket and keeps the fail / info rule: `fail` only when the request
certainly did not happen (never sent, or Redis refused it), `info` when it may have.

Writes go to the primary with `appendfsync always`, so a SIGKILL loses nothing acknowledged;
reads also go to the primary unless `--redis-replica-reads`, under which Redis documents
stale reads (asynchronous replication) and the register checker finds them.
"""

from __future__ import annotations

import socket
from typing import Any

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.history import Op
from dsjepsen.options import Option
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import NotSent, completed, describe
from dsjepsen.targets.process import ProcessTarget, port_open, require_binary

PORT = 6379
CAS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2]) return 1 else return 0 end"
)


class RespError(Exception):
    """Redis answered with an error: the command was refused, it did not happen."""


class Resp:
    """One RESP connection, sending each command once (no retries: see targets/clients.py)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.buf = b""

    def call(self, *args: Any) -> Any:
        """Send one command; NotSent when connecting failed (nothing was sent), RespError on
        Redis's refusal, OSError when it was sent and the outcome is unknown."""
        if self.sock is None:
            try:
                self.sock = socket.create_connection((self.host, self.port), self.timeout)
            except OSError as e:
                raise NotSent(describe(e)) from e
        words = [str(a).encode() for a in args]
        request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)
        try:
            self.sock.sendall(request)
            return self._reply()
        except RespError:
            raise
        except BaseException:
            self.close()  # a late answer must never be read as the next command's
            raise

    def _line(self) -> bytes:
        assert self.sock is not None
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by redis")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            assert self.sock is not None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed by redis")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise ConnectionError(f"not RESP: {line[:80]!r}")


class RedisClient(Client):
    """One worker's connections: to the primary, and to its own node for replica reads."""

    def __init__(self, primary: str, own: str, timeout: float, replica_reads: bool) -> None:
        self.primary = Resp(primary, PORT, timeout)
        self.reads = Resp(own, PORT, timeout) if replica_reads else self.primary

    def close(self) -> None:
        self.primary.close()
        self.reads.close()

    def invoke(self, op: Op) -> Op:
        key = f"dsj:{op.key}"
        try:
            if op.f == "read":
                raw = self.reads.call("GET", key)
                return completed(op, "ok", value=None if raw is None else int(raw))
            if op.f == "write":
                self.primary.call("SET", key, op.value)
                return completed(op, "ok")
            if op.f == "cas":
                old, new = op.value
                won = self.primary.call("EVAL", CAS, 1, key, old, new)
                if won == 1:
                    return completed(op, "ok")
                return completed(op, "fail", error="cas-mismatch")
            return completed(op, "fail", error=f"unsupported f {op.f!r}")
        except NotSent as e:
            return completed(op, "fail", error=f"not sent: {e}")
        except RespError as e:  # refused (READONLY, LOADING, ...): it did not happen
            return completed(op, "fail", error=str(e))
        except (OSError, ValueError) as e:  # sent, outcome unknown; a read changed nothing
            return completed(op, "fail" if op.f == "read" else "info", error=describe(e))


class RedisTarget(ProcessTarget):
    name = "example-redis"
    description = "Redis from its own binary: n1 primary, the others its replicas (example plugin)"
    speaks = frozenset({"read", "write", "cas"})
    default_workload = "register"
    elects_leader = True  # the primary: leader() names it while it answers
    port = PORT
    log_name = "redis.log"
    pid_name = "redis.pid"
    options = (
        Option(
            "redis-replica-reads",
            "bool",
            False,
            "read from the client's own node, a replica (stale reads: Redis replicates "
            "asynchronously)",
            label="replica-reads",
        ),
    )

    def __init__(self, redis_replica_reads: bool = False) -> None:
        super().__init__(redis_replica_reads=redis_replica_reads)
        self.replica_reads = redis_replica_reads
        self.client_timeout = 2.0

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        argv = [
            "redis-server", "--port", str(PORT), "--bind", node.address,
            "--protected-mode", "no", "--dir", self.data_dir(node), "--save", "",
            "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
        ]  # fmt: skip
        primary = cluster.nodes[0]
        if node.name != primary.name:
            argv += ["--replicaof", primary.address, str(PORT)]
        return argv

    def cwd(self, cluster: Cluster, node: Node) -> str:
        return self.data_dir(node)  # made by the daemon helper before the server starts

    def install(self, cluster: Cluster, node: Node) -> str | None:
        return require_binary(cluster.remote(node.name), "redis-server", "redis-server", r"v=(\S+)")

    def _info(self, node: Node) -> dict[str, str]:
        conn = Resp(node.address, PORT, 1.0)
        try:
            text = conn.call("INFO", "replication")
        finally:
            conn.close()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def ready(self, cluster: Cluster, node: Node) -> bool:
        if not port_open(node.address, PORT):
            return False
        try:
            info = self._info(node)
        except (OSError, RespError, NotSent):
            return False
        return info.get("role") == "master" or info.get("master_link_status") == "up"

    def ready_for_final_reads(self, cluster: Cluster) -> bool:
        """Every replica linked to the primary and caught up with its replication offset:
        before that a replica read is stale by design, not by a bug."""
        try:
            primary = self._info(cluster.nodes[0])
            offset = int(primary.get("master_repl_offset", "0"))
            for node in cluster.nodes[1:]:
                info = self._info(node)
                if info.get("master_link_status") != "up":
                    return False
                if int(info.get("slave_repl_offset", "-1")) < offset:
                    return False
        except (OSError, RespError, NotSent, ValueError):
            return False
        return True

    def leader(self, cluster: Cluster) -> str | None:
        primary = cluster.nodes[0]
        return primary.name if port_open(primary.address, PORT, 0.5) else None

    def client(self, cluster: Cluster, node: str) -> Client:
        return RedisClient(
            cluster.nodes[0].address,
            cluster.node(node).address,
            self.client_timeout,
            self.replica_reads,
        )
