"""Redis as a built-in target (issue 29): Debian's redis-server, one process per node, n1 the
primary and every other node its replica (`replicaof`), started through the nodes' Remotes.
It grew from the example plugin's one-file Redis target (tests/plugin_example).

The client speaks RESP over a socket of its own and sends every command once (no library,
so no retries behind the history's back: targets/clients.py says why), keeping Jepsen's rule:
`fail` only when the command certainly did not happen (never sent, or Redis refused it),
`info` when it may have; a read that went wrong changed nothing and is `fail`.

- the register workload: read / write / cas (cas as one Lua script) on the primary; with
  `--redis-reads any` reads go to the client's own node, a replica, which Redis documents as
  stale (asynchronous replication), and the linearizable checker finds it;
- the lock workload (docs/locks.md): `SET lock <holder> NX PX <lease>`, Redis's documented
  single-instance lock, released by compare-and-delete (a Lua script): no fencing token, so a
  holder paused past its lease writes after the next one and no fence can stop it. With
  `--redis-lock fenced` the same SET runs in a Lua script that also INCRs a token counter,
  atomically on the primary, and hands that number out as the fencing token. With
  `--redis-lock redlock` every node is an independent primary and the lock is Redlock over
  them (`RedlockClient`): no token either, and each instance expires the key by its own clock.

`--redis-persistence`: `aof-always` (the default: every write fsynced before the answer, a
kill loses nothing acknowledged), `aof-everysec` (up to a second lost), `none`.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

from dsjepsen.options import Option
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import NotSent, completed, describe
from dsjepsen.targets.fenced.resource import FencedLockTarget
from dsjepsen.targets.lock_client import LOCK_FS, Answer, LockClient
from dsjepsen.targets.process import ProcessTarget, port_open, require_binary

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node
    from dsjepsen.history import Op

PORT = 6379
CAS = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "redis.call('set', KEYS[1], ARGV[2]) return 1 else return 0 end"
)
#: compare-and-delete: only the holder's own name releases the lock
RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
    "else return 0 end"
)
#: SET NX PX and, when it took the lock, the next fencing token, in one atomic script
FENCED_ACQUIRE = (
    "if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "return redis.call('incr', KEYS[2]) else return 0 end"
)
LOCK_KEY, TOKEN_KEY = "dsj-lock", "dsj-lock-token"
PERSISTENCE = {
    "aof-always": ["--appendonly", "yes", "--appendfsync", "always"],
    "aof-everysec": ["--appendonly", "yes", "--appendfsync", "everysec"],
    "none": ["--appendonly", "no"],
}
LOCKS = ("setnx", "fenced", "redlock")
#: Redlock's allowance for clock drift: 1% of the lease plus 2 ms (antirez's reference)
DRIFT_FACTOR, DRIFT_MS = 0.01, 2


class RespError(Exception):
    """Redis answered with an error: the command was refused, it did not happen."""


class Resp:
    """One RESP connection, sending each command once."""

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

    def _fill(self, n: int) -> None:
        assert self.sock is not None
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by redis")
            self.buf += chunk

    def _line(self) -> bytes:
        assert self.sock is not None
        while b"\r\n" not in self.buf:
            self._fill(len(self.buf) + 1)
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
            self._fill(n + 2)
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ConnectionError(f"not RESP: {line[:80]!r}")


class RedisClient(Client):
    """The register workload: writes and cas to the primary, reads as --redis-reads says."""

    def __init__(self, primary: str, own: str, timeout: float, reads: str) -> None:
        self.primary = Resp(primary, PORT, timeout)
        self.reads = Resp(own, PORT, timeout) if reads == "any" else self.primary

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
                if self.primary.call("EVAL", CAS, 1, key, old, new) == 1:
                    return completed(op, "ok")
                return completed(op, "fail", error="cas-mismatch")
            return completed(op, "fail", error=f"unsupported f {op.f!r}")
        except NotSent as e:
            return completed(op, "fail", error=f"not sent: {e}")
        except RespError as e:  # refused (READONLY, LOADING, ...): it did not happen
            return completed(op, "fail", error=str(e))
        except (OSError, ValueError) as e:  # sent, outcome unknown; a read changed nothing
            return completed(op, "fail" if op.f == "read" else "info", error=describe(e))


class RedisLockClient(LockClient):
    """The lock workload on the primary: SET NX PX, or its fenced variant (module docstring)."""

    def __init__(
        self,
        primary: str,
        timeout: float,
        writes_to: tuple[str, int],
        direct: tuple[str, int],
        node: str | None = None,
        fenced: bool = False,
        port: int = PORT,
    ) -> None:
        super().__init__(writes_to, timeout, node, direct)
        self.resp = Resp(primary, port, timeout)
        self.fenced = fenced

    def close_lock(self) -> None:
        self.resp.close()

    def _call(self, *args: Any) -> Any:
        try:
            return self.resp.call(*args)
        except NotSent as e:
            return Answer("fail", error=f"not sent: {e}")
        except RespError as e:
            return Answer("fail", error=str(e))
        except OSError as e:
            return Answer("info", error=describe(e))

    def try_acquire(self, holder: str, lease_ms: int) -> Answer:
        if self.fenced:
            got = self._call("EVAL", FENCED_ACQUIRE, 2, LOCK_KEY, TOKEN_KEY, holder, lease_ms)
        else:
            got = self._call("SET", LOCK_KEY, holder, "NX", "PX", lease_ms)
        if isinstance(got, Answer):
            return got
        if self.fenced and isinstance(got, int) and got > 0:
            return Answer("ok", token=got)
        if not self.fenced and got == "OK":
            return Answer("ok")
        if got is None or got == 0:
            return Answer("fail", error={"refused": "held"})
        return Answer("info", error=f"unexpected answer {got!r}")

    def try_release(self, holder: str, token: int | None) -> Answer:
        got = self._call("EVAL", RELEASE, 1, LOCK_KEY, holder)
        if isinstance(got, Answer):
            return got
        if got == 1:
            return Answer("ok")
        return Answer("fail", error={"refused": "not the holder (the lease ran out)"})


class RedlockClient(LockClient):
    """Redlock (antirez, "Distributed locks with Redis") over independent primaries, one per
    node: SET NX PX on every one in turn; held when a majority said OK and the lease, less the
    time that took and the clock drift allowance, is still positive (that remainder is what the
    holder believes: `Answer.valid_for`). Otherwise every instance is asked to release. An
    acquire whose instances did not all answer may have taken a majority: info, not fail."""

    def __init__(
        self,
        instances: list[tuple[str, int]],
        timeout: float,
        writes_to: tuple[str, int],
        direct: tuple[str, int],
        node: str | None = None,
    ) -> None:
        super().__init__(writes_to, timeout, node, direct)
        # each instance gets a share of the client's time, as Redlock asks (a short timeout
        # per instance, so that one that is down does not use up the lease)
        share = max(0.05, timeout / (2 * max(1, len(instances))))
        self.instances = [Resp(host, port, share) for host, port in instances]

    def close_lock(self) -> None:
        for r in self.instances:
            r.close()

    def _each(self, *args: Any) -> tuple[list[Any], int]:
        """Every instance's answer (None when it gave none) and how many gave none."""
        answers: list[Any] = []
        unknown = 0
        for r in self.instances:
            try:
                answers.append(r.call(*args))
            except NotSent:
                answers.append(None)
            except RespError:
                answers.append(None)
            except OSError:
                answers.append(None)
                unknown += 1
        return answers, unknown

    def try_acquire(self, holder: str, lease_ms: int) -> Answer:
        start = time.monotonic()
        answers, unknown = self._each("SET", LOCK_KEY, holder, "NX", "PX", lease_ms)
        took = time.monotonic() - start
        oks = sum(1 for a in answers if a == "OK")
        quorum = len(self.instances) // 2 + 1
        valid = lease_ms / 1000.0 - took - (lease_ms * DRIFT_FACTOR + DRIFT_MS) / 1000.0
        if oks >= quorum and valid > 0:
            return Answer("ok", valid_for=took + valid)
        self._each("EVAL", RELEASE, 1, LOCK_KEY, holder)
        detail = {"refused": f"{oks} of {len(self.instances)} instances", "unanswered": unknown}
        if unknown and oks + unknown >= quorum:
            return Answer("info", error=detail)
        return Answer("fail", error=detail)

    def try_release(self, holder: str, token: int | None) -> Answer:
        answers, unknown = self._each("EVAL", RELEASE, 1, LOCK_KEY, holder)
        if sum(1 for a in answers if a == 1) >= len(self.instances) // 2 + 1:
            return Answer("ok")
        if unknown:
            return Answer("info", error={"released on": answers, "unanswered": unknown})
        return Answer("fail", error={"refused": "not the holder on a majority", "answers": answers})


