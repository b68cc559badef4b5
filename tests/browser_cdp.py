"""Headless Chromium driven over the DevTools protocol, for the report's browser tests.

Chromium is started with a remote-debugging port; a few lines of WebSocket (below, stdlib only)
let a test evaluate expressions in the page (computed styles, element boxes), click, take
screenshots, and hear every console message, uncaught exception and JavaScript dialog.
Evaluation through DevTools is not subject to the page's CSP, so it observes without
loosening anything. Also what several report tests ask of a page: open it at a window width
(`show`), the op each part of it calls the first anomaly, and the texts that poke out of their
diagram or plot (`CLIPPED_JS`).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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

    def set_width(self, width: int, height: int = 1000) -> None:
        """Lay the page out as in a window `width` CSS px wide."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        """Save a PNG of the page (the whole page when full_page) for a person to look at."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size[0],
                "height": min(size[1], 16000),
                "scale": 1,
            }
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.write_bytes(base64.b64decode(data))


@contextlib.contextmanager
def launch(profile: Path) -> Iterator[Cdp]:
    """Start headless Chromium with its own profile directory and yield a DevTools connection
    to its page; Chromium is stopped on the way out, also on failure."""
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


# -- what the report tests ask of a page ----------------------------------------------------

#: every <text> of every diagram and plot whose box is not inside its container: the SVG's
#: box, and for a diagram's op label also its op's bar (the label must not spill out of it)
CLIPPED_JS = """(function(){
  var out = [];
  function inside(a, b) { return a.left >= b.left - 1 && a.right <= b.right + 1 &&
                                 a.top >= b.top - 1 && a.bottom <= b.bottom + 1; }
  document.querySelectorAll('svg.porcupine, svg.plot').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    if (box.width === 0) { return; }
    svg.querySelectorAll('text').forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (!inside(r, box)) { out.push((svg.id || svg.getAttribute('class')) + ': ' + t.textContent); return; }
      var rect = t.parentNode.querySelector && t.parentNode.tagName === 'g' ? t.parentNode.querySelector('rect') : null;
      if (rect && svg.classList.contains('porcupine') && !inside(r, rect.getBoundingClientRect())) {
        out.push('label outside its bar: ' + t.textContent);
      }
    });
  });
  return out;
})()"""


def show(cdp: Cdp, url: str, width: int = 1400) -> None:
    """Open a report at a window width and wait until its timeline is drawn."""
    cdp.set_width(width)
    cdp.open(url)
    deadline = time.monotonic() + 20
    while not cdp.evaluate(
        "document.getElementById('timeline').getAttribute('data-rendered') === '1'"
    ):
        assert time.monotonic() < deadline, "the timeline was never drawn"
        time.sleep(0.1)


def first_anomaly_ops(cdp: Cdp) -> dict[str, Any]:
    """The op each part of the page calls the first anomaly."""
    return cdp.evaluate(
        """(function(){
      var m = /First anomaly: .*?\\(op (\\d+)/.exec(document.getElementById('summary-text').textContent);
      var sec = document.getElementById('first-anomaly');
      var rows = [].slice.call(document.querySelectorAll('#rca-timeline tr.k-anomaly td'));
      var rm = rows.length ? /first anomalous op (\\d+)/.exec(rows[1].textContent) : null;
      var btn = [].slice.call(document.querySelectorAll('.tl-btn')).filter(function (b) {
        return b.textContent === 'first anomaly'; })[0];
      if (btn) { btn.click(); }
      var sel = document.querySelector('.tl-op.selected');
      return {summary: m ? Number(m[1]) : null, section: sec ? Number(sec.getAttribute('data-op')) : null,
              rca: rm ? Number(rm[1]) : null, button: sel ? Number(sel.getAttribute('data-i')) : null};
    })()"""
    )
