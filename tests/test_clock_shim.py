"""The project's clock shim (dsjepsen/cluster/clockshim.c) and what it made possible: clock
faults on Redis, which hangs at start under libfaketime, and Redlock under `clock-bump`.

Real parts throughout: the shim compiled with gcc, `date`, Python and redis-server processes
preloaded with it, and a real Redlock run on a namespace cluster whose clock faults go through
it. This machine's clock is never touched: only the preloaded processes see the offsets.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsjepsen.cluster import clockshim
from dsjepsen.cluster.faketime import FaketimeControl, format_offset
from dsjepsen.errors import HarnessError
from dsjepsen.nemesis.clock import ClockFaults
from dsjepsen.targets.redis import RedisTarget
from tests.test_raftkv_server import free_port


def _shim() -> str:
    if clockshim.problem():
        pytest.skip(clockshim.problem())
    return str(clockshim.build())


def _set(path: Path, seconds: float) -> None:
    """Write an offset as the nemesis does: the same format, write then rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(format_offset(seconds) + "\n")
    os.replace(tmp, path)


def _env(shim: str, path: Path) -> dict[str, str]:
    return {**os.environ, "LD_PRELOAD": shim, clockshim.OFFSET_FILE_ENV: str(path)}


def _clocks_under(shim: str, path: Path) -> tuple[float, float, float, float]:
    """(wall clock, monotonic clock) of a preloaded Python, and this process's own read at
    the midpoint of the child's run."""
    code = "import time; print(time.time(), time.monotonic())"
    t0, m0 = time.time(), time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], env=_env(shim, path), capture_output=True,
                         text=True, timeout=30, check=True).stdout.split()  # fmt: skip
    t1, m1 = time.time(), time.monotonic()
    return float(out[0]), float(out[1]), (t0 + t1) / 2, (m0 + m1) / 2


def test_the_shim_moves_the_wall_clock_by_the_file_and_leaves_monotonic_alone(tmp_path):
    shim = _shim()
    path = tmp_path / "offset"
    for offset in (100.5, -3600.25, 0.0):
        _set(path, offset)
        wall, mono, here, here_mono = _clocks_under(shim, path)
        assert abs(wall - here - offset) < 1.0, (offset, wall - here)
        assert abs(mono - here_mono) < 1.0  # CLOCK_MONOTONIC is the machine's
        # date(1) reads the clock through a different libc entry than Python's time.time()
        res = subprocess.run(["date", "+%s.%N"], env=_env(shim, path), capture_output=True,
                             text=True, timeout=30, check=True)  # fmt: skip
        assert abs(float(res.stdout) - time.time() - offset) < 1.0
    # what the offset file is not (libfaketime's absolute "@" form, garbage) moves nothing
    path.write_text("@2030-01-01 00:00:00\n")
    wall, _mono, here, _ = _clocks_under(shim, path)
    assert abs(wall - here) < 1.0


def _redis(argv_env: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen, int]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/setup installs it)")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
            "--save", "", "--appendonly", "no"]  # fmt: skip
    proc = subprocess.Popen(argv, env=argv_env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return proc, port


def _call(port: int, *words: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode())
                                                      for w in words))  # fmt: skip
        time.sleep(0.05)
        return s.recv(65536)


def _redis_time(port: int) -> float:
    """Redis's TIME, seconds (the reply's two bulk strings: seconds and microseconds)."""
    parts = _call(port, "TIME").split(b"\r\n")
    return int(parts[2]) + int(parts[4]) / 1e6


