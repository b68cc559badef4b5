"""The postgres target against a real PostgreSQL on a namespace cluster: what each outcome of
the client means (ok with the reads filled in, fail on a serialization failure, a timeout
before COMMIT or a refused connection, info when COMMIT is in flight), the crash-style kill
(every server process gone, committed data back after recovery), the pause of every backend,
and the bank vocabulary's SQL side."""

from __future__ import annotations

import glob
import shutil
import threading
import time

import pytest

from dsjepsen.errors import ConfigError
from dsjepsen.history import Op
from dsjepsen.targets.postgres import (
    ACCOUNTS_TABLE,
    TXN_TABLE,
    PostgresClient,
    PostgresTarget,
)

psycopg = pytest.importorskip("psycopg")

pytestmark = pytest.mark.cluster

if not glob.glob("/usr/lib/postgresql/*/bin/postgres") and shutil.which("postgres") is None:
    pytest.skip("PostgreSQL is not installed (apt-get install postgresql)", allow_module_level=True)


@pytest.fixture
def pg(pooled_cluster):
    cluster = pooled_cluster(node_count=3)
    target = PostgresTarget(isolation="repeatable-read", client_timeout=2.0)
    try:
        target.setup(cluster)
        yield cluster, target
    finally:
        target.resume(cluster, "n1")
        target.teardown(cluster)


def txn(*mops, process: int = 0, node: str = "n2") -> Op:
    return Op(0, 0, process, "invoke", "txn", [list(m) for m in mops], node=node)


def raw(cluster, target, **kw):
    db = cluster.node("n1")
    return psycopg.connect(
        host=db.address, port=target.port, user="postgres", dbname="postgres", **kw
    )


def states(cluster, pids: list[int]) -> dict[int, str]:
    """{pid: the State letter of /proc/<pid>/status on n1} for the pids still there."""
    out = {}
    for pid in pids:
        res = cluster.remote("n1").run(["cat", f"/proc/{pid}/status"], timeout=10, check=False)
        for line in res.stdout.splitlines():
            if line.startswith("State:") and line.split()[1] != "Z":
                out[pid] = line.split()[1]
    return out


def test_transactions_read_what_was_written_and_name_the_serving_node(pg):
    cluster, target = pg
    assert target.version.split(".")[0].isdigit()
    c = target.client(cluster, "n2")
    try:
        done = c.invoke(txn(["r", 1, None], ["append", 1, 1], ["append", 1, 2], ["r", 1, None]))
        assert done.type == "ok", done.error
        assert done.value == [["r", 1, None], ["append", 1, 1], ["append", 1, 2], ["r", 1, [1, 2]]]
        assert done.node == "n1"  # bound to n2, served by the database on n1
        reg = c.invoke(txn(["r", 7, None], ["w", 7, 3], ["r", 7, None]))
        assert reg.value == [["r", 7, None], ["w", 7, 3], ["r", 7, 3]], reg
        again = target.client(cluster, "n3").invoke(txn(["r", 1, None], ["r", 7, None]))
        assert again.value == [["r", 1, [1, 2]], ["r", 7, 3]]
        bad = c.invoke(txn(["append", "x", 1]))
        assert bad.type == "fail" and "keys must be ints" in bad.error
        # --postgres-list-type array keeps the list as int[]: the same answers
        arrays = PostgresClient(cluster.node("n1").address, "n1", list_type="array")
        done = arrays.invoke(txn(["append", 9, 1], ["append", 9, 2], ["r", 9, None]))
        assert done.value == [["append", 9, 1], ["append", 9, 2], ["r", 9, [1, 2]]], done
        arrays.close()
        with raw(cluster, target) as conn:
            row = conn.execute(f"SELECT val, vals FROM {TXN_TABLE} WHERE k = 9").fetchone()
        assert row == (None, [1, 2])
    finally:
        c.close()


def test_a_concurrent_update_is_a_serialization_failure_and_fails(pg):
    cluster, target = pg
    c = target.client(cluster, "n1")
    assert c.invoke(txn(["append", 2, 1])).type == "ok"
    holder = raw(cluster, target)
    holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    got: list[Op] = []
    try:
        holder.execute(f"UPDATE {TXN_TABLE} SET val = val || ',99' WHERE k = 2")
        # the client's repeatable-read transaction waits for the row lock, then finds the row
        # changed by a transaction it cannot see: SQLSTATE 40001
        t = threading.Thread(target=lambda: got.append(c.invoke(txn(["append", 2, 2]))))
        t.start()
        time.sleep(0.5)
        holder.commit()
        t.join(timeout=10)
    finally:
        holder.close()
        c.close()
    assert got and got[0].type == "fail", got
    assert "40001" in got[0].error
    check = target.client(cluster, "n1")
    assert check.invoke(txn(["r", 2, None])).value == [["r", 2, [1, 99]]]  # 2 never happened
    check.close()


