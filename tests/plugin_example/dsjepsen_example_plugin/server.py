"""A key-value server with no replication at all: every node answers from its own memory.

It speaks the HTTP contract (docs/http-kv-contract.md) perfectly on one node and is wrong on
several: a write through one node is never seen through another. The example target runs it
so the docs can show a test catching a real (if blatant) bug. Standard library only: it is
copied to SSH and docker nodes as one file.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

STORE: dict[str, object] = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:  # one line per request on stderr
        super().log_message(fmt, *args)

    def _answer(self, status: int, body: object = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _key(self) -> tuple[str, str]:
        parts = self.path.split("/")
        if len(parts) >= 3 and parts[1] == "kv":
            return unquote(parts[2]), "/".join(parts[3:])
        return "", ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/status":
            return self._answer(200, {"role": "standalone"})
        key, rest = self._key()
        with LOCK:
            if not key or rest:
                return self._answer(400)
            if key not in STORE:
                return self._answer(404)
            return self._answer(200, {"value": STORE[key]})

    def do_PUT(self) -> None:  # noqa: N802
        key, rest = self._key()
        body = self._body()
        if not key or rest or "value" not in body:
            return self._answer(400)
        with LOCK:
            STORE[key] = body["value"]
        return self._answer(200)

    def do_POST(self) -> None:  # noqa: N802
        key, rest = self._key()
        body = self._body()
        if not key or rest != "cas" or "from" not in body or "to" not in body:
            return self._answer(400)
        with LOCK:
            if key not in STORE:
                return self._answer(404)
            if STORE[key] != body["from"]:
                return self._answer(409, {"value": STORE[key]})
            STORE[key] = body["to"]
        return self._answer(200)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=7090)
    args = ap.parse_args()
    ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
