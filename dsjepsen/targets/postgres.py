"""PostgreSQL as a target: one real PostgreSQL server (Debian's `postgresql`) on the first
node, n1, which every worker's client uses whatever node the worker is bound to, spoken to
with psycopg 3 at the isolation level `--isolation` names.

Why one server: what is tested here is PostgreSQL's transaction isolation and its crash
recovery, as Jepsen's own single-node PostgreSQL tests do; streaming replication is not set up
(docs/postgres.md). So every fault of the process families acts on n1's server whatever node
the nemesis named: a kill on n3 crashes the one database n3's clients use. The fault record
keeps the node the nemesis chose and carries the server's pid; completions name n1, the node
that served them.

A kill is a crash: the postmaster is stopped (so that it forks nothing more), then it and every
backend are SIGKILLed together (PostgreSQL's children are session leaders of their own, so a
signal to the postmaster's process group would miss them, and a backend left alive keeps the
shared memory the restarted postmaster must own). On start PostgreSQL replays its WAL.

PostgreSQL refuses to run as root: on a node where the harness is root, initdb and the server
run as the `postgres` system user (created when missing) through `setpriv`, which execs
without forking, so the daemon's pidfile names the postmaster itself.

The client keeps Jepsen's rule (docs/extending.md): each op is one SQL transaction at the
chosen level; a serialization failure (SQLSTATE 40001), a deadlock (40P01) or any error before
COMMIT was sent is `fail` (PostgreSQL rolls back a transaction that is never committed); an
error, a timeout or a lost connection while COMMIT is in flight is `info`, except for a
transaction that only read (it changed nothing, so "did not happen" is a true account of it).
No retries: psycopg never retries a statement, and a connection is discarded after any error.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import threading
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster import faultmount
from dsjepsen.cluster.daemon import clear_leftovers, daemon_pid, daemon_running, wait_for_port
from dsjepsen.errors import HarnessError
from dsjepsen.options import Option
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import check_no_retries, completed, describe, served_by
from dsjepsen.targets.process import ProcessTarget, port_open

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node
    from dsjepsen.history import Op

log = logging.getLogger("dsjepsen.target")

PORT = 5432
PACKAGE = "postgresql"
#: the system user the server runs as when the harness is root on the node
SYSTEM_USER = "postgres"
#: the database role and database the clients use (initdb's bootstrap superuser and database)
ROLE = "postgres"
DATABASE = "postgres"
ISOLATION_LEVELS = ("read-committed", "repeatable-read", "serializable")
LIST_TYPES = ("text", "array")
#: the values of --postgres-synchronous-commit (PostgreSQL has more: local, remote_write and
#: remote_apply differ from on only with a standby, which this target does not run)
SYNCHRONOUS_COMMIT = ("on", "off")
#: SQLSTATEs after which PostgreSQL has certainly rolled the transaction back
ROLLED_BACK = {"40001": "serialization failure", "40P01": "deadlock detected"}
#: the transactional workloads' table: list-append keeps each key's list in `val` as text
#: "1,2,3" (Jepsen's stolon / PostgreSQL append test) or in `vals` as int[]
#: (--postgres-list-type array); rw-register its value in `reg`
TXN_TABLE = "dsj_txn"
#: the bank's table: one balance per account
ACCOUNTS_TABLE = "dsj_accounts"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TXN_TABLE} (k int PRIMARY KEY, val text, vals int[], reg bigint)",
    f"CREATE TABLE IF NOT EXISTS {ACCOUNTS_TABLE} (id int PRIMARY KEY, balance bigint NOT NULL)",
)
#: the server's settings besides address, port and socket directory: small memory (the
#: machine runs other clusters), durable commits (the defaults, said out loud because a kill
#: test is about them), log lines that carry the time and the backend's pid
SERVER_SETTINGS = {
    "shared_buffers": "16MB",
    "max_connections": "200",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "log_line_prefix": "%m [%p] %q%a ",
    "log_min_messages": "warning",
    "logging_collector": "off",
}

# bank vocabulary (docs/postgres.md): a setup op and the two ops of Jepsen's bank workload
INIT_ACCOUNTS = "init-accounts"
TRANSFER = "transfer"
READ_ACCOUNTS = "read-accounts"
TXN = "txn"


class _Watchdog:
    """Ends a blocked exchange with the server after `timeout` seconds.

    psycopg waits for an answer without a deadline of its own, and a paused server (SIGSTOP)
    never answers; its kernel still acknowledges every packet, so TCP keepalives do not help
    either. Shutting the socket down from this thread makes the blocked call fail at once,
    with `fired` telling the client it was our timeout."""

    def __init__(self, fileno: int, timeout: float) -> None:
        self.fileno = fileno
        self.fired = False
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            sock = socket.socket(fileno=os.dup(self.fileno))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


@dataclasses.dataclass
class _Attempt:
    """Where one transaction got to: whether COMMIT was sent, and whether it wrote."""

    committing: bool = False
    wrote: bool = False


class PostgresClient(Client):
    """One worker's connection to the database on `db_node`, opened on first use and
    discarded after any error (the next op connects again)."""

    def __init__(
        self,
        address: str,
        db_node: str,
        *,
        isolation: str = "serializable",
        list_type: str = "text",
        timeout: float = 5.0,
        port: int = PORT,
    ) -> None:
        if isolation not in ISOLATION_LEVELS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_LEVELS)}")
        if list_type not in LIST_TYPES:
            raise ValueError(f"list_type must be one of {', '.join(LIST_TYPES)}")
        self.address = address
        self.db_node = db_node
        self.isolation = isolation
        self.list_type = list_type
        self.timeout = timeout
        self.port = port
        self.conn: Any = None

    # -- connection --------------------------------------------------------------------------

    def connect(self) -> Any:
        """A new connection (psycopg tries a single-address host once); raises on failure."""
        import psycopg  # here: only runs that use this target need the driver

        ms = int(self.timeout * 1000)
        conn = psycopg.connect(
            host=self.address,
            port=self.port,
            user=ROLE,
            dbname=DATABASE,
            connect_timeout=max(2, int(self.timeout)),
            autocommit=False,
            # the server ends a statement or an idle transaction we gave up on; later than our
            # own deadline, so that what a client records is always its own timeout
            options=(
                f"-c statement_timeout={2 * ms} -c idle_in_transaction_session_timeout={2 * ms}"
            ),
            application_name="dsjepsen",
        )
        check_no_retries(conn, "psycopg")
        conn.isolation_level = getattr(
            psycopg.IsolationLevel, self.isolation.replace("-", "_").upper()
        )
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is closed anyway
                pass
            self.conn = None

    # -- ops --------------------------------------------------------------------------------

    def invoke(self, op: Op) -> Op:
        import psycopg

        if op.f not in (TXN, INIT_ACCOUNTS, TRANSFER, READ_ACCOUNTS):
            return completed(op, "fail", error=f"unsupported f {op.f!r}")
        problem = _malformed(op)
        if problem:
            return completed(op, "fail", error=problem)
        if self.conn is None:
            try:
                self.conn = self.connect()
            except Exception as e:  # noqa: BLE001 - nothing was sent: the op did not happen
                self.close()
                return self._served(completed(op, "fail", error=f"connect: {describe(e)}"))
        attempt = _Attempt()
        watchdog = _Watchdog(self.conn.fileno(), self.timeout)
        try:
            with watchdog:
                value = self._transaction(op, attempt)
        except _Refused as e:  # rolled back on purpose (bank: insufficient funds)
            self.close()
            return self._served(completed(op, "fail", error=str(e)))
        except psycopg.Error as e:
            self.close()
            state = getattr(e, "sqlstate", None)
            what = "timeout" if watchdog.fired else describe(e).splitlines()[0]
            if state in ROLLED_BACK:
                what = f"{ROLLED_BACK[state]} ({state})"
                return self._served(completed(op, "fail", error=what))
            if not attempt.committing or not attempt.wrote:
                return self._served(completed(op, "fail", error=what))
            return self._served(completed(op, "info", error=f"during commit: {what}"))
        except Exception as e:  # noqa: BLE001 - unknown: the interpreter's rule, said here
            self.close()
            kind = "fail" if not attempt.committing or not attempt.wrote else "info"
            return self._served(completed(op, kind, error=describe(e)))
        return self._served(completed(op, "ok", value=value))

    def _served(self, completion: Op) -> Op:
        return served_by(completion, {"node": self.db_node})

    def _transaction(self, op: Op, attempt: _Attempt) -> Any:
        """Run op as one transaction (psycopg sends BEGIN ISOLATION LEVEL ... before the first
        statement, autocommit being off) and commit it; returns the completion's value."""
        conn = self.conn
        with conn.cursor() as cur:
            if op.f == TXN:
                value = [self._micro_op(cur, list(mop), attempt) for mop in op.value]
            elif op.f == READ_ACCOUNTS:
                cur.execute(f"SELECT id, balance FROM {ACCOUNTS_TABLE} ORDER BY id")
                value = {int(a): int(b) for a, b in cur.fetchall()}
            elif op.f == TRANSFER:
                value = self._transfer(cur, op.value, attempt)
            else:
                value = self._init_accounts(cur, op.value, attempt)
        attempt.committing = True
        conn.commit()
        return value

    def _micro_op(self, cur: Any, mop: list[Any], attempt: _Attempt) -> list[Any]:
        f, k, v = mop
        if f == "r":
            return [f, k, self._read(cur, k)]
        attempt.wrote = True
        if f == "append" and self.list_type == "array":
            cur.execute(
                f"INSERT INTO {TXN_TABLE} AS t (k, vals) VALUES (%s, ARRAY[%s]::int[]) "
                "ON CONFLICT (k) DO UPDATE SET vals = t.vals || excluded.vals",
                (k, v),
            )
        elif f == "append":
            cur.execute(
                f"INSERT INTO {TXN_TABLE} AS t (k, val) VALUES (%s, %s) "
                "ON CONFLICT (k) DO UPDATE SET val = CONCAT(t.val, ',', excluded.val)",
                (k, str(v)),
            )
        else:  # "w"
            cur.execute(
                f"INSERT INTO {TXN_TABLE} AS t (k, reg) VALUES (%s, %s) "
                "ON CONFLICT (k) DO UPDATE SET reg = excluded.reg",
                (k, v),
            )
        return mop

    def _read(self, cur: Any, k: Any) -> Any:
        """A read's answer: the key's list (list-append) or its value (rw-register); None for
        a key never written, as Jepsen's PostgreSQL append test answers (Elle reads nil as
        the empty list). Both workloads share one table, each using its own column, so a
        transaction of reads alone needs no telling which workload runs."""
        cur.execute(f"SELECT val, vals, reg FROM {TXN_TABLE} WHERE k = %s", (k,))
        row = cur.fetchone()
        if row is None:
            return None
        val, vals, reg = row
        if reg is not None:
            return int(reg)
        if vals is not None:
            return [int(x) for x in vals]
        return [int(x) for x in val.split(",")] if val else None

    # -- bank --------------------------------------------------------------------------------

    def _init_accounts(self, cur: Any, accounts: dict[Any, Any], attempt: _Attempt) -> Any:
        attempt.wrote = True
        cur.execute(f"DELETE FROM {ACCOUNTS_TABLE}")
        for account, balance in accounts.items():
            cur.execute(
                f"INSERT INTO {ACCOUNTS_TABLE} (id, balance) VALUES (%s, %s)",
                (int(account), int(balance)),
            )
        return accounts

    def _transfer(self, cur: Any, value: dict[str, Any], attempt: _Attempt) -> Any:
        """Jepsen's bank transfer: read both balances, refuse to overdraw (the transaction is
        rolled back, the op `fail`s with "insufficient funds"), else write both."""
        src, dst, amount = int(value["from"]), int(value["to"]), int(value["amount"])
        cur.execute(f"SELECT balance FROM {ACCOUNTS_TABLE} WHERE id = %s", (src,))
        row = cur.fetchone()
        cur.execute(f"SELECT balance FROM {ACCOUNTS_TABLE} WHERE id = %s", (dst,))
        row_to = cur.fetchone()
        if row is None or row_to is None:
            raise _Refused(f"no account {src if row is None else dst}")
        if row[0] - amount < 0:
            raise _Refused("insufficient funds")
        attempt.wrote = True
        cur.execute(
            f"UPDATE {ACCOUNTS_TABLE} SET balance = balance - %s WHERE id = %s", (amount, src)
        )
        cur.execute(
            f"UPDATE {ACCOUNTS_TABLE} SET balance = balance + %s WHERE id = %s", (amount, dst)
        )
        return value


