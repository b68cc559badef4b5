"""Issue 10, `dsjepsen serve` over real sockets: over-long paths, IPv6 loopback, all of
127.0.0.0/8, idle connections, and no traceback or dropped connection for any of them."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import serving
from synthetic_runs import build_run_dir

from dsjepsen.commands.serve import is_loopback, url_host
from dsjepsen.reports.server import IDLE_TIMEOUT, make_server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve") / "store"
    build_run_dir(root, n_ops=100, verdict="valid", name="older-valid")
    return root


def request(
    host: str, port: int, path: str, method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


# The serve command on its own (its parser and run()), so that this test depends on no other
# subcommand's imports; tests/test_serve_store.py runs it through `python -m dsjepsen`.
SERVE_MAIN = """
import argparse, sys
from dsjepsen.commands import serve
parser = argparse.ArgumentParser(prog="dsjepsen")
serve.register(parser.add_subparsers())
args = parser.parse_args(["serve", *sys.argv[1:]])
sys.exit(args.func(args))
"""


class Serve:
    """`dsjepsen serve` in a subprocess: its address, and its stderr at the end."""

    def __init__(self, store: Path, host: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_MAIN, "--store", str(store), "--host", host]
            + ["--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        m = re.search(r"http://(\[[0-9a-f:]+\]|[\d.]+):(\d+)/", line)
        if not m:
            self.stop()
            raise AssertionError(f"no URL in {line!r}; stderr: {self.stderr}")
        self.url_host = m.group(1)
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        deadline = time.monotonic() + 30
        while True:
            try:
                return request(self.host, self.port, path)
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        self.stderr = err
        return err


@pytest.fixture
def served(store: Path) -> Iterator[Serve]:
    s = Serve(store, "127.0.0.1")
    try:
        yield s
    finally:
        s.stop()


def test_overlong_paths_are_answered_without_a_traceback(served: Serve) -> None:
    cases = [
        ("/" + "a" * 300, 404),  # one segment longer than any file name
        ("/older-valid/" + "b" * 256 + "/x", 404),
        ("/%41" * 100 + "/" + "%62" * 256, 404),  # 256 bytes once decoded
        ("/" + "/".join(["c" * 200] * 25), 414),  # every segment fine, the path too long
        ("/" + "d" * 70_000, 414),  # longer than the request line http.server reads
    ]
    for path, status in cases:
        got, headers, body = served.get(path)
        assert got == status, (path[:40], got, body[:200])
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert "content-security-policy" in headers
    assert served.get("/")[0] == 200  # still serving
    err = served.stop()
    assert "Traceback" not in err and "ENAMETOOLONG" not in err and "File name too long" not in err


def test_bad_request_line_is_text_and_echoes_nothing_as_html(served: Serve) -> None:
    with socket.create_connection((served.host, served.port), timeout=30) as s:
        s.sendall(b"<script>x</script> / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 501 ") or head.startswith(b"HTTP/1.0 400 "), head
    assert b"Content-Type: text/plain; charset=utf-8" in head
    assert b"Content-Security-Policy: default-src 'none'; sandbox" in head
    assert b"<script>" not in head


def test_redirect_never_names_another_host(served: Serve) -> None:
    status, headers, _ = served.get("//older-valid")
    assert status == 301 and headers["location"] == "/older-valid/"


def test_ipv6_loopback(store: Path) -> None:
    s = Serve(store, "::1")
    try:
        assert s.url_host == "[::1]"
        status, _, body = s.get("/")
        assert status == 200 and "older-valid" in body
    finally:
        err = s.stop()
    assert "reachable from other machines" not in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["127.1", "127.0.0.2", "localhost"])
def test_all_of_127_8_is_loopback_and_not_warned_about(store: Path, host: str) -> None:
    s = Serve(store, host)
    try:
        status, _, _ = s.get("/")
        assert status == 200
    finally:
        err = s.stop()
    assert "reachable from other machines" not in err, err


def test_loopback_rule() -> None:
    for a in ("127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "::ffff:127.0.0.9"):
        assert is_loopback(a), a
    for a in ("0.0.0.0", "::", "10.1.2.3", "192.168.0.1", "::ffff:10.0.0.1", "not-an-ip", ""):
        assert not is_loopback(a), a
    assert url_host("::1") == "[::1]" and url_host("127.0.0.1") == "127.0.0.1"


@pytest.fixture
def quick_server(store: Path) -> Iterator[tuple[str, int]]:
    """In-process, with a 1 s idle timeout instead of IDLE_TIMEOUT, so the test is quick."""
    with serving(store, idle_timeout=1.0) as addr:
        yield addr


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["silent", "partial"])
def test_idle_connections_are_dropped(quick_server: tuple[str, int], sent: bytes) -> None:
    with socket.create_connection(quick_server, timeout=30) as s:
        t0 = time.monotonic()
        s.sendall(sent)
        assert s.recv(1024) == b""  # the server hung up: no response to an unfinished request
        elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed < 10, elapsed
    assert request(*quick_server, "/")[0] == 200


def test_default_idle_timeout(store: Path) -> None:
    srv = make_server(store, "127.0.0.1", 0, quiet=True)
    try:
        assert srv.RequestHandlerClass.timeout == IDLE_TIMEOUT == 30.0
    finally:
        srv.server_close()
