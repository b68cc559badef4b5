"""A minimal HTTP/1.1 layer over asyncio streams, for clients and for peers.

http.server's thread per connection costs several milliseconds per request under load; this
keeps everything on one event loop with keep-alive connections, which is what keeps the p99 of
single-key operations low. Only what the contract needs: Content-Length bodies (no chunking),
JSON payloads, one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER_LINES = 100
MAX_BODY = 16 * 1024 * 1024

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    500: "Internal Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ProtocolError(Exception):
    """The peer spoke something that is not the HTTP we accept."""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body)


@dataclass
class Response:
    status: int
    payload: Any = None

    def encode(self, keep_alive: bool) -> bytes:
        body = b"" if self.payload is None else json.dumps(self.payload).encode()
        reason = REASONS.get(self.status, "Unknown")
        head = (
            f"HTTP/1.1 {self.status} {reason}\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        return head.encode() + body


async def _read_headers(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    """Return (start line, headers), or None on a clean EOF before any byte."""
    line = await reader.readline()
    if not line:
        return None
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = await reader.readline()
        if not line:
            return None
    start = line.decode("latin-1").rstrip("\r\n")
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADER_LINES):
        h = await reader.readline()
        if not h:
            raise ProtocolError("connection closed inside headers")
        if h in (b"\r\n", b"\n"):
            return start, headers
        name, sep, value = h.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"bad header line {h[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    raise ProtocolError("too many header lines")


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ProtocolError("chunked bodies are not supported; send Content-Length")
    try:
        n = int(headers.get("content-length", "0"))
    except ValueError:
        raise ProtocolError("bad Content-Length") from None
    if n < 0 or n > MAX_BODY:
        raise ProtocolError(f"Content-Length {n} out of range")
    return await reader.readexactly(n) if n else b""


Handler = Callable[[Request], Awaitable[Response]]


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Serve requests on one connection until the client closes it or asks to."""
    try:
        while True:
            try:
                got = await _read_headers(reader)
                if got is None:
                    return
                start, headers = got
                parts = start.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    raise ProtocolError(f"bad request line {start[:80]!r}")
                body = await _read_body(reader, headers)
            except (ProtocolError, asyncio.IncompleteReadError, UnicodeDecodeError) as e:
                writer.write(Response(400, {"error": str(e)}).encode(keep_alive=False))
                await writer.drain()
                return
            method, target, version = parts
            keep_alive = headers.get("connection", "").lower() != "close" and version != "HTTP/1.0"
            resp = await handler(Request(method, target.split("?", 1)[0], headers, body))
            writer.write(resp.encode(keep_alive))
            await writer.drain()
            if not keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError, OSError):
        return
    finally:
        writer.close()


class NotSent(ConnectionError):
    """The request certainly did not leave this process (the connect itself failed)."""


class PeerConnection:
    """One keep-alive connection to a peer, one request at a time, reconnecting on error.

    Any failure (refused, timeout, reset, garbage) closes the connection and raises; `NotSent`
    says that nothing can have reached the peer, which a forwarding follower needs to know to
    answer 503 (definite) rather than 504 (unknown).
    """

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._sent = False

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def post(self, path: str, payload: Any, timeout: float) -> tuple[int, Any]:
        return await self.request("POST", path, json.dumps(payload).encode(), timeout)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self._lock:
            self._sent = False
            try:
                return await asyncio.wait_for(self._request(method, path, body, headers), timeout)
            except BaseException as e:
                self.close()
                if not self._sent and isinstance(e, OSError | TimeoutError):
                    raise NotSent(f"{self.host}:{self.port}: {type(e).__name__} {e}") from e
                raise

    async def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None
    ) -> tuple[int, Any]:
        if self._reader is not None and self._reader.at_eof():
            self.close()  # the peer closed an idle connection (it restarted): start afresh
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        self._sent = True
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._writer.write(
            (
                f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        await self._writer.drain()
        got = await _read_headers(self._reader)
        if got is None:
            raise ConnectionError("peer closed the connection")
        start, resp_headers = got
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {start[:80]!r}")
        data = await _read_body(self._reader, resp_headers)
        if resp_headers.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1]), (json.loads(data) if data else None)


class PeerPool:
    """Several PeerConnections to one peer, so that concurrent forwarded requests do not
    queue behind each other on a single keep-alive connection."""

    def __init__(self, host: str, port: int, max_idle: int = 32):
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self._idle: list[PeerConnection] = []

    async def request(
        self,
        method: str,
        path: str,
        body: bytes,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        conn = self._idle.pop() if self._idle else PeerConnection(self.host, self.port)
        result = await conn.request(method, path, body, timeout, headers)
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        return result
