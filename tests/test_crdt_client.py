"""ContractClient's mapping of the set and counter endpoints onto ok / fail / info, against a
real HTTP server that answers what the test tells it to, and the setup round trip against a
real crdt-kv node."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crdt_replicas import Replicas, free_port, replica_sets

from dsjepsen.history import Op
from dsjepsen.targets.contract_client import ContractClient, setup_round_trip

VALUES = {"add": 7, "read-set": None, "increment": -2, "read-counter": None}


def op(f: str, key: Any = 1) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f=f, value=VALUES.get(f), key=key)


class Canned(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan: dict[str, Any] = {}
    seen: list[tuple[str, str, Any]] = []

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        Canned.seen.append((self.command, self.path, body))
        mode = Canned.plan["mode"]
        if mode == "hang":
            time.sleep(1.0)
            return
        if mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = json.dumps(Canned.plan.get("body", {})).encode()
        self.send_response(Canned.plan.get("status", 200))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[int, dict[str, Any]]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Canned.seen.clear()
    yield srv.server_address[1], Canned.plan
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Callable[..., Replicas]]:
    with replica_sets(tmp_path) as make:
        yield make


@pytest.mark.parametrize(
    ("f", "status", "body", "expected"),
    [
        ("add", 200, {}, ("ok", 7)),
        ("add", 400, {"error": "no"}, ("fail", 7)),
        ("add", 503, {}, ("fail", 7)),
        ("add", 504, {}, ("info", 7)),
        ("add", 500, {}, ("info", 7)),
        ("add", 404, {}, ("info", 7)),  # not a documented answer to an update: unknown
        ("read-set", 200, {"elements": [3, 1]}, ("ok", [3, 1])),
        ("read-set", 404, {}, ("ok", [])),
        ("read-set", 200, {"value": 3}, ("fail", None)),  # no usable answer: as if never run
        ("read-set", 503, {}, ("fail", None)),
        ("increment", 200, {}, ("ok", -2)),
        ("increment", 400, {}, ("fail", -2)),
        ("increment", 504, {}, ("info", -2)),
        ("read-counter", 200, {"value": 5}, ("ok", 5)),
        ("read-counter", 404, {}, ("ok", 0)),
        ("read-counter", 200, {"value": "5"}, ("fail", None)),
        ("read-counter", 500, {}, ("fail", None)),
    ],
)
def test_statuses_map_onto_op_types(canned, f, status, body, expected) -> None:
    port, plan = canned
    plan.update(mode="answer", status=status, body=body)
    c = ContractClient("127.0.0.1", port, timeout=1.0)
    try:
        done = c.invoke(op(f, key="a b/c"))
    finally:
        c.close()
    assert (done.type, done.value) == expected
    method, path, sent = Canned.seen[-1]
    kind = "set" if f in ("add", "read-set") else "counter"
    assert path == f"/{kind}/a%20b%2Fc"  # the key is one percent-encoded path segment
    assert method == ("GET" if f.startswith("read") else "POST")
    assert sent == {"add": {"element": 7}, "increment": {"delta": -2}}.get(f)


@pytest.mark.parametrize("mode", ["hang", "drop"])
def test_sent_but_unanswered_is_info_for_updates_and_fail_for_reads(canned, mode) -> None:
    port, plan = canned
    plan.update(mode=mode)
    c = ContractClient("127.0.0.1", port, timeout=0.5)
    try:
        assert c.invoke(op("add")).type == "info"
        assert c.invoke(op("increment")).type == "info"
        assert c.invoke(op("read-set")).type == "fail"
        assert c.invoke(op("read-counter")).type == "fail"
    finally:
        c.close()


def test_refused_connection_is_fail_and_register_fs_still_work(canned) -> None:
    c = ContractClient("127.0.0.1", free_port(), timeout=1.0)
    done = c.invoke(op("add"))
    assert done.type == "fail" and "not sent" in done.error
    port, plan = canned
    plan.update(mode="answer", status=200, body={"value": 4})
    c = ContractClient("127.0.0.1", port, timeout=1.0)
    try:
        read = Op(0, 0, 0, "invoke", "read", None, key=1)
        assert c.invoke(read).value == 4 and Canned.seen[-1][1] == "/kv/1"
        assert c.invoke(Op(0, 0, 0, "invoke", "nope", None, key=1)).type == "fail"
    finally:
        c.close()


def test_setup_round_trip_finds_whichever_family_a_store_serves(canned, replicas) -> None:
    r = replicas(1)
    c = ContractClient("127.0.0.1", r.ports["n1"], timeout=2.0)
    try:
        assert setup_round_trip(c) is None  # crdt-kv: no registers, sets work
    finally:
        c.close()
    port, plan = canned
    plan.update(mode="answer", status=404, body={"error": "no such endpoint"})
    c = ContractClient("127.0.0.1", port, timeout=1.0)
    try:
        why = setup_round_trip(c)
    finally:
        c.close()
    assert why is not None and why.startswith("register: 404") and "counter: 404" in why