class _Refused(Exception):
    """The client rolls the transaction back itself: a definite `fail`."""


def _malformed(op: Op) -> str | None:
    """Why op's value is not one this client can run, or None (checked before anything is
    sent, so that a bad op is a definite `fail`)."""
    v = op.value
    if op.f == TXN:
        if not isinstance(v, list):
            return f"txn value must be a list of micro-ops, got {v!r}"
        for mop in v:
            if not isinstance(mop, list | tuple) or len(mop) != 3:
                return f"micro-op must be [f, k, v], got {mop!r}"
            f, k, x = mop
            if f not in ("r", "append", "w"):
                return f"unknown micro-op {f!r}"
            if not isinstance(k, int) or isinstance(k, bool):
                return f"keys must be ints, got {k!r}"
            if f != "r" and (not isinstance(x, int) or isinstance(x, bool)):
                return f"values must be ints, got {x!r}"
        return None
    if op.f == TRANSFER:
        if not isinstance(v, dict) or not {"from", "to", "amount"} <= set(v):
            return f"transfer value must be {{from, to, amount}}, got {v!r}"
        return None
    if op.f == INIT_ACCOUNTS and not isinstance(v, dict):
        return f"init-accounts value must be {{account: balance}}, got {v!r}"
    return None


# Where Debian keeps each major version's server binaries (not on PATH): the newest wins.
_FIND_BIN = """for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
  [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && { echo "$d"; exit 0; }
done
p=$(command -v postgres 2>/dev/null) && [ -x "$(dirname "$p")/initdb" ] && dirname "$p"
"""


