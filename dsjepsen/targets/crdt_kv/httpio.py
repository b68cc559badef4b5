"""A minimal HTTP/1.1 layer over asyncio streams: the server side of the contract and the
client side of gossip.

The same shape as raft_kv/httpio.py (one event loop, keep-alive, Content-Length JSON bodies,
one request at a time per connection), repeated here rather than shared because this package
is uploaded to nodes on its own and may import nothing outside itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER_LINES = 100
MAX_BODY = 64 * 1024 * 1024

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class ProtocolError(Exception):
    """The other side spoke something that is not the HTTP we accept."""


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Response:
    status: int
    payload: Any = None

    def encode(self, keep_alive: bool) -> bytes:
        body = b"" if self.payload is None else json.dumps(self.payload).encode()
        head = (
            f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        return head.encode() + body


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    """(start line, lower-cased headers), or None on a clean EOF before any byte."""
    line = await reader.readline()
    while line in (b"\r\n", b"\n"):
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


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
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
                got = await read_head(reader)
                if got is None:
                    return
                start, headers = got
                parts = start.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    raise ProtocolError(f"bad request line {start[:80]!r}")
                body = await read_body(reader, headers)
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


class PeerConnection:
    """One keep-alive connection to a peer for gossip, one request at a time, reopened after
    any error. Gossip is idempotent, so a failed exchange is simply tried again next round."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def post(self, path: str, payload: Any, timeout: float) -> tuple[int, Any]:
        """POST a JSON body; (status, decoded body). Raises on any failure (and closes)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        async with self._lock:
            try:
                return await asyncio.wait_for(self._post(path, body), timeout)
            except BaseException:
                self.close()
                raise

    async def _post(self, path: str, body: bytes) -> tuple[int, Any]:
        if self._reader is not None and self._reader.at_eof():
            self.close()  # the peer closed an idle connection (it restarted): start afresh
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        self._writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        await self._writer.drain()
        got = await read_head(self._reader)
        if got is None:
            raise ConnectionError("peer closed the connection")
        start, headers = got
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {start[:80]!r}")
        data = await read_body(self._reader, headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1]), (json.loads(data) if data else None)
