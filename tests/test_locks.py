"""Issue 29: the lock workload end to end. raft-kv's lease state machine, a real raft-kv
server and a real fenced resource process spoken to by the lock client (tokens, refusals,
expiry, the fence), the workload's per-process cycle, and real runs on namespace clusters:
a holder paused past its lease lands a superseded write that only a fence stops (the bug
lease-no-fencing gives no tokens, so nothing stops it), while the correct lock with tokens and
--fencing stays valid under the same pauses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.history import Op
from dsjepsen.targets.fenced.server import Resource
from dsjepsen.targets.lock_client import ContractLockClient
from dsjepsen.targets.raft_kv.lease import Leases
from dsjepsen.workloads.lock import LockWorkload
from tests.test_raftkv_server import free_port, single  # noqa: F401 - the one-node fixture

FENCED = [sys.executable, "-m", "dsjepsen.targets.fenced.server"]


def test_grants_are_a_compare_and_set_in_log_order_with_the_index_as_token():
    leases = Leases()
    grant = {"op": "lock-grant", "lock": "l", "holder": "a", "ttl_ms": 100, "prev": None}
    assert leases.apply(grant, 5) == ("ok", 5)
    # a second grant decided on the same (free) state loses: the first one's token is there now
    assert leases.apply({**grant, "holder": "b"}, 6) == ("mismatch", "a")
    assert leases.free_for("l", "b") == (False, leases.locks["l"])
    assert leases.free_for("l", "b", now=time.time() + 0.2)[0] is True  # the lease is over
    assert leases.apply({**grant, "holder": "b", "prev": 5}, 9) == ("ok", 9)
    # a's release comes too late: the lock is b's now
    release = {"op": "lock-release", "lock": "l", "holder": "a", "token": 5}
    assert leases.apply(release, 10) == ("mismatch", "b")
    assert leases.apply({**release, "holder": "b", "token": 9}, 11) == ("ok", None)
    assert "l" not in leases.locks


def test_the_resource_fences_only_tokens_older_than_the_newest_accepted():
    r = Resource(fencing=True)
    assert r.write({"hold": "a", "token": 3, "value": 1})[0] is True
    assert r.write({"hold": "a", "token": 3, "value": 2})[0] is True  # the same holder again
    assert r.write({"hold": "b", "token": 7, "value": 3})[0] is True
    ok, rec = r.write({"hold": "a", "token": 3, "value": 4})
    assert ok is False and rec["newest"] == 7
    assert r.write({"hold": "c", "token": None, "value": 5})[0] is True  # nothing to fence with
    assert [w["accepted"] for w in r.writes] == [True, True, True, False, True]
    unfenced = Resource(fencing=False)
    unfenced.write({"hold": "b", "token": 7, "value": 1})
    assert unfenced.write({"hold": "a", "token": 3, "value": 2})[0] is True
    with pytest.raises(ValueError):
        r.write({"hold": "a", "token": "x", "value": 1})


def lock_op(f: str, value: object = None, process: int = 0, index: int = 0) -> Op:
    return Op(index=index, time=0, process=process, type="invoke", f=f, value=value)


@pytest.fixture
def fenced(tmp_path):
    """A real fenced resource process on loopback: its port."""
    port = free_port()
    log = open(tmp_path / "fenced.log", "w")  # noqa: SIM115
    p = subprocess.Popen(
        [*FENCED, "--id", "n1", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "f")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from dsjepsen.cluster.daemon import wait_for_port

    wait_for_port("127.0.0.1", port, timeout=20)
    yield port
    p.kill()
    p.wait(timeout=10)
    log.close()


@pytest.mark.parametrize("bug", [False, True])
def test_the_lock_client_against_a_real_raft_kv_and_resource(single, fenced, bug):  # noqa: F811
    server = single(*(["--bug", "lease-no-fencing"] if bug else []))
    res = ("127.0.0.1", fenced)
    a = ContractLockClient("127.0.0.1", server.port, res, timeout=2.0)
    b = ContractLockClient("127.0.0.1", server.port, res, timeout=2.0)
    try:
        assert a.invoke(lock_op("configure-resource", {"fencing": True})).type == "ok"
        got = a.invoke(lock_op("acquire", {"lease-ms": 300}, process=0, index=1))
        assert got.type == "ok" and got.value["holder"] == "p0-i1"
        assert (got.value["token"] is None) is bug
        assert a.invoke(lock_op("write", {"value": 1}, process=0)).type == "ok"
        refused = b.invoke(lock_op("acquire", {"lease-ms": 300}, process=1, index=2))
        assert refused.type == "fail" and refused.error["holder"] == "p0-i1"
        time.sleep(0.4)  # a's lease is over: by the server's clock and by a's own
        taken = b.invoke(lock_op("acquire", {"lease-ms": 5000}, process=1, index=3))
        assert taken.type == "ok"
        late = a.invoke(lock_op("write", {"value": 2}, process=0))
        assert late.type == "fail" and "not sent" in late.error  # a knows its lease is over
        assert b.invoke(lock_op("write", {"value": 3}, process=1)).type == "ok"
        # a's release comes after b took the lock: refused
        assert a.invoke(lock_op("release", process=0)).type == "fail"
        if not bug:
            assert taken.value["token"] > got.value["token"]
            # a write with a's stale token, as a paused holder's would arrive: fenced off
            status, body = a.resource.request(
                "POST", "/write", {"hold": "p0-i1", "token": got.value["token"], "value": 4}
            )
            assert status == 409 and body["accepted"] is False
        assert b.invoke(lock_op("release", process=1)).type == "ok"
        read = a.invoke(lock_op("read-resource"))
        assert read.type == "ok" and read.value["fencing"] is True
        assert [w["value"] for w in read.value["writes"]][:2] == [1, 3]
    finally:
        a.close()
        b.close()


def completion(spec, process: int, typ: str) -> Op:
    return Op(index=0, time=0, process=process, type=typ, f=spec.f, value=spec.value)


def test_each_process_acquires_writes_while_holding_and_releases():
    wl = LockWorkload(seed=1, writes_per_hold=2)
    assert [s.f for s in wl.setup_ops()] == ["configure-resource"]
    seen = []
    for typ in ("fail", "ok", "ok", "ok", "ok"):
        spec = wl.next_op_for(0)
        seen.append(spec.f)
        wl.observe(completion(spec, 0, typ))
    assert seen == ["acquire", "acquire", "write", "write", "release"]
    assert wl.next_op_for(0).f == "acquire"
    # another process is on its own cycle; a refused write ends the hold early
    s = wl.next_op_for(1)
    wl.observe(completion(s, 1, "ok"))
    s = wl.next_op_for(1)
    assert s.f == "write"
    wl.observe(completion(s, 1, "fail"))
    assert wl.next_op_for(1).f == "release"
    # after info the process is gone; its successor starts from acquire
    wl.observe(completion(wl.next_op_for(1), 1, "info"))
    assert 1 not in wl.processes
    values = [wl.next_op_for(2) for _ in range(1)]
    assert values[0].f == "acquire"


# -- real runs ---------------------------------------------------------------------------------


def run(tmp_path: Path, *args: str, time_limit: int = 60, target: str = "raft-kv") -> dict:
    """The detection recipe's run (bench/detection.py LOCK_COMMON): a pause catches the
    holder on one of the two paused nodes with a write still to send about one time in three,
    and 60 s hold about twelve pauses."""
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    name = "lk" + os.urandom(2).hex()
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", target, "--node-count", "5",
        "--workload", "lock", "--fencing", "--lease-ms", "1000", "--writes-per-hold", "5",
        "--nemesis", "pause-minority", "--nemesis-interval", "2.5",
        "--time-limit", str(time_limit), "--cluster-name", name, "--store", str(tmp_path),
        "--json", *args,
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    finally:
        localnet.down(name)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.cluster
@pytest.mark.slow
def test_a_paused_holder_without_tokens_lands_a_superseded_write(tmp_path):
    out = run(tmp_path, "--bug", "lease-no-fencing", "--seed", "3")
    assert out["valid"] is False, out["reason"]
    res = out["checks"]["lock-resource"]
    assert res["valid"] is False
    found = res["anomalies"][0]
    assert found["type"] in ("superseded-holder-write", "interleaved")
    assert "paused raft-kv on" in found["message"]
    assert out["checks"]["lock-fencing"]["details"]["with_token"] == 0
    # the RCA counts the ops the lock checkers name (by op id), not only the register ones
    rca = (tmp_path / "latest" / "rca.md").read_text()
    impact = re.search(r"(\d+) anomal(?:y|ies) involving (\d+) of (\d+) client ops", rca)
    assert impact is not None, rca[:2000]
    named = {a["op_id"] for c in out["checks"].values() for a in c.get("anomalies") or []
             if isinstance(a.get("op_id"), int)}  # fmt: skip
    assert int(impact.group(2)) >= len(named) > 0, impact.group(0)


@pytest.mark.cluster
@pytest.mark.slow
def test_the_lock_with_tokens_and_a_fence_stays_valid_under_pauses(tmp_path):
    out = run(tmp_path, "--seed", "3")
    assert out["valid"] is True, out["reason"]
    assert out["checks"]["lock-resource"]["details"]["accepted"] > 100
    assert out["checks"]["lock-fencing"]["details"]["with_token"] > 30


@pytest.mark.cluster
@pytest.mark.slow
def test_etcds_lock_with_revision_fencing_stays_valid_under_pauses(tmp_path):
    if shutil.which("etcd") is None:
        pytest.skip("needs etcd (Debian's etcd-server)")
    out = run(tmp_path, "--seed", "3", target="etcd", time_limit=30)
    assert out["valid"] is True, out["reason"]
    assert out["checks"]["lock-fencing"]["details"]["with_token"] > 10


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.parametrize(("lock", "valid"), [("setnx", False), ("fenced", True)])
def test_redis_setnx_has_no_token_to_fence_with_and_its_fenced_variant_does(tmp_path, lock, valid):
    """SET NX PX, Redis's documented lock: a holder paused past its lease writes after the
    next holder and no fence can tell; the same SET with an INCR token (one Lua script) lets
    --fencing reject it."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/setup installs it)")
    out = run(tmp_path, "--redis-lock", lock, "--seed", "3", target="redis")
    assert out["valid"] is valid, out["reason"]
    if not valid:
        assert out["checks"]["lock-resource"]["anomalies"][0]["type"] in (
            "superseded-holder-write",
            "interleaved",
        )


