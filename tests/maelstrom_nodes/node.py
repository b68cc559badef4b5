"""A tiny Maelstrom node library for the test nodes (standard library only).

Messages are JSON lines on stdin / stdout; `rpc` sends a request and calls back on the reply;
handlers run on the reading thread, timers on their own threads, output under one lock.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], None]


class Node:
    def __init__(self) -> None:
        self.id = ""
        self.ids: list[str] = []
        self.handlers: dict[str, Handler] = {}
        self.callbacks: dict[int, Handler] = {}
        self.next_id = 0
        self.lock = threading.Lock()
        self.on_init: Callable[[], None] | None = None

    def log(self, text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def send(self, dest: str, body: dict[str, Any]) -> None:
        with self.lock:
            sys.stdout.write(json.dumps({"src": self.id, "dest": dest, "body": body}) + "\n")
            sys.stdout.flush()

    def reply(self, req: dict[str, Any], body: dict[str, Any]) -> None:
        body = {**body, "in_reply_to": req["body"]["msg_id"]}
        self.send(req["src"], body)

    def rpc(self, dest: str, body: dict[str, Any], callback: Handler) -> None:
        with self.lock:
            self.next_id += 1
            msg_id = self.next_id
            self.callbacks[msg_id] = callback
        self.send(dest, {**body, "msg_id": msg_id})

    def sync_rpc(self, dest: str, body: dict[str, Any], timeout: float = 5.0) -> Any:
        """The reply to a request, or None after `timeout` seconds. Call it from a thread of
        your own, never from a handler: replies arrive on the reading thread."""
        done = threading.Event()
        box: dict[str, Any] = {}

        def got(msg: dict[str, Any]) -> None:
            box["reply"] = msg
            done.set()

        self.rpc(dest, body, got)
        return box.get("reply") if done.wait(timeout) else None

    def every(self, seconds: float, fn: Callable[[], None]) -> None:
        def loop() -> None:
            while not threading.Event().wait(seconds):
                fn()

        threading.Thread(target=loop, daemon=True).start()

    def on(self, kind: str, fn: Handler) -> None:
        self.handlers[kind] = fn

    def run(self) -> None:
        for line in sys.stdin:
            msg = json.loads(line)
            body = msg["body"]
            kind = body.get("type")
            if kind == "init":
                self.id, self.ids = body["node_id"], body["node_ids"]
                if self.on_init:
                    self.on_init()
                self.reply(msg, {"type": "init_ok"})
                continue
            if "in_reply_to" in body:
                with self.lock:
                    cb = self.callbacks.pop(body["in_reply_to"], None)
                if cb:
                    cb(msg)
                continue
            handler = self.handlers.get(kind)
            if handler is None:
                if "msg_id" in body:
                    self.reply(msg, {"type": "error", "code": 10, "text": f"no {kind}"})
                continue
            handler(msg)
