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

`--redis-failover sentinel`: a Redis Sentinel beside every server (`redis-server --sentinel`,
quorum a majority), which promotes a replica when the primary is unreachable for
`--redis-down-after-ms`. A client asks its own node's Sentinel where the primary is before
every command, as a Sentinel-aware client library does, and its writes' completions name the
node that acknowledged them. This is the setup of Jepsen's 2013 Redis analysis: with the
primary cut off on the minority side, clients there keep writing to it and it keeps
acknowledging; the majority promotes a replica; at the heal the old primary becomes a replica of
the new one and drops every write it took meanwhile. The g-set workload (SADD, SMEMBERS) shows
it as lost elements, each with the node that acknowledged it.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster.daemon import start_daemon, stop_daemon, wait_for_port
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.options import Option
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import NotSent, completed, describe, served_by
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
FAILOVERS = ("none", "sentinel")
SENTINEL_PORT = 26379
#: the name the Sentinels monitor the primary by
MASTER = "dsj"
#: the g-set workload's ops
ADD, READ_SET = "add", "read-set"
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


class FixedPrimary:
    """The primary is the first node, always (no failover)."""

    def __init__(self, host: str, name: str, timeout: float, port: int = PORT) -> None:
        self.conn, self.name = Resp(host, port, timeout), name

    def primary(self) -> tuple[Resp, str]:
        return self.conn, self.name

    def close(self) -> None:
        self.conn.close()


class SentinelPrimary:
    """The primary as the client's own node's Sentinel names it, asked before every command
    (a Sentinel-aware client asks on every reconnect; asking every time keeps the history
    close to what that Sentinel believed). One connection per primary it was told of."""

    def __init__(self, sentinel: str, names: dict[str, str], timeout: float) -> None:
        self.sentinel = Resp(sentinel, SENTINEL_PORT, timeout)
        self.names, self.timeout = names, timeout
        self.conns: dict[str, Resp] = {}

    def primary(self) -> tuple[Resp, str]:
        """Raises NoPrimary when the Sentinel cannot say (no data command was sent)."""
        try:
            answer = self.sentinel.call("SENTINEL", "get-master-addr-by-name", MASTER)
        except (NotSent, RespError, OSError, ValueError) as e:
            raise NoPrimary(f"sentinel: {describe(e)}") from e
        if not isinstance(answer, list) or len(answer) != 2:
            raise NoPrimary(f"sentinel knows no primary (answered {answer!r})")
        host = str(answer[0])
        conn = self.conns.get(host)
        if conn is None:
            conn = self.conns[host] = Resp(host, int(answer[1]), self.timeout)
        return conn, self.names.get(host, host)

    def close(self) -> None:
        self.sentinel.close()
        for conn in self.conns.values():
            conn.close()


class NoPrimary(Exception):
    """No primary to send to: the command was never sent."""


Route = FixedPrimary | SentinelPrimary


class RedisClient(Client):
    """The register workload (read / write / cas) and the g-set workload (add / read-set):
    writes to the primary, reads as --redis-reads says. A write's completion names the node
    that acknowledged it (under Sentinel failover it is not always the first node)."""

    def __init__(self, route: Route, own: str, timeout: float, reads: str) -> None:
        self.route = route
        self.own = Resp(own, PORT, timeout) if reads == "any" else None

    def close(self) -> None:
        self.route.close()
        if self.own is not None:
            self.own.close()

    def invoke(self, op: Op) -> Op:
        key = f"dsj:{op.key}"
        try:
            primary, name = self.route.primary()
        except NoPrimary as e:
            return completed(op, "fail", error=str(e))
        reads = self.own or primary
        try:
            if op.f == "read":
                raw = reads.call("GET", key)
                return completed(op, "ok", value=None if raw is None else int(raw))
            if op.f == READ_SET:
                raw = reads.call("SMEMBERS", f"dsj:set:{op.key}")
                return completed(op, "ok", value=sorted(int(x) for x in raw or []))
            if op.f == "write":
                primary.call("SET", key, op.value)
                return served_by(completed(op, "ok"), {"node": name})
            if op.f == ADD:
                primary.call("SADD", f"dsj:set:{op.key}", op.value)
                return served_by(completed(op, "ok"), {"node": name})
            if op.f == "cas":
                old, new = op.value
                if primary.call("EVAL", CAS, 1, key, old, new) == 1:
                    return served_by(completed(op, "ok"), {"node": name})
                return completed(op, "fail", error="cas-mismatch")
            return completed(op, "fail", error=f"unsupported f {op.f!r}")
        except NotSent as e:
            return completed(op, "fail", error=f"not sent: {e}")
        except RespError as e:  # refused (READONLY, LOADING, ...): it did not happen
            return completed(op, "fail", error=str(e))
        except (OSError, ValueError) as e:  # sent, outcome unknown; a read changed nothing
            reading = op.f in ("read", READ_SET)
            return completed(op, "fail" if reading else "info", error=describe(e))


