"""Issue 10, in a real browser: the report and `dsjepsen serve`'s pages under their content
security policies, driven through headless Chromium's DevTools protocol.

Chromium is started with a remote-debugging port; a few lines of WebSocket (below, stdlib only)
let the test evaluate expressions in the page (computed styles, a link's resolved protocol),
click, and hear every console message, uncaught exception and JavaScript dialog. Evaluation
through DevTools is not subject to the page's CSP, so it observes without loosening anything.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.reports.html import render_run_report
from dsjepsen.reports.server import make_server
from dsjepsen.reports.synthetic import build_run_dir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup installs Debian's chromium)"
)
PLANTED = "javascript:alert(1)"


class Cdp:
    """One DevTools WebSocket connection to one page: commands, and the events seen so far."""

    def __init__(self, ws_url: str, timeout: float = 30.0) -> None:
        rest = ws_url.removeprefix("ws://")
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, "DevTools closed the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "DevTools connection closed"
            buf += chunk
        return buf

    def _recv_message(self) -> dict[str, Any]:
        data = b""
        while True:
            b0, b1 = self._recv_exact(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            payload = self._recv_exact(n)
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            assert opcode != 0x8, "DevTools closed the connection"
            data += payload
            if b0 & 0x80:  # FIN
                return json.loads(data)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        self._send_frame(0x1, json.dumps({"id": mid, "method": method, "params": params}).encode())
        while True:
            msg = self._recv_message()
            if msg.get("id") == mid:
                assert "error" not in msg, msg
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("method") == method:
                    return ev
            seen = len(self.events)
            assert time.monotonic() < deadline, f"no {method} within {timeout}s"
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self.events.append(self._recv_message())
            except TimeoutError:
                pass
            finally:
                self.sock.settimeout(30.0)

    def drain(self, seconds: float) -> None:
        """Collect events for a while (after an action whose effects come later)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.events.append(self._recv_message())
            except TimeoutError:
                break
        self.sock.settimeout(30.0)

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in res, res
        return res["result"].get("value")

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, CSP refusals, dialogs: each one a
        sign that the page did something other than render."""
        out = []
        for ev in self.events:
            m, p = ev.get("method"), ev.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                out.append(f"log: {p['entry'].get('text')}")
            elif m == "Page.javascriptDialogOpening":
                out.append(f"dialog: {p.get('message')}")
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Cdp]:
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1300,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cdp = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            conn.request("GET", "/json/list")
            pages = [t for t in json.loads(conn.getresponse().read()) if t["type"] == "page"]
            if pages:
                break
            assert time.monotonic() < deadline, "chromium opened no page"
            time.sleep(0.1)
        conn.close()
        cdp = Cdp(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            cdp.call(f"{domain}.enable")
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A store with one rendered run that holds a file named `javascript:alert(1)`, served on
    a free loopback port; yields (base URL, run directory)."""
    store = tmp_path / "store"
    run = build_run_dir(store, n_ops=600, evil=True)
    (run / PLANTED).write_text("planted\n")
    render_run_report(run)
    srv = make_server(store, "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        host, port = srv.server_address[:2]
        yield f"http://{host}:{port}/", run
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


def _timeline_drawn(cdp: Cdp) -> int:
    deadline = time.monotonic() + 20
    while True:
        drawn = cdp.evaluate(
            "(function(){var t=document.getElementById('timeline');"
            "return t && t.getAttribute('data-rendered')==='1' ? "
            "Number(t.getAttribute('data-drawn')) : -1})()"
        )
        if drawn >= 0 or time.monotonic() > deadline:
            return drawn
        time.sleep(0.1)


FILE_LINK = (
    "(function(){var a=[].slice.call(document.querySelectorAll('a')).filter(function(x)"
    "{return x.textContent.indexOf('javascript:')>=0})[0]; return a ? {protocol: a.protocol, "
    "href: a.href, attr: a.getAttribute('href')} : null})()"
)


def test_report_runs_under_its_policy_from_disk_and_from_serve(
    browser: Cdp, served: tuple[str, Path]
) -> None:
    base, run = served
    rel = run.relative_to(run.parents[1]).as_posix()
    for url in (run.joinpath("report.html").as_uri(), f"{base}{rel}/report.html"):
        browser.open(url)
        assert _timeline_drawn(browser) > 100, url
        assert browser.evaluate("document.documentElement.hasAttribute('data-js-errors')") is False
        # the stylesheet applied: the banner is a white-on-red flex row, not default black text
        style = browser.evaluate(
            "(function(){var s=getComputedStyle(document.querySelector('header.banner'));"
            "return [s.display, s.color, s.backgroundImage.slice(0, 15)]})()"
        )
        assert style == ["flex", "rgb(255, 255, 255)", "linear-gradient"], style
        assert browser.problems() == [], (url, browser.problems())


def test_planted_scheme_file_name_is_only_a_path(browser: Cdp, served: tuple[str, Path]) -> None:
    base, run = served
    rel = run.relative_to(run.parents[1]).as_posix()
    report_url = f"{base}{rel}/report.html"
    browser.open(report_url)
    link = browser.evaluate(FILE_LINK)
    assert link == {
        "protocol": "http:",
        "href": f"{base}{rel}/javascript%3Aalert%281%29",
        "attr": "./javascript%3Aalert%281%29",
    }
    # clicking it opens the file (as text), and no script runs
    browser.evaluate(
        "[].slice.call(document.querySelectorAll('#files a')).filter(function(x)"
        "{return x.textContent==='javascript:alert(1)'})[0].click()"
    )
    browser.wait_for("Page.loadEventFired")
    browser.drain(0.5)
    assert browser.evaluate("location.href") == f"{base}{rel}/javascript%3Aalert%281%29"
    assert browser.evaluate("document.body.textContent.trim()") == "planted"
    assert [p for p in browser.problems() if p.startswith("dialog")] == []
    # the same from disk: a file: URL, never a javascript: one
    browser.open(run.joinpath("report.html").as_uri())
    assert browser.evaluate(FILE_LINK)["protocol"] == "file:"
    # and serve's own listing of the run directory links it as a path too
    browser.open(f"{base}{rel}/")
    listed = browser.evaluate(FILE_LINK)
    assert listed["protocol"] == "http:" and listed["attr"].startswith("./javascript%3A")


def test_dialog_detector_is_not_vacuous(browser: Cdp, tmp_path: Path) -> None:
    """Without our link encoding (and without a policy) the same name is a live script."""
    page = tmp_path / "raw.html"
    page.write_text(f'<a id="x" href="{PLANTED}">{PLANTED}</a>')
    browser.open(page.as_uri())
    assert browser.evaluate("document.getElementById('x').protocol") == "javascript:"
    browser.call("Runtime.evaluate", expression="document.getElementById('x').click()")
    ev = browser.wait_for("Page.javascriptDialogOpening", timeout=10)
    assert ev["params"]["message"] == "1"
    browser.call("Page.handleJavaScriptDialog", accept=True)


def test_serve_pages_are_styled_and_scriptless(browser: Cdp, served: tuple[str, Path]) -> None:
    base, run = served
    rel = run.relative_to(run.parents[1]).as_posix()
    for url in (base, f"{base}{rel}/"):
        browser.open(url)
        header_bg = browser.evaluate(
            "getComputedStyle(document.querySelector('header')).backgroundColor"
        )
        font = browser.evaluate("getComputedStyle(document.body).fontFamily")
        assert header_bg == "rgb(29, 36, 51)", (url, header_bg)  # #1d2433 from index.css
        assert "system-ui" in font, (url, font)
        assert browser.problems() == [], (url, browser.problems())
    # no script may run on these pages: one planted in a listing would be refused
    browser.open(base)
    browser.call(
        "Runtime.evaluate",
        expression="var s=document.createElement('script');s.textContent="
        "'document.title=\"ran\"';document.body.appendChild(s);",
    )
    browser.drain(0.5)
    assert browser.evaluate("document.title") != "ran"
    assert any("Content Security Policy" in p for p in browser.problems()), browser.problems()