class RedisTarget(FencedLockTarget, ProcessTarget):
    name = "redis"
    description = "Redis (Debian's redis-server): n1 the primary, the other nodes its replicas"
    speaks = frozenset({"read", "write", "cas"}) | LOCK_FS
    default_workload = "register"
    elects_leader = True  # the primary: leader() names it while it answers
    port = PORT
    log_name = "redis.log"
    pid_name = "redis.pid"
    options = (
        Option(
            "redis-reads",
            "str",
            "primary",
            "redis: where reads go: primary, or any (the client's own node, a replica: stale "
            "reads, as Redis documents)",
            choices=("primary", "any"),
            label="reads",
        ),
        Option(
            "redis-persistence",
            "str",
            "aof-always",
            "redis: aof-always (fsync every write), aof-everysec, or none",
            choices=tuple(PERSISTENCE),
            label="persistence",
        ),
        Option(
            "redis-lock",
            "str",
            "setnx",
            "redis, lock workload: setnx (SET NX PX, no fencing token), fenced (the same "
            "in a Lua script that also hands out an INCR counter as the token), or redlock "
            "(every node an independent primary, a majority of them held)",
            choices=LOCKS,
            label="lock",
        ),
    )

    def __init__(
        self,
        redis_reads: str = "primary",
        redis_persistence: str = "aof-always",
        redis_lock: str = "setnx",
        client_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            redis_reads=redis_reads, redis_persistence=redis_persistence, redis_lock=redis_lock
        )
        self.reads = redis_reads
        self.persistence = redis_persistence
        self.lock = redis_lock
        self.client_timeout = client_timeout

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        argv = [
            "redis-server", "--port", str(PORT), "--bind", node.address,
            "--protected-mode", "no", "--dir", self.data_dir(node), "--save", "",
            *PERSISTENCE[self.persistence], "--daemonize", "no",
        ]  # fmt: skip
        primary = cluster.nodes[0]
        if node.name != primary.name and not self.independent:
            argv += ["--replicaof", primary.address, str(PORT)]
        return argv

    @property
    def independent(self) -> bool:
        """Redlock's instances are independent primaries: no replication at all."""
        return self.lock == "redlock" and self.resource is not None

    def cwd(self, cluster: Cluster, node: Node) -> str:
        return self.data_dir(node)  # made by the daemon helper before the server starts

    def install(self, cluster: Cluster, node: Node) -> str | None:
        return require_binary(cluster.remote(node.name), "redis-server", "redis-server", r"v=(\S+)")

    def setup(self, cluster: Cluster) -> None:
        super().setup(cluster)
        self.start_resource(cluster)

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
        if self.independent:
            return all(self.ready(cluster, n) for n in cluster.nodes)
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
        primary = cluster.nodes[0].address
        if self.resource is not None and self.independent:
            writes_to, direct = self.lock_routes(cluster, node)
            instances = [(n.address, PORT) for n in cluster.nodes]
            return RedlockClient(instances, self.client_timeout, writes_to, direct, node)
        if self.resource is not None:
            writes_to, direct = self.lock_routes(cluster, node)
            return RedisLockClient(
                primary,
                self.client_timeout,
                writes_to,
                direct,
                node,
                fenced=self.lock == "fenced",
            )
        return RedisClient(primary, cluster.node(node).address, self.client_timeout, self.reads)
