"""How the etcd client classifies what it sees, against a scripted HTTP server on 127.0.0.1.

etcd itself rarely produces most gateway errors on demand (too many requests, a proposal
timeout), so a local server answers with etcd's exact error bodies; the real-etcd behaviour
(timeouts on a paused node, a read on a minority node) is in test_etcd_cluster.py.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dsjepsen.cluster.control.base import Node, Remote, RemoteError, Result
from dsjepsen.errors import HarnessError
from dsjepsen.history import Op
from dsjepsen.targets.etcd import EtcdClient
from dsjepsen.targets.process import require_binary


class Scripted(BaseHTTPRequestHandler):
    reply: tuple[int, dict] = (200, {})
    seen: list[tuple[str, dict]] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).seen.append((self.path, body))
        status, doc = type(self).reply
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Scripted.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def client(port: int, serializable: bool = False) -> EtcdClient:
    return EtcdClient("127.0.0.1", timeout=1.0, serializable=serializable, port=port)


def op(f, key=1, value=None):
    return Op(index=0, time=0, process=0, type="invoke", f=f, value=value, key=key)


def err(message: str, code: int = 14) -> dict:
    return {"error": message, "message": message, "code": code}


@pytest.mark.parametrize(
    ("f", "value", "status", "body", "expected"),
    [
        ("write", 1, 503, err("etcdserver: request timed out"), "info"),
        ("cas", [1, 2], 503, err("etcdserver: leader changed"), "info"),
        ("write", 1, 503, err("etcdserver: too many requests", 8), "fail"),
        ("write", 1, 503, err("etcdserver: no leader"), "fail"),
        ("write", 1, 503, err("raft proposal dropped"), "fail"),
        ("write", 1, 400, err("etcdserver: key is not provided", 3), "fail"),
        ("read", None, 503, err("etcdserver: request timed out"), "fail"),
        ("read", None, 500, err("something odd", 2), "fail"),
        ("write", 1, 500, err("something odd", 2), "info"),
    ],
)
def test_gateway_errors(server, f, value, status, body, expected):
    Scripted.reply = (status, body)
    done = client(server.server_port).invoke(op(f, value=value))
    assert done.type == expected
    assert done.error == body["message"]


def test_request_shapes(server):
    c = client(server.server_port, serializable=True)
    Scripted.reply = (200, {"kvs": [{"key": "x", "value": "NDI="}]})  # "42"
    r = c.invoke(op("read", key=3))
    assert (r.type, r.value) == ("ok", 42)
    path, body = Scripted.seen[-1]
    assert path == "/v3/kv/range" and body["serializable"] is True
    assert body["key"] == "ZHNqLzM="  # base64 of dsj/3
    Scripted.reply = (200, {"succeeded": False, "responses": [{"response_range": {}}]})
    r = c.invoke(op("cas", key=3, value=[1, 2]))
    assert r.type == "fail" and "absent" in r.error
    path, body = Scripted.seen[-1]
    assert path == "/v3/kv/txn"
    assert body["compare"][0]["target"] == "VALUE" and body["compare"][0]["value"] == "MQ=="
    assert body["success"][0]["request_put"]["value"] == "Mg=="
    Scripted.reply = (200, {"succeeded": True})
    assert c.invoke(op("cas", key=3, value=[1, 2])).type == "ok"
    assert c.invoke(op("write", key=3, value=5)).type == "ok"
    assert Scripted.seen[-1][0] == "/v3/kv/put"
    assert c.invoke(op("delete")).type == "fail"


def test_connection_refused_is_fail():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for f, value in (("write", 1), ("cas", [1, 2]), ("read", None)):
        done = client(port).invoke(op(f, value=value))
        assert done.type == "fail" and done.error.startswith("not sent")


def test_no_answer_after_sending_is_info_for_writes_and_fail_for_reads():
    with socket.socket() as s:  # accepts connections (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        port = s.getsockname()[1]
        w = client(port).invoke(op("write", value=1))
        assert (w.type, w.error) == ("info", "timeout")
        c = client(port).invoke(op("cas", value=[1, 2]))
        assert c.type == "info"
        r = client(port).invoke(op("read"))
        assert (r.type, r.error) == ("fail", "timeout")


class NoEtcdRemote(Remote):
    def __init__(self, uid: str):
        self.node = Node("n4", "10.0.0.4", "/tmp/n4")
        self.uid = uid
        self.ran: list[list[str]] = []

    def run(self, argv, timeout=30.0, check=True, input=None, env=None, cwd=None):
        self.ran.append(list(argv))
        if argv[0] == "id":
            return Result(0, self.uid + "\n", "")
        if argv[0] in ("apt-get", "systemctl"):
            return Result(0, "", "")
        res = Result(1, "", "exec of etcd failed: No such file or directory")
        if check:
            raise RemoteError(self.node.name, argv, "exit 1", res)
        return res

    def put(self, local, remote, timeout=30.0): ...
    def get(self, remote, local, timeout=30.0): ...


def test_missing_etcd_without_root_names_the_node():
    remote = NoEtcdRemote("1000")
    with pytest.raises(HarnessError, match=r"node n4: etcd is not installed.*etcd-server"):
        require_binary(remote, "etcd", "etcd-server")
    assert not any(a[0] == "apt-get" for a in remote.ran)


def test_missing_etcd_as_root_installs_with_apt_get():
    remote = NoEtcdRemote("0")
    with pytest.raises(HarnessError, match="node n4: etcd does not run even after apt-get"):
        require_binary(remote, "etcd", "etcd-server")  # this fake node never gains etcd
    assert ["apt-get", "install", "-y", "--no-install-recommends", "etcd-server"] in remote.ran