def test_a_slow_commit_is_info_and_a_slow_statement_is_fail(pg):
    cluster, target = pg
    # a deferred trigger makes COMMIT itself slow for key 999 only: the client's timeout
    # then ends the wait while COMMIT is in flight
    with raw(cluster, target, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION dsj_slow() RETURNS trigger AS $$ BEGIN "
            "IF NEW.k = 999 THEN PERFORM pg_sleep(6); END IF; RETURN NULL; END $$ "
            "LANGUAGE plpgsql"
        )
        conn.execute(
            f"CREATE CONSTRAINT TRIGGER dsj_slow AFTER INSERT OR UPDATE ON {TXN_TABLE} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION dsj_slow()"
        )
    c = target.client(cluster, "n1")
    try:
        t0 = time.monotonic()
        slow = c.invoke(txn(["append", 999, 1]))
        assert time.monotonic() - t0 < 5
        assert slow.type == "info" and "during commit: timeout" in slow.error, slow
        # a statement that outlasts the timeout before COMMIT: nothing was committed
        stuck = c.invoke(txn(["r", 3, None], ["append", 3, 1]))
        assert stuck.type == "ok"
        with raw(cluster, target) as holder:
            holder.execute(f"SELECT * FROM {TXN_TABLE} WHERE k = 3 FOR UPDATE")
            t0 = time.monotonic()
            blocked = c.invoke(txn(["append", 3, 2]))
            assert time.monotonic() - t0 < 5
        assert blocked.type == "fail" and "timeout" in blocked.error, blocked
    finally:
        c.close()


def test_refused_connection_fails_and_kill_is_a_crash_that_recovers(pg):
    cluster, target = pg
    nowhere = PostgresClient(cluster.node("n1").address, "n1", timeout=2.0, port=1)
    refused = nowhere.invoke(txn(["append", 4, 1]))
    assert refused.type == "fail" and refused.error.startswith("connect"), refused
    c = target.client(cluster, "n2")
    assert c.invoke(txn(["append", 4, 1], ["append", 4, 2])).type == "ok"
    db = cluster.node("n1")
    remote = cluster.remote("n1")
    before = target.server_pids(cluster)
    assert len(before) > 3  # the postmaster, its auxiliary processes, our backend
    target.kill(cluster, "n3")  # any node's kill crashes the one server
    assert target.server_pids(cluster) == []
    assert [p for p in before if states(cluster, [p])] == []  # not one process left
    down = c.invoke(txn(["r", 4, None]))
    assert down.type == "fail", down
    target.start(cluster, "n3")
    target.wait_ready(cluster)
    after = target.client(cluster, "n2").invoke(txn(["r", 4, None]))
    assert after.value == [["r", 4, [1, 2]]], after  # committed before the crash, recovered
    log = remote.run(["cat", target.log_file(db)], timeout=10).stdout
    assert "not properly shut down" in log and "redo done" in log


def test_pause_stops_every_server_process_and_resume_is_idempotent(pg):
    cluster, target = pg
    target.pause(cluster, "n2")
    pids = target.server_pids(cluster)
    assert len(pids) > 3 and set(states(cluster, pids).values()) == {"T"}, pids
    c = target.client(cluster, "n1")
    t0 = time.monotonic()
    paused = c.invoke(txn(["append", 5, 1]))
    assert paused.type == "fail" and time.monotonic() - t0 < 6, paused
    target.resume(cluster, "n1")
    target.resume(cluster, "n1")
    assert "T" not in states(cluster, pids).values()
    target.wait_ready(cluster)
    assert target.client(cluster, "n1").invoke(txn(["append", 5, 2])).type == "ok"


def test_bank_ops(pg):
    cluster, target = pg
    c = target.client(cluster, "n2")
    init = Op(0, 0, 0, "invoke", "init-accounts", {0: 10, 1: 10, 2: 0})
    assert c.invoke(init).type == "ok"
    move = Op(0, 0, 0, "invoke", "transfer", {"from": 0, "to": 2, "amount": 4})
    assert c.invoke(move).type == "ok"
    over = Op(0, 0, 0, "invoke", "transfer", {"from": 2, "to": 1, "amount": 5})
    refused = c.invoke(over)
    assert (refused.type, refused.error) == ("fail", "insufficient funds")
    read = c.invoke(Op(0, 0, 0, "invoke", "read-accounts", None))
    assert (read.type, read.value) == ("ok", {0: 6, 1: 10, 2: 4})
    with raw(cluster, target) as conn:
        assert conn.execute(f"SELECT sum(balance) FROM {ACCOUNTS_TABLE}").fetchone()[0] == 20


def test_bad_options_are_refused_before_any_node():
    with pytest.raises(ConfigError, match="--isolation"):
        PostgresTarget.check_options(isolation="snapshot")
    with pytest.raises(ConfigError, match="--postgres-list-type"):
        PostgresTarget.check_options(list_type="json")
    with pytest.raises(ConfigError, match="--postgres-synchronous-commit"):
        PostgresTarget.check_options(synchronous_commit="local")


def test_synchronous_commit_is_the_servers_and_its_data_is_on_n1_alone(pooled_cluster):
    """--postgres-synchronous-commit reaches the server (SHOW says so), and the disk and file
    faults' data directory is the database cluster's, on the one node that runs it."""
    cluster = pooled_cluster(node_count=3)
    target = PostgresTarget(synchronous_commit="off")
    try:
        target.setup(cluster)
        with raw(cluster, target) as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"
            assert conn.execute("SHOW fsync").fetchone()[0] == "on"
        assert target.data_dirs(cluster, "n1") == [target.data_dir(cluster.node("n1"))]
        assert target.data_dirs(cluster, "n2") == []
    finally:
        target.teardown(cluster)