# The server's processes: the postmaster (the daemon's pidfile) and its children. Children are
# found by their parent, not by the daemon marker: PostgreSQL writes each child's process
# title over the memory /proc/PID/environ shows, so the marker is gone from them.
_SERVER = """alive() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
pf=$1; sig=$2
[ -s "$pf" ] || exit 0
pm=$(cat "$pf")
case $pm in ''|*[!0-9]*) exit 0;; esac
alive "$pm" || exit 0
"""

# A crash: the postmaster stopped first (it forks nothing more and restarts no child), then it
# and every child SIGKILLed at once; waits until all are gone, then forgets the pidfile and
# PostgreSQL's own lock file ($3): where no init reaps orphans (a container's), the killed
# postmaster stays a zombie, whose pid PostgreSQL takes for a live postmaster and refuses to
# start; with every process dead the lock stands only for what a reboot would have cleared.
_CRASH = (
    _SERVER
    + """kill -s STOP "$pm"
all="$pm $(pgrep -P "$pm" | tr '\\n' ' ')"
kill -s KILL $all 2>/dev/null
i=0
while [ "$i" -lt 100 ]; do
  left=""; for p in $all; do alive "$p" && left="$left $p"; done
  [ -z "$left" ] && { rm -f -- "$pf" "$3"; exit 0; }
  sleep 0.1; i=$((i+1))
done
echo "survived SIGKILL:$left" >&2; exit 1
"""
)