class RedisLockClient(LockClient):
    """The lock workload on the primary: SET NX PX, or its fenced variant (module docstring)."""

    def __init__(
        self,
        route: Route,
        timeout: float,
        writes_to: tuple[str, int],
        direct: tuple[str, int],
        node: str | None = None,
        fenced: bool = False,
    ) -> None:
        super().__init__(writes_to, timeout, node, direct)
        self.route = route
        self.fenced = fenced

    def close_lock(self) -> None:
        self.route.close()

    def _call(self, *args: Any) -> Any:
        try:
            return self.route.primary()[0].call(*args)
        except NoPrimary as e:
            return Answer("fail", error=str(e))
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
    speaks = frozenset({"read", "write", "cas", ADD, READ_SET}) | LOCK_FS
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
        Option(
            "redis-failover",
            "str",
            "none",
            "redis: none (n1 stays the primary), or sentinel (a Redis Sentinel on every node "
            "promotes a replica when the primary is unreachable; clients ask their node's "
            "Sentinel where the primary is)",
            choices=FAILOVERS,
            label="failover",
        ),
        Option(
            "redis-down-after-ms",
            "int",
            1000,
            "redis, --redis-failover sentinel: how long the primary must be unreachable before "
            "the Sentinels fail over (Sentinel's down-after-milliseconds)",
            minimum=100,
            maximum=600_000,
            metavar="MS",
        ),
    )

    def __init__(
        self,
        redis_reads: str = "primary",
        redis_persistence: str = "aof-always",
        redis_lock: str = "setnx",
        redis_failover: str = "none",
        redis_down_after_ms: int = 1000,
        client_timeout: float = 2.0,
    ) -> None:
        super().__init__(
            redis_reads=redis_reads,
            redis_persistence=redis_persistence,
            redis_lock=redis_lock,
            redis_failover=redis_failover,
            redis_down_after_ms=redis_down_after_ms,
        )
        self.reads = redis_reads
        self.persistence = redis_persistence
        self.lock = redis_lock
        self.failover = redis_failover
        self.down_after_ms = redis_down_after_ms
        self.client_timeout = client_timeout

    @classmethod
    def check_options(cls, **values: Any) -> None:
        if values.get("redis_failover") == "sentinel" and values.get("redis_lock") == "redlock":
            raise ConfigError(
                "--redis-failover sentinel cannot go with --redis-lock redlock: Redlock's "
                "instances are independent primaries, with nothing to fail over"
            )

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
        if self.sentinels:
            self.start_sentinels(cluster)
        self.start_resource(cluster)

    # -- Sentinel -------------------------------------------------------------------------------

    @property
    def sentinels(self) -> bool:
        return self.failover == "sentinel" and not self.independent

    def sentinel_paths(self, node: Node) -> tuple[str, str, str]:
        """(config file, pidfile, log) of the node's Sentinel, beside its server's."""
        home = self.home(node)
        return f"{home}/sentinel.conf", f"{home}/sentinel.pid", f"{home}/sentinel.log"

    def sentinel_conf(self, cluster: Cluster, node: Node) -> str:
        """A fresh config each run (Sentinel rewrites its file with what it learns): it
        monitors the first node, with a majority quorum."""
        quorum = len(cluster.nodes) // 2 + 1
        return "\n".join([
            f"port {SENTINEL_PORT}",
            f"bind {node.address}",
            "protected-mode no",
            f"dir {self.home(node)}",
            f"sentinel monitor {MASTER} {cluster.nodes[0].address} {PORT} {quorum}",
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}",
            f"sentinel failover-timeout {MASTER} {max(3000, 3 * self.down_after_ms)}",
            f"sentinel parallel-syncs {MASTER} 1",
            "",
        ])  # fmt: skip

    def start_sentinels(self, cluster: Cluster) -> None:
        """A Sentinel on every node; returns once every one knows the primary, its replicas
        and the other Sentinels (before that a failover could not be agreed)."""

        def start(node: Node) -> None:
            conf, pid, logfile = self.sentinel_paths(node)
            remote = cluster.remote(node.name)
            remote.run(["sh", "-c", 'cat > "$1"', "sh", conf], input=self.sentinel_conf(cluster, node), timeout=30.0)  # fmt: skip
            start_daemon(
                remote, ["redis-server", conf, "--sentinel"], pidfile=pid, logfile=logfile,
                cwd=self.home(node),
            )  # fmt: skip

        self.each(cluster, start)
        for node in cluster.nodes:
            wait_for_port(node.address, SENTINEL_PORT, timeout=self.ready_timeout)
        others = len(cluster.nodes) - 1
        deadline = time.monotonic() + self.ready_timeout
        while True:
            views = {n.name: self._sentinel_view(n) for n in cluster.nodes}
            late = [
                name for name, v in views.items()
                if v.get("num-other-sentinels") != str(others) or v.get("num-slaves") != str(others)
            ]  # fmt: skip
            if not late:
                return
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"redis: the Sentinels on {', '.join(late)} did not find the {others} "
                    f"replicas and {others} other Sentinels within {self.ready_timeout:g}s; "
                    f"see {self.sentinel_paths(cluster.node(late[0]))[2]} on {late[0]}"
                )
            time.sleep(0.5)

    def _sentinel_view(self, node: Node) -> dict[str, str]:
        """`SENTINEL MASTER dsj` on the node's Sentinel, as a dict; empty when it does not
        answer."""
        conn = Resp(node.address, SENTINEL_PORT, 1.0)
        try:
            flat = conn.call("SENTINEL", "MASTER", MASTER)
        except (NotSent, RespError, OSError, ValueError):
            return {}
        finally:
            conn.close()
        if not isinstance(flat, list):
            return {}
        return {str(k): str(v) for k, v in zip(flat[::2], flat[1::2], strict=False)}

    def sentinel_primary(self, cluster: Cluster, node: Node) -> str | None:
        """The node the Sentinel on `node` names as the primary, or None."""
        view = self._sentinel_view(node)
        by_address = {n.address: n.name for n in cluster.nodes}
        return by_address.get(view.get("ip", ""))

    def primary(self, cluster: Cluster) -> Node | None:
        """The primary: the first node without failover; with it, the one a majority of the
        Sentinels name (None while they do not agree)."""
        if not self.sentinels:
            return cluster.nodes[0]
        named = [self.sentinel_primary(cluster, n) for n in cluster.nodes]
        for name in set(named) - {None}:
            if named.count(name) > len(cluster.nodes) // 2:
                return cluster.node(str(name))
        return None

    def teardown(self, cluster: Cluster) -> None:
        if self.sentinels:  # first, so that none reconfigures a server being stopped
            self.each(
                cluster,
                lambda n: stop_daemon(cluster.remote(n.name), self.sentinel_paths(n)[1]),
            )
        super().teardown(cluster)

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        logs: list[str] = super().log_files(cluster, node)
        if self.sentinels:
            logs.append(self.sentinel_paths(cluster.node(node))[2])
        return logs

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
        before that a replica read is stale by design, not by a bug. Under Sentinel failover,
        also every Sentinel names the same primary (until then a client on the node whose
        Sentinel has not heard would read from the old one)."""
        if self.independent:
            return all(self.ready(cluster, n) for n in cluster.nodes)
        first = self.primary(cluster)
        if first is None:
            return False
        if self.sentinels and any(
            self.sentinel_primary(cluster, n) != first.name for n in cluster.nodes
        ):
            return False
        try:
            primary = self._info(first)
            if primary.get("role") != "master":
                return False
            offset = int(primary.get("master_repl_offset", "0"))
            for node in [n for n in cluster.nodes if n.name != first.name]:
                info = self._info(node)
                if info.get("master_link_status") != "up":
                    return False
                if int(info.get("slave_repl_offset", "-1")) < offset:
                    return False
        except (OSError, RespError, NotSent, ValueError):
            return False
        return True

    def leader(self, cluster: Cluster) -> str | None:
        primary = self.primary(cluster)
        if primary is None:
            return None
        return primary.name if port_open(primary.address, PORT, 0.5) else None

    def route(self, cluster: Cluster, node: str) -> Route:
        """How a client bound to `node` finds the primary."""
        if self.sentinels:
            names = {n.address: n.name for n in cluster.nodes}
            return SentinelPrimary(cluster.node(node).address, names, self.client_timeout)
        first = cluster.nodes[0]
        return FixedPrimary(first.address, first.name, self.client_timeout)

    def client(self, cluster: Cluster, node: str) -> Client:
        if self.resource is not None and self.independent:
            writes_to, direct = self.lock_routes(cluster, node)
            instances = [(n.address, PORT) for n in cluster.nodes]
            return RedlockClient(instances, self.client_timeout, writes_to, direct, node)
        if self.resource is not None:
            writes_to, direct = self.lock_routes(cluster, node)
            return RedisLockClient(
                self.route(cluster, node),
                self.client_timeout,
                writes_to,
                direct,
                node,
                fenced=self.lock == "fenced",
            )
        own = cluster.node(node).address
        return RedisClient(self.route(cluster, node), own, self.client_timeout, self.reads)