def test_redis_runs_under_the_shim_and_expires_keys_by_the_shifted_clock(tmp_path):
    """The libfaketime hang is what the shim is for: redis-server starts under it, answers
    TIME by the file's offset, follows a rewrite within milliseconds, and a forward jump
    longer than a key's PX expires the key at once (what frees a Redlock instance early)."""
    shim = _shim()
    path = tmp_path / "offset"
    _set(path, 0.0)
    proc, port = _redis(_env(shim, path), tmp_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if _call(port, "PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start under the shim"
            time.sleep(0.1)
        assert abs(_redis_time(port) - time.time()) < 1.0
        assert _call(port, "SET", "k", "v", "NX", "PX", "30000").startswith(b"+OK")
        _set(path, 45.0)
        time.sleep(0.05)  # the shim reads the file again at most every 5 ms
        assert abs(_redis_time(port) - time.time() - 45.0) < 1.0
        assert _call(port, "GET", "k").startswith(b"$-1"), "the key outlived its 30 s by 45 s"
        assert _call(port, "SET", "k", "w", "NX", "PX", "30000").startswith(b"+OK")
        _set(path, -10.0)  # backwards: the new key lives longer by Redis's clock, not shorter
        time.sleep(0.05)
        assert abs(_redis_time(port) - time.time() + 10.0) < 1.0
        assert _call(port, "GET", "k").startswith(b"$1\r\nw")
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_redis_asks_for_the_shim_and_the_clock_control_gives_its_environment():
    _shim()
    assert RedisTarget.clock_shim is True
    assert ClockFaults().unsupported("clock-bump", RedisTarget) is None
    control = FaketimeControl(shim=True)
    assert control.kind == "shim" and FaketimeControl().kind == "faketime"
    works, detail = clockshim.self_test()  # what `dsjepsen doctor` shows
    assert works, detail


def test_without_gcc_and_without_a_built_shim_redis_clock_faults_are_refused_naming_gcc(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DSJEPSEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CC", "dsj-no-such-compiler")
    why = ClockFaults().unsupported("clock-bump", RedisTarget)
    assert why is not None and "gcc" in why and "\n" not in why
    with pytest.raises(HarnessError, match="gcc"):
        clockshim.build()
    # targets that run under libfaketime do not need it
    from dsjepsen.targets.raft_kv.target import RaftKvTarget

    assert ClockFaults().unsupported("clock-bump", RaftKvTarget) is None


# -- Redlock under clock-bump, on a namespace cluster --------------------------------------------

#: seed 30's first bump (about 2 s in) moves n1 +93.6 s and n2 +92.4 s: two of three Redlock
#: instances jump past every lease, so a second client takes a majority while the first holds
SEED = "30"


def _run(tmp_path: Path, lock: str) -> tuple[dict, list[dict]]:
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (scripts/setup installs it)")
    _shim()
    name = "ck" + os.urandom(2).hex()
    store = tmp_path / lock
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "redis", "--redis-lock", lock,
        "--workload", "lock", "--fencing", "--lease-ms", "1000", "--writes-per-hold", "5",
        "--node-count", "3", "--nemesis", "clock-bump", "--nemesis-interval", "1",
        "--time-limit", "10", "--seed", SEED, "--cluster-name", name, "--store", str(store),
        "--json",
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    finally:
        localnet.down(name)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    history = (store / "latest" / "history.jsonl").read_text().splitlines()
    bumps = [json.loads(line) for line in history if '"start-clock"' in line]
    return json.loads(proc.stdout), [b for b in bumps if b["type"] == "ok"]


@pytest.mark.cluster
@pytest.mark.slow
def test_redlock_under_clock_bump_has_two_holders(tmp_path):
    out, bumps = _run(tmp_path, "redlock")
    assert out["valid"] is False, out["reason"]
    mutex = out["checks"]["lock-mutex"]
    two = [a for a in mutex["anomalies"] if a["type"] == "two-holders"]
    assert two, mutex
    assert all(h["token"] is None for h in two[0]["holds"])  # Redlock gives no token
    assert any("bumped clocks" in f for f in two[0]["faults"]), two[0]
    # the clocks moved, as measured on the nodes through the shim (date under the same preload)
    first = bumps[0]["value"]
    assert set(first["clock_paths"].values()) == {"shim"}
    assert first["verified"] is True
    for node, offset in first["clock_offsets"].items():
        assert abs(first["measured_offsets"][node] - offset) < 0.5, first
    ahead = [n for n, d in first["bumps"].items() if d > 1.0]  # past the 1000 ms lease
    assert len(ahead) >= 2, first  # a majority of the three instances


@pytest.mark.cluster
@pytest.mark.slow
def test_redis_fenced_lock_under_the_same_bumps_stays_valid(tmp_path):
    """The control: one primary hands out an INCR token; the bump that frees its key early
    makes an overlap the fence absorbs (a late holder's writes are rejected)."""
    out, bumps = _run(tmp_path, "fenced")
    assert out["valid"] is True, out["reason"]
    assert bumps and all(b["value"]["verified"] for b in bumps)
    assert out["checks"]["lock-fencing"]["details"]["with_token"] > 10