@pytest.fixture
def redis_servers(tmp_path):
    """Three real redis-server processes on loopback (independent primaries): their ports."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/setup installs it)")
    from dsjepsen.cluster.daemon import wait_for_port

    procs, ports = [], []
    for i in range(3):
        port = free_port()
        d = tmp_path / f"r{i}"
        d.mkdir()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d)]
        argv += ["--save", "", "--appendonly", "no"]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports.append(port)
    for port in ports:
        wait_for_port("127.0.0.1", port, timeout=20)
    yield ports
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def test_redis_locks_setnx_fenced_and_redlock(redis_servers, fenced):
    from dsjepsen.targets import redis

    res = ("127.0.0.1", fenced)
    port = redis_servers[0]
    a = redis.RedisLockClient(redis.FixedPrimary("127.0.0.1", "n1", 2.0, port), 2.0, res, res)
    b = redis.RedisLockClient(
        redis.FixedPrimary("127.0.0.1", "n1", 2.0, port), 2.0, res, res, fenced=True
    )
    try:
        got = a.invoke(lock_op("acquire", {"lease-ms": 300}, process=0, index=1))
        assert got.type == "ok" and got.value["token"] is None  # SET NX PX gives no token
        assert b.invoke(lock_op("acquire", {"lease-ms": 300}, process=1, index=2)).type == "fail"
        time.sleep(0.4)  # the key expired on Redis's own clock
        first = b.invoke(lock_op("acquire", {"lease-ms": 5000}, process=1, index=3))
        assert first.type == "ok" and first.value["token"] == 1
        assert a.invoke(lock_op("release", process=0)).type == "fail"  # not a's any more
        assert b.invoke(lock_op("release", process=1)).type == "ok"
        again = b.invoke(lock_op("acquire", {"lease-ms": 5000}, process=1, index=4))
        assert again.value["token"] == 2  # the counter only grows
        b.invoke(lock_op("release", process=1))
    finally:
        a.close()
        b.close()
    # Redlock: a majority of independent instances; one of three down still leaves one
    instances = [("127.0.0.1", p) for p in redis_servers]
    r = redis.RedlockClient(instances, 2.0, res, res)
    other = redis.RedlockClient(instances, 2.0, res, res)
    try:
        got = r.invoke(lock_op("acquire", {"lease-ms": 2000}, process=2, index=5))
        assert got.type == "ok"
        assert r.hold is not None and r.hold.deadline < time.monotonic() + 2.0  # less the drift
        assert other.invoke(lock_op("acquire", {"lease-ms": 2000}, process=3, index=6)).type == (
            "fail"
        )
        assert r.invoke(lock_op("release", process=2)).type == "ok"
        assert other.invoke(lock_op("acquire", {"lease-ms": 2000}, process=3, index=7)).type == (
            "ok"
        )
    finally:
        r.close()
        other.close()
