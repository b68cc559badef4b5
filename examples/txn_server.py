#!/usr/bin/env python3
"""A transactional key-value store in one file, speaking the HTTP contract's `POST /txn`
(docs/http-kv-contract.md): the smallest server a student can test with

    dsjepsen test --target http-kv --workload list-append --node-count 1 \
        --server-cmd 'python3 /path/examples/txn_server.py --port {port}'

It keeps one map in memory and applies each transaction under one lock, so its transactions
are strict serializable (on one node; it replicates nothing). `--unsafe` takes the lock per
micro-op instead, with a short pause between micro-ops, as a store that runs interactive
transactions without isolation does: dsjepsen finds the anomalies that allows.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STATE: dict[str, Any] = {}
LOCK = threading.Lock()
UNSAFE = False


def apply(txn: list[list[Any]]) -> list[list[Any]]:
    """Run the micro-ops in order; a read returns the key's value (a list for list-append),
    None for a key never written."""
    out = []
    for f, k, v in txn:
        key = str(k)
        if f == "r":
            cur = STATE.get(key)
            out.append([f, k, list(cur) if isinstance(cur, list) else cur])
        elif f == "append":
            STATE[key] = [*STATE.get(key, []), v]
            out.append([f, k, v])
        else:  # "w"
            STATE[key] = v
            out.append([f, k, v])
    return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the contract's client expects
    disable_nagle_algorithm = True  # answers go out at once, not after a delayed ACK

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/txn":
            return self.answer(404, {"error": f"no endpoint {self.path}"})
        try:
            txn = json.loads(body)["txn"]
            if not all(isinstance(m, list) and len(m) == 3 and m[0] in ("r", "w", "append")
                       for m in txn):  # fmt: skip
                raise ValueError("micro-ops are [f, key, value] with f r, w or append")
        except (ValueError, KeyError, TypeError) as e:
            return self.answer(400, {"error": f"bad request: {e}"})
        if UNSAFE:
            out = []
            for mop in txn:
                with LOCK:
                    out.extend(apply([mop]))
                time.sleep(0.005)
        else:
            with LOCK:
                out = apply(txn)
        self.answer(200, {"txn": out})

    def do_GET(self) -> None:  # noqa: N802
        self.answer(404, {"error": "this store serves POST /txn only"})

    do_PUT = do_GET  # noqa: N815

    def answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


def main() -> None:
    global UNSAFE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=7070)
    p.add_argument("--unsafe", action="store_true", help="no isolation between transactions")
    args = p.parse_args()
    UNSAFE = args.unsafe
    ThreadingHTTPServer(("0.0.0.0", args.port), Handler).serve_forever()  # noqa: S104


if __name__ == "__main__":
    main()