# STOP: the postmaster first, then its children; CONT: the children first, then the postmaster
# (it never sees a child in the other state). Prints the pids signalled.
_SIGNAL_ALL = (
    _SERVER
    + """if [ "$sig" = STOP ]; then kill -s STOP "$pm"; fi
kids=$(pgrep -P "$pm" | tr '\\n' ' ')
[ -n "$kids" ] && kill -s "$sig" $kids 2>/dev/null
if [ "$sig" = CONT ]; then kill -s CONT "$pm"; fi
echo "$pm $kids"
"""
)


class PostgresTarget(ProcessTarget):
    """PostgreSQL on n1, every client connected to it (see the module docstring): the
    system user, initdb, the configuration, the crash-style kill, the pause of every backend,
    the client; starting and the clean slate are ProcessTarget's."""

    name = "postgres"
    description = "PostgreSQL (Debian's postgresql) on n1, transactions at --isolation"
    speaks = frozenset({TXN, INIT_ACCOUNTS, TRANSFER, READ_ACCOUNTS})
    default_workload = "list-append"
    elects_leader = False
    options = (
        Option(
            "isolation",
            "str",
            "serializable",
            "the isolation level of every transaction (PostgreSQL's BEGIN ISOLATION LEVEL)",
            choices=ISOLATION_LEVELS,
            metavar="LEVEL",
            label="isolation",
        ),
        Option(
            "postgres-list-type",
            "str",
            "text",
            "how list-append keeps a key's list: comma-separated text (Jepsen's) or int[]",
            choices=LIST_TYPES,
            keyword="list_type",
            label="list",
        ),
        Option(
            "postgres-synchronous-commit",
            "str",
            "on",
            "PostgreSQL's synchronous_commit: on (a commit returns once its WAL is flushed) or "
            "off (it returns before; a crash loses the last ~0.6 s of acknowledged commits)",
            choices=SYNCHRONOUS_COMMIT,
            keyword="synchronous_commit",
            label="sync-commit",
        ),
        Option(
            "postgres-port",
            "int",
            PORT,
            "the port the server listens on",
            minimum=1,
            maximum=65535,
            keyword="port",
        ),
        Option(
            "postgres-timeout",
            "float",
            5.0,
            "seconds a client waits to connect and for each transaction",
            minimum=2.0,
            maximum=600.0,
            keyword="client_timeout",
        ),
    )
    log_name = "postgres.log"
    pid_name = "postgres.pid"
    ready_timeout = 120.0

    def __init__(
        self,
        isolation: str = "serializable",
        list_type: str = "text",
        port: int = PORT,
        client_timeout: float = 5.0,
        synchronous_commit: str = "on",
    ) -> None:
        super().__init__(
            isolation=isolation,
            list_type=list_type,
            port=port,
            client_timeout=client_timeout,
            synchronous_commit=synchronous_commit,
        )
        self.check_options(
            isolation=isolation, list_type=list_type, synchronous_commit=synchronous_commit
        )
        self.synchronous_commit = synchronous_commit
        self.isolation = isolation
        self.list_type = list_type
        self.port = port
        self.client_timeout = client_timeout
        self.version = "unknown"
        self.leftovers = []
        self.bin_dir = ""
        #: argv prefix that runs a command as the system user ([] when we are not root)
        self.as_user: list[str] = []
        # faults on several nodes at once all act on the one server: one at a time
        self._lock = threading.RLock()

    @classmethod
    def check_options(cls, **values: Any) -> None:
        from dsjepsen.errors import ConfigError

        isolation = values.get("isolation", "serializable")
        if isolation not in ISOLATION_LEVELS:
            raise ConfigError(
                f"--isolation: must be one of {', '.join(ISOLATION_LEVELS)}, got {isolation!r}"
            )
        list_type = values.get("list_type", "text")
        if list_type not in LIST_TYPES:
            raise ConfigError(
                f"--postgres-list-type: must be one of {', '.join(LIST_TYPES)}, got {list_type!r}"
            )
        sync = values.get("synchronous_commit", "on")
        if sync not in SYNCHRONOUS_COMMIT:
            raise ConfigError(f"--postgres-synchronous-commit: must be on or off, got {sync!r}")

    # -- where ---------------------------------------------------------------------------

    @staticmethod
    def db_node(cluster: Cluster) -> Node:
        """The node that runs the database: the first."""
        return cluster.nodes[0]

    # -- command line ----------------------------------------------------------------------

    def argv(self, cluster: Cluster, node: Node) -> list[str]:
        settings = {
            "listen_addresses": node.address,
            "port": str(self.port),
            # TCP only: a Unix socket's lock file would outlive a crash like postmaster.pid
            "unix_socket_directories": "",
            **SERVER_SETTINGS,
            "synchronous_commit": self.synchronous_commit,
        }
        argv = [*self.as_user, f"{self.bin_dir}/postgres", "-D", self.data_dir(node)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def install(self, cluster: Cluster, node: Node) -> str | None:
        """The server binaries (apt-get as root when missing, with Debian's own cluster
        service stopped: ours must own the port), the system user, and the version."""
        remote = cluster.remote(node.name)
        root = remote.run(["id", "-u"], timeout=30, check=False).stdout.strip() == "0"
        found = remote.run(["sh", "-c", _FIND_BIN], timeout=30, check=False).stdout.strip()
        if not found:
            if not root:
                raise HarnessError(
                    f"node {node.name}: PostgreSQL is not installed and we are not root there; "
                    f"install it with: apt-get install {PACKAGE}"
                )
            remote.run(
                ["apt-get", "install", "-y", "--no-install-recommends", PACKAGE],
                timeout=900,
                env={"DEBIAN_FRONTEND": "noninteractive"},
            )
            remote.run(["systemctl", "disable", "--now", "postgresql"], timeout=60, check=False)
            found = remote.run(["sh", "-c", _FIND_BIN], timeout=30, check=False).stdout.strip()
            if not found:
                raise HarnessError(
                    f"node {node.name}: no PostgreSQL server even after apt-get install {PACKAGE}"
                )
        self.bin_dir = found.splitlines()[0]
        if root:
            if remote.run(["id", "-u", SYSTEM_USER], timeout=30, check=False).exit != 0:
                remote.run(
                    ["useradd", "--system", "--user-group", "--no-create-home",
                     "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                    timeout=60,
                )  # fmt: skip
            self.as_user = [
                "setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups", "--"
            ]  # fmt: skip
        res = remote.run([f"{self.bin_dir}/postgres", "--version"], timeout=30, check=False)
        # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        m = re.search(r"PostgreSQL\)\s*(\S+)", res.stdout)
        return m.group(1) if res.exit == 0 and m else "unknown"

    def _initdb(self, cluster: Cluster, node: Node) -> None:
        """A fresh database cluster in the data directory, owned by the system user, whose
        pg_hba trusts the nodes' and the controller's addresses only."""
        remote = cluster.remote(node.name)
        home, data = self.home(node), self.data_dir(node)
        remote.run(["mkdir", "-p", "--", home], timeout=30)
        if self.as_user:
            # the node's workdir and its parents may be root's alone: let the user through
            parents = _parents(home)
            remote.run(["chmod", "o+x", "--", *parents], timeout=30)
            remote.run(["chown", f"{SYSTEM_USER}:{SYSTEM_USER}", "--", home], timeout=30)
        res = remote.run(
            [*self.as_user, f"{self.bin_dir}/initdb", "-D", data, "-U", ROLE,
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            timeout=180,
            check=False,
        )  # fmt: skip
        if res.exit != 0:
            raise HarnessError(
                f"node {node.name}: initdb failed: {(res.stderr or res.stdout).strip()[-300:]}"
            )
        remote.run(
            [*self.as_user, "tee", f"{data}/pg_hba.conf"],
            timeout=30,
            input=self.hba(cluster),
        )

    def hba(self, cluster: Cluster) -> str:
        """pg_hba.conf: trust (a test database) for every node's address and the address the
        controller reaches the database from; nothing else."""
        addresses = [n.address for n in cluster.nodes]
        mine = _source_address(self.db_node(cluster).address, self.port)
        if mine and mine not in addresses:
            addresses.append(mine)
        lines = ["# written by dsjepsen: a test database, trusted from the cluster only"]
        for a in addresses:
            mask = "128" if ":" in a else "32"
            lines.append(f"host all all {a}/{mask} trust")
        return "\n".join(lines) + "\n"

    # -- lifecycle -------------------------------------------------------------------------

    def setup(self, cluster: Cluster) -> None:
        """(After the clean slate on every node) install, initdb, start and create the
        tables, on n1 only."""
        db = self.db_node(cluster)
        self.version = self.install(cluster, db) or "unknown"
        self._initdb(cluster, db)
        self.launch(cluster, db)
        self.wait_ready(cluster)
        self._create_tables(db)
        log.info("%s %s serving on %s:%d", self.name, self.version, db.address, self.port)

    def _create_tables(self, db: Node) -> None:
        import psycopg

        with psycopg.connect(
            host=db.address, port=self.port, user=ROLE, dbname=DATABASE,
            connect_timeout=10, autocommit=True,
        ) as conn:  # fmt: skip
            for statement in SCHEMA:
                conn.execute(statement)

    def ready(self, cluster: Cluster, node: Node) -> bool:
        """n1 answers a query (not only accepts connections: during crash recovery it refuses
        them with 'the database system is starting up'); the other nodes run nothing."""
        if node.name != self.db_node(cluster).name:
            return True
        if not port_open(node.address, self.port):
            return False
        try:
            import psycopg

            with psycopg.connect(
                host=node.address, port=self.port, user=ROLE, dbname=DATABASE,
                connect_timeout=2, autocommit=True,
            ) as conn:  # fmt: skip
                conn.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - not yet
            return False
        return True

    def ready_for_final_reads(self, cluster: Cluster) -> bool:
        return self.ready(cluster, self.db_node(cluster))

    def leader(self, cluster: Cluster) -> str | None:
        """The node that runs the database: the one a fault aimed at the leader hits."""
        return self.db_node(cluster).name

    def process_nodes(self, cluster: Cluster) -> list[str]:
        """Only n1 runs a server: kill and pause faults act on it, and say so."""
        return [self.db_node(cluster).name]

    def start(self, cluster: Cluster, node: str) -> None:
        """Start the server on n1 (whatever node a fault named) and wait until it accepts
        connections; crash recovery may go on a little longer (clients then fail to connect,
        which is `fail`)."""
        db = self.db_node(cluster)
        with self._lock:
            # a fault on several nodes restarts the one server once
            if not daemon_running(cluster.remote(db.name), self.pid_file(db)):
                self.launch(cluster, db)
            wait_for_port(db.address, self.port, timeout=self.ready_timeout)

    def server_pids(self, cluster: Cluster) -> list[int]:
        """The live pids of the server on n1: the postmaster and its children ([] when it is
        not running)."""
        return self._on_server(cluster, _SIGNAL_ALL, "0")

    def _on_server(self, cluster: Cluster, script: str, sig: str) -> list[int]:
        db = self.db_node(cluster)
        remote = cluster.remote(db.name)
        lock = f"{self.data_dir(db)}/postmaster.pid"
        argv = ["sh", "-c", script, "dsj-postgres", self.pid_file(db), sig, lock]
        res = remote.run(argv, timeout=30, check=False)
        if res.exit != 0:
            raise HarnessError(f"node {db.name}: {res.stderr.strip()[-300:]}")
        return [int(p) for p in res.stdout.split() if p.isdigit()]

    def kill(self, cluster: Cluster, node: str) -> None:
        """A crash of the server on n1 (whatever node was named): the postmaster and all its
        children SIGKILLed; returns once every one is gone."""
        with self._lock:
            self._on_server(cluster, _CRASH, "KILL")

    def pause(self, cluster: Cluster, node: str) -> None:
        """SIGSTOP the server on n1: the postmaster and every backend."""
        with self._lock:
            self._on_server(cluster, _SIGNAL_ALL, "STOP")

    def resume(self, cluster: Cluster, node: str) -> None:
        """SIGCONT the server on n1 (idempotent: not paused, not running are fine)."""
        with self._lock:
            self._on_server(cluster, _SIGNAL_ALL, "CONT")

    def teardown(self, cluster: Cluster) -> None:
        """The server crashed as by `kill` (a smart shutdown would wait for the clients), then
        whatever else an earlier run left and the data removed, on every node."""

        def one(node: Node) -> None:
            if self.disk_control is not None:  # the data is in the backing directory
                self.disk_control.unmount(cluster, node.name)
            layout = faultmount.FaultMount.beside(self.data_dir(node))
            clear_leftovers(
                cluster.remote(node.name),
                self.home(node),
                pidfiles=[self.pid_file(node)],
                remove=[self.data_dir(node), layout.backing, layout.state],
            )

        with self._lock:
            self._on_server(cluster, _CRASH, "KILL")
            self.each(cluster, one)

    def data_dirs(self, cluster: Cluster, node: str) -> list[str]:
        """The database cluster's directory (its WAL in pg_wal/ inside), on n1 alone: what the
        disk and file faults act on."""
        db = self.db_node(cluster)
        return [self.data_dir(db)] if node == db.name else []

    def log_files(self, cluster: Cluster, node: str) -> list[str]:
        db = self.db_node(cluster)
        return [self.log_file(db)] if node == db.name else []

    def pid(self, cluster: Cluster, node: str) -> int | None:
        """The postmaster's pid, whatever node a fault named (it is the one it acts on)."""
        db = self.db_node(cluster)
        return daemon_pid(cluster.remote(db.name), self.pid_file(db))

    def client(self, cluster: Cluster, node: str) -> Client:
        db = self.db_node(cluster)
        return PostgresClient(
            db.address,
            db.name,
            isolation=self.isolation,
            list_type=self.list_type,
            timeout=self.client_timeout,
            port=self.port,
        )


def _parents(path: str) -> list[str]:
    """Every directory above path, up to (not including) /."""
    out: list[str] = []
    parts = path.rstrip("/").split("/")
    for i in range(2, len(parts)):
        out.append("/".join(parts[:i]))
    return out


def _source_address(host: str, port: int) -> str | None:
    """The address this machine reaches host from (a UDP socket's local end after connect:
    the route is chosen, nothing is sent)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            return str(s.getsockname()[0])
    except OSError:
        return None
