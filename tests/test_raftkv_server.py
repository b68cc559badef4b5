"""raft-kv without namespaces: real server processes on 127.0.0.1, its storage, its upload path,
and the client's mapping of HTTP outcomes (against a real HTTP server that answers what the test
tells it to). No root needed."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.cluster.control.local import LocalRemote
from dsjepsen.errors import ConfigError
from dsjepsen.history import Op
from dsjepsen.targets.contract_client import HttpKvClient
from dsjepsen.targets.raft_kv.storage import Entry, Storage
from dsjepsen.targets.raft_kv.target import RaftKvTarget

SERVER = [sys.executable, "-m", "dsjepsen.targets.raft_kv.server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def op(f: str, key: int = 1, value: object = None) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f=f, key=key, value=value)


def wait_status(port: int, cond, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        c = HttpKvClient("127.0.0.1", port, timeout=1.0)
        try:
            status, body = c.request("GET", "/status")
            if status == 200 and cond(body):
                return body
        except Exception:  # noqa: BLE001, S110 - not up yet
            pass
        finally:
            c.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"server on port {port} never reached the expected status")
        time.sleep(0.05)


class Proc:
    def __init__(self, data_dir: Path, *extra: str):
        self.port = free_port()
        self.log = open(data_dir.parent / f"server-{self.port}.log", "w")  # noqa: SIM115
        self.p = subprocess.Popen(
            [*SERVER, "--id", "n1", "--listen", f"127.0.0.1:{self.port}"]
            + ["--data-dir", str(data_dir), "--election-timeout", "100", *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: str = "kill") -> None:
        if self.p.poll() is None:
            self.p.kill() if sig == "kill" else self.p.terminate()
            self.p.wait(timeout=10)
        self.log.close()


@pytest.fixture
def single(tmp_path) -> Iterator:
    """A one-node raft-kv (it is its own majority), killed at the end."""
    procs: list[Proc] = []

    def start(*extra: str, data: str = "data") -> Proc:
        p = Proc(tmp_path / data, *extra)
        procs.append(p)
        wait_status(p.port, lambda s: s["role"] == "leader" and s["commit_index"] >= 1)
        return p

    yield start
    for p in procs:
        p.stop()


def test_single_node_serves_the_contract(single):
    p = single()
    c = HttpKvClient("127.0.0.1", p.port, timeout=2.0)
    try:
        assert c.request("GET", "/kv/1")[0] == 404
        # the contract's optional "node": which node served the request
        assert c.request("PUT", "/kv/1", {"value": 5}) == (200, {"value": 5, "node": "n1"})
        assert c.request("GET", "/kv/1") == (200, {"value": 5, "node": "n1"})
        assert c.request("POST", "/kv/1/cas", {"from": 4, "to": 6})[0] == 409
        assert c.request("POST", "/kv/1/cas", {"from": 5, "to": 6})[0] == 200
        assert c.request("POST", "/kv/2/cas", {"from": 5, "to": 6})[0] == 404
        assert c.request("GET", "/kv/1") == (200, {"value": 6, "node": "n1"})
        assert c.request("PUT", "/kv/1", {"wrong": 1})[0] == 400
        assert c.request("GET", "/kv/1/cas")[0] == 405
        st = c.request("GET", "/status")[1]
        assert {k: st[k] for k in ("id", "role", "leader")} == {
            "id": "n1",
            "role": "leader",
            "leader": "n1",
        }
        assert st["commit_index"] == st["last_applied"] >= 5
        # the client maps the same answers onto Jepsen's op types
        assert c.invoke(op("read", 1)).value == 6
        assert c.invoke(op("read", 3)).type == "ok" and c.invoke(op("read", 3)).value is None
        assert c.invoke(op("write", 3, 7)).type == "ok"
        assert c.invoke(op("cas", 3, [7, 8])).type == "ok"
        assert c.invoke(op("cas", 3, [7, 9])).error == "cas-mismatch"
        assert c.invoke(op("cas", 4, [7, 9])).error == "cas-absent"
    finally:
        c.close()


def test_restart_recovers_term_vote_and_log(single, tmp_path):
    p = single()
    c = HttpKvClient("127.0.0.1", p.port, timeout=2.0)
    for k in range(20):
        assert c.invoke(op("write", k, k + 100)).type == "ok"
    term = c.request("GET", "/status")[1]["term"]
    c.close()
    p.stop("kill")
    p2 = single()
    st = wait_status(p2.port, lambda s: s["last_applied"] >= 21)
    assert st["term"] > term  # the old term was remembered, a new election went past it
    c = HttpKvClient("127.0.0.1", p2.port, timeout=2.0)
    try:
        assert [c.invoke(op("read", k)).value for k in range(20)] == [k + 100 for k in range(20)]
    finally:
        c.close()


def test_unknown_bug_is_refused_with_one_line(tmp_path):
    res = subprocess.run(
        [*SERVER, "--id", "n1", "--listen", "127.0.0.1:1", "--data-dir", str(tmp_path)]
        + ["--bug", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert "unknown --bug 'nope'" in res.stderr
    with pytest.raises(ConfigError, match="unknown raft-kv bug"):
        RaftKvTarget(bugs=["nope"])
    with pytest.raises(ConfigError, match="shorter than the client timeout"):
        RaftKvTarget(client_timeout=1.0, request_timeout=1.0)


# -- storage ------------------------------------------------------------------------------------


def test_storage_survives_a_torn_tail_and_rewrites_on_truncate(tmp_path):
    st = Storage(str(tmp_path))
    st.save_meta(3, "n2")
    st.append([Entry(1, {"op": "put", "key": "a", "value": i}) for i in range(5)])
    st.sync()
    st.close()
    with open(tmp_path / "log.jsonl", "ab") as fh:
        fh.write(b'0badf00d:{"t":1,"c":{"op":"pu')  # a crash in the middle of a write
    st = Storage(str(tmp_path))
    assert (st.term, st.voted_for, st.last_index, st.durable) == (3, "n2", 5, 5)
    st.truncate(3)
    st.append([Entry(2, {"op": "noop"})])
    st.sync()
    st.close()
    st = Storage(str(tmp_path))
    assert [e.term for e in st.entries] == [1, 1, 2]
    st.close()


def _five(tmp_path) -> bytes:
    st = Storage(str(tmp_path))
    st.save_meta(2, "n1")
    st.append([Entry(1, {"f": "write", "key": 1, "value": 20 + i}) for i in range(5)])
    st.sync()
    st.close()
    return (tmp_path / "log.jsonl").read_bytes()


def test_a_bitflip_in_a_log_value_is_refused_not_read_as_another_value(tmp_path):
    """The bug the checksum fixes: flipping bit 0 of the digit '2' makes it '3', and the record
    is still valid JSON, so a store without checksums would apply a value nobody wrote (or,
    for a flip that breaks the JSON, cut its log there, forgetting acknowledged entries)."""
    import json

    from dsjepsen.targets.raft_kv.storage import CorruptLog

    raw = _five(tmp_path)
    at = raw.index(b'"value":22') + len(b'"value":')
    flipped = raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]
    line = flipped.splitlines()[2]
    assert json.loads(line.partition(b":")[2])["c"]["value"] == 32  # silently another value
    (tmp_path / "log.jsonl").write_bytes(flipped)
    with pytest.raises(CorruptLog, match=r"record 3 \(bytes \d+\.\.\d+\) fails its checksum"):
        Storage(str(tmp_path))
    assert (tmp_path / "log.jsonl").read_bytes() == flipped  # nothing cut: the operator decides


def test_a_torn_tail_is_cut_and_a_hole_of_zeros_is_a_torn_tail(tmp_path, caplog):
    raw = _five(tmp_path)
    lines = raw.splitlines(keepends=True)
    # a write of records 4 and 5 torn: its middle third never reached the disk (zeros)
    tail = b"".join(lines[3:])
    third = len(tail) // 3
    holed = b"".join(lines[:3]) + tail[:third] + b"\0" * third + tail[2 * third :]
    (tmp_path / "log.jsonl").write_bytes(holed)
    with caplog.at_level("WARNING", logger="raft-kv"):
        st = Storage(str(tmp_path))
    assert [e.cmd["value"] for e in st.entries] == [20, 21, 22]
    assert "cutting a torn tail" in caplog.text
    st.close()
    assert (tmp_path / "log.jsonl").read_bytes() == b"".join(lines[:3])
    # the file ending inside a record (its last part never written): cut as well
    (tmp_path / "log.jsonl").write_bytes(raw[:-7])
    assert Storage(str(tmp_path)).last_index == 4
    # a write torn at a sector boundary one byte into the last record: its first byte a hole
    start = len(b"".join(lines[:4]))
    (tmp_path / "log.jsonl").write_bytes(raw[:start] + b"\0" + raw[start + 1 :])
    assert Storage(str(tmp_path)).last_index == 4


def test_a_corrupted_term_or_vote_is_refused(tmp_path):
    from dsjepsen.targets.raft_kv.storage import CorruptLog

    _five(tmp_path)
    meta = (tmp_path / "meta.json").read_bytes()
    assert Storage(str(tmp_path)).term == 2
    at = meta.index(b'"term": 2') + len(b'"term": ')
    (tmp_path / "meta.json").write_bytes(meta[:at] + b"3" + meta[at + 1 :])  # '2' -> '3'
    with pytest.raises(CorruptLog, match="term and vote fail their checksum"):
        Storage(str(tmp_path))


def test_a_node_with_a_corrupt_log_refuses_to_start_with_one_log_line(tmp_path):
    import subprocess
    import sys

    raw = _five(tmp_path)
    at = raw.index(b'"value":21') + len(b'"value":')
    (tmp_path / "log.jsonl").write_bytes(raw[:at] + bytes([raw[at] ^ 4]) + raw[at + 1 :])
    res = subprocess.run(
        [sys.executable, "-m", "dsjepsen.targets.raft_kv.server", "--id", "n1",
         "--listen", "127.0.0.1:0", "--peers", "", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 71, res.stderr
    assert "refusing to start" in res.stderr and "record 2" in res.stderr


def test_storage_without_fsync_writes_the_log_but_never_fsyncs_it(tmp_path, monkeypatch):
    """no-fsync is real now (the fault file system's power failure is what loses the tail): the
    log is written, so a kill keeps it in the page cache, but no fsync makes it durable; the
    correct store fsyncs every sync."""
    import dsjepsen.targets.raft_kv.storage as storage

    synced: list[int] = []
    monkeypatch.setattr(storage.os, "fsync", lambda fd: synced.append(fd))
    st = Storage(str(tmp_path / "bug"), fsync=False)
    st.append([Entry(1, {"op": "noop"})])
    st.sync()
    assert Storage(str(tmp_path / "bug")).last_index == 1  # written: what a SIGKILL leaves
    before = len(synced)
    st.append([Entry(1, {"op": "noop"})])
    st.sync()
    assert len(synced) == before  # but never fsynced
    ok = Storage(str(tmp_path / "ok"))
    ok.append([Entry(1, {"op": "noop"})])
    before = len(synced)
    ok.sync()
    assert len(synced) > before


# -- uploading the server to a node that only has python3 -------------------------------------


def test_upload_runs_the_stdlib_only_copy_with_the_nodes_python3(tmp_path):
    """The ssh/docker path of RaftKvTarget, over a Remote that runs commands on this machine:
    the package is copied to the node's workdir and started as `python3 -m raft_kv.server`."""
    node = Node("n1", "127.0.0.1", str(tmp_path / "node"))
    remote = LocalRemote(node, None)
    cluster = Cluster(kind="ssh", nodes=[node], remotes={"n1": remote}, name="upload")
    target = RaftKvTarget(port=free_port(), election_timeout_ms=100)
    try:
        target.setup(cluster)
        code = Path(target.code_dir(node))
        assert (code / "raft_kv" / "server.py").exists()
        assert not (code / "raft_kv" / "target.py").exists()
        # no site-packages (so no dsjepsen): the copy must import on the standard library alone
        remote.run(["python3", "-S", "-c", "import raft_kv.server, raft_kv.node"], cwd=str(code))
        assert "python3 -m raft_kv.server" in target.describe(cluster, "n1")
        c = target.client(cluster, "n1")
        assert c.invoke(op("write", 1, 1)).type == "ok"
        assert c.invoke(op("read", 1)).value == 1
        c.close()
        assert target.leader(cluster) == "n1"
        pid = target.pid(cluster, "n1")
        assert pid and os.path.exists(f"/proc/{pid}")
    finally:
        target.teardown(cluster)
    assert not Path(target.data_dir(node)).exists()
    assert target.status(cluster, "n1") is None


# -- the client's mapping, against a real HTTP server that answers as told --------------------


class Canned(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan: dict = {}

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        mode, status = Canned.plan["mode"], Canned.plan.get("status", 200)
        if mode == "hang":
            time.sleep(1.5)
            return
        if mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = json.dumps(Canned.plan.get("body", {})).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[int, dict]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], Canned.plan
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    ("f", "status", "body", "expected"),
    [
        ("read", 200, {"value": 3}, ("ok", 3)),
        ("read", 404, {}, ("ok", None)),
        ("read", 503, {"leader": "n2"}, ("fail", None)),
        ("write", 200, {}, ("ok", 4)),
        ("write", 503, {"leader": None}, ("fail", 4)),
        ("write", 504, {}, ("info", 4)),
        ("write", 500, {}, ("info", 4)),
        ("cas", 200, {}, ("ok", [1, 2])),
        ("cas", 409, {"value": 7}, ("fail", [1, 2])),
        ("cas", 404, {}, ("fail", [1, 2])),
        ("cas", 504, {}, ("info", [1, 2])),
    ],
)
def test_client_maps_statuses(canned, f, status, body, expected):
    port, plan = canned
    plan.update(mode="answer", status=status, body=body)
    value = {"read": None, "write": 4, "cas": [1, 2]}[f]
    c = HttpKvClient("127.0.0.1", port, timeout=1.0)
    try:
        done = c.invoke(op(f, 1, value))
    finally:
        c.close()
    assert (done.type, done.value) == expected
    if status == 503:
        assert done.error["leader"] == body["leader"]


@pytest.mark.parametrize("mode", ["hang", "drop"])
def test_client_reports_sent_but_unanswered_as_info_and_reconnects(canned, mode):
    port, plan = canned
    c = HttpKvClient("127.0.0.1", port, timeout=0.5)
    try:
        plan.update(mode=mode)
        done = c.invoke(op("write", 1, 1))
        assert done.type == "info", done
        plan.update(mode="answer", status=200, body={})
        time.sleep(1.2 if mode == "hang" else 0)  # let the hung handler finish
        assert c.invoke(op("write", 1, 1)).type == "ok"  # a fresh connection
    finally:
        c.close()


def test_client_reports_refused_connection_as_fail():
    c = HttpKvClient("127.0.0.1", free_port(), timeout=1.0)
    done = c.invoke(op("write", 1, 1))
    assert done.type == "fail" and "not sent" in done.error
