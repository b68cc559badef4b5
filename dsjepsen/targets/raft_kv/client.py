"""The harness-side client for the raft-kv HTTP contract (docs/http-kv-contract.md).

Any server that speaks the contract can be tested with this client. The mapping follows
Jepsen's honesty rule: `fail` only when the operation certainly did not and will not happen
(nothing was sent, or the server said so with 503 / 409 / 404 on cas), `info` whenever it may
have happened (timeout, connection lost after sending, 504, an unexpected answer).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import select
import socket
from typing import Any

from dsjepsen.history import Op
from dsjepsen.targets.base import Client


class _NotSent(Exception):
    """The request certainly never reached the server."""


class HttpKvClient(Client):
    """One keep-alive connection to one node, reopened after any error."""

    def __init__(self, host: str, port: int, timeout: float = 2.0, node: str | None = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.node = node
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- transport ----------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn.sock is not None:
            # A kept-alive socket that is readable while idle was closed by the server (it
            # crashed or restarted): drop it now, while we still know nothing was sent.
            readable, _, _ = select.select([self._conn.sock], [], [], 0)
            if readable:
                self.close()
        if self._conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError as e:  # refused, unreachable, connect timeout: nothing was sent
                conn.close()
                raise _NotSent(_describe(e)) from e
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; raises _NotSent (definitely not sent) or OSError /
        http.client.HTTPException (sent, outcome unknown)."""
        conn = self._connection()
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"error": raw[:200].decode("utf-8", "replace")}
        return resp.status, payload

    # -- operations ---------------------------------------------------------------------------

    def invoke(self, op: Op) -> Op:
        key = str(op.key)
        if op.f == "read":
            method, path, body = "GET", f"/kv/{key}", None
        elif op.f == "write":
            method, path, body = "PUT", f"/kv/{key}", {"value": op.value}
        elif op.f == "cas":
            try:
                old, new = op.value
            except (TypeError, ValueError):
                return _done(op, "fail", error=f"cas value must be [old, new], got {op.value!r}")
            method, path, body = "POST", f"/kv/{key}/cas", {"from": old, "to": new}
        else:
            return _done(op, "fail", error=f"unsupported operation {op.f!r}")
        try:
            status, payload = self.request(method, path, body)
        except _NotSent as e:
            return _done(op, "fail", error=f"not sent: {e}")
        except TimeoutError:
            return _done(op, "info", error="timeout")
        except (OSError, http.client.HTTPException) as e:
            return _done(op, "info", error=f"connection lost: {_describe(e)}")
        return _complete(op, status, payload)


def _complete(op: Op, status: int, payload: Any) -> Op:
    hint = payload.get("leader") if isinstance(payload, dict) else None
    if status == 503:
        return _done(op, "fail", error={"unavailable": True, "leader": hint})
    if op.f == "read":
        if status == 200 and isinstance(payload, dict) and "value" in payload:
            return _done(op, "ok", value=payload["value"])
        if status == 404:
            return _done(op, "ok", value=None)
    elif op.f == "write":
        if status == 200:
            return _done(op, "ok")
        if status == 400:
            return _done(op, "fail", error=f"rejected: {payload}")
    elif op.f == "cas":
        if status == 200:
            return _done(op, "ok")
        if status == 409:
            return _done(op, "fail", error="cas-mismatch")
        if status == 404:
            return _done(op, "fail", error="cas-absent")
        if status == 400:
            return _done(op, "fail", error=f"rejected: {payload}")
    if status == 504:
        return _done(op, "info", error="server timeout: outcome unknown")
    # Anything else (500, a read's 200 without a value...) may hide an applied write.
    return _done(op, "info", error=f"unexpected HTTP {status}: {payload}")


def _done(op: Op, type_: str, value: Any = dataclasses.MISSING, error: Any = None) -> Op:
    if value is dataclasses.MISSING:
        return dataclasses.replace(op, type=type_, error=error)
    return dataclasses.replace(op, type=type_, value=value, error=error)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
