"""What the reference servers (raft-kv, crdt-kv) share: a minimal HTTP/1.1 layer over asyncio
streams, for clients and for peers, the start-up of a server process, and the durable file
replacement both servers' storage uses (`write_atomic`).

http.server's thread per connection costs several milliseconds per request under load; this
keeps everything on one event loop with keep-alive connections, which is what keeps the p99 of
single-key operations low. Only what the contract needs: Content-Length bodies (no chunking),
JSON payloads, one request at a time per connection.

Standard library only, like the server packages themselves, and for the same reason: it is
uploaded to nodes that have nothing but python3. Where it lives differs between the two ways a
server runs, and so does how a server package reaches it:

- installed, it is `dsjepsen.targets.serverkit`, the sibling of `dsjepsen.targets.raft_kv`,
  reached by the relative import `from ..serverkit import ...`;
- on an ssh or docker node, PackagedServerTarget uploads it beside the package, as
  `<home>/code/serverkit.py` next to `<home>/code/raft_kv/`, and the server runs as
  `python3 -m raft_kv.server` from `<home>/code`: raft_kv is then a top-level package, a
  relative import cannot climb above it, and the import is the top-level `from serverkit ...`.

Each server package makes that choice in one module only, its `httpio.py`, which the rest of the
package imports; it also carries that server's own limits (the largest body it accepts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import zlib
from collections.abc import Awaitable, Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER_LINES = 100
#: the largest body accepted unless a server asks for another limit
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


def fsync_dir(path: str) -> None:
    """fsync a directory, so that a file renamed into it survives a crash of the machine."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """Replace path with data, durably: write a temporary file, fsync, rename, fsync the
    directory. A crash leaves either the old file or the new one, never a torn one."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path) or ".")


#: the exit status of a store that found its files corrupted and refuses to start
EXIT_CORRUPT = 71


class CorruptData(Exception):
    """A store's file holds a record that fails its checksum and is no torn tail."""


def seal(payload: bytes) -> bytes:
    """`<crc32 hex>:<payload>`: a record a store can check when it reads it back."""
    return f"{zlib.crc32(payload):08x}:".encode() + payload


def unseal(data: bytes) -> bytes | None:
    """The payload of a sealed record, or None when its checksum fails."""
    crc, sep, payload = data.partition(b":")
    ok = sep and crc.decode("ascii", "replace") == f"{zlib.crc32(payload):08x}"
    return payload if ok else None


def read_records(raw: bytes, where: str) -> tuple[list[bytes], int]:
    """The payloads of a log of sealed, newline-terminated records, and the length of the
    prefix they span; what follows it is a torn tail to cut. Tells the two ways a record can
    be unreadable apart (Alagappan et al., "Protocol-Aware Recovery for Consensus-Based
    Storage", FAST 2018; etcd's WAL does the same at sector granularity):

    * a torn tail: the file ends inside the record, or the record holds a zero byte (a hole:
      sectors a power failure never wrote, as small as one byte). It was never fsynced, so
      never acknowledged, nor was anything after it (an fsync would have made the hole
      durable too). Records are printable ASCII, and no single bit flip of the characters
      JSON and the checksum use here makes a zero byte.
    * corruption: a whole record with no hole whose checksum fails. It may have been
      acknowledged: CorruptData, so that the store refuses to start rather than serve a value
      nobody wrote or forget acknowledged records."""
    out: list[bytes] = []
    good = 0
    while good < len(raw):
        end = raw.find(b"\n", good)
        line = raw[good:] if end < 0 else raw[good:end]
        payload = unseal(line) if end >= 0 else None
        if payload is not None:
            out.append(payload)
            good = end + 1
            continue
        if end >= 0 and b"\0" not in line:
            raise CorruptData(
                f"{where}: record {len(out) + 1} (bytes {good}..{end}) fails its checksum and "
                "is no torn tail"
            )
        break
    return out, good


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


async def read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], max_body: int = MAX_BODY
) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ProtocolError("chunked bodies are not supported; send Content-Length")
    try:
        n = int(headers.get("content-length", "0"))
    except ValueError:
        raise ProtocolError("bad Content-Length") from None
    if n < 0 or n > max_body:
        raise ProtocolError(f"Content-Length {n} out of range")
    return await reader.readexactly(n) if n else b""


Handler = Callable[[Request], Awaitable[Response]]


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    max_body: int = MAX_BODY,
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
                body = await read_body(reader, headers, max_body)
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

    Any failure (refused, timeout, reset, garbage) closes the connection and raises. With
    `marks_not_sent`, a failure before anything was written is raised as `NotSent`, which a
    forwarding follower needs to answer 503 (definite) rather than 504 (unknown); a caller to
    whom every failure is alike (idempotent gossip) keeps the original exception instead.
    """

    #: the largest response body accepted
    max_body: int = MAX_BODY
    #: json.dumps separators of a posted body (None: json's defaults)
    separators: tuple[str, str] | None = None
    #: raise NotSent for a failure before the request was written
    marks_not_sent: bool = True

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
        """POST a JSON body; (status, decoded body). Raises on any failure (and closes)."""
        body = json.dumps(payload, separators=self.separators).encode()
        return await self.request("POST", path, body, timeout)

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
                if self.marks_not_sent and not self._sent and isinstance(e, OSError | TimeoutError):
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
        got = await read_head(self._reader)
        if got is None:
            raise ConnectionError("peer closed the connection")
        start, resp_headers = got
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {start[:80]!r}")
        data = await read_body(self._reader, resp_headers, self.max_body)
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


# -- start-up -----------------------------------------------------------------------------------


def hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def parse_peers(text: str) -> dict[str, tuple[str, int]]:
    """`n2=HOST:PORT,n3=HOST:PORT` as {name: (host, port)}."""
    peers: dict[str, tuple[str, int]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, addr = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--peers item must be NAME=HOST:PORT, got {item!r}")
        peers[name] = hostport(addr, f"address of peer {name}")
    return peers


def parser(
    prog: str, description: str, data_dir: str, bugs: Collection[str]
) -> argparse.ArgumentParser:
    """The command line every server takes (a server adds its own flags to it): who it is,
    where it listens, its peers, its data directory, its bug switches, its log level."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--id", required=True, help="this node's name, e.g. n1")
    p.add_argument("--listen", required=True, help="HOST:PORT to serve clients and peers on")
    p.add_argument("--peers", default="", help="the other nodes: n2=HOST:PORT,n3=HOST:PORT,...")
    p.add_argument("--data-dir", required=True, help=data_dir)
    p.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a deliberate bug (repeatable): " + ", ".join(sorted(bugs)),
    )
    p.add_argument("--verbose", action="store_true", help="debug logging")
    return p


def addresses(args: argparse.Namespace, prog: str) -> tuple[str, int, dict[str, tuple[str, int]]]:
    """(host, port) from --listen and the peers from --peers; exits when the peers name this
    node, which would make it its own peer."""
    host, port = hostport(args.listen, "--listen")
    peers = parse_peers(args.peers)
    if args.id in peers:
        raise SystemExit(f"{prog}: --peers must not include this node ({args.id})")
    return host, port, peers


async def listen(
    host: str, port: int, handler: Handler, max_body: int = MAX_BODY
) -> asyncio.Server:
    """Accept connections on host:port and serve each with `handler`."""
    return await asyncio.start_server(
        lambda r, w: serve_connection(r, w, handler, max_body), host, port, reuse_address=True
    )


async def until_signalled(srv: asyncio.Server) -> None:
    """Serve until SIGTERM or SIGINT, then stop listening (the caller then closes its state:
    a clean stop is not a crash)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with srv:
        await stop.wait()


def main(
    prog: str,
    parser: argparse.ArgumentParser,
    bugs: Collection[str],
    amain: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    argv: list[str] | None = None,
) -> int:
    """A server's process: parse the command line (exit 2 on an unknown bug or a bad address),
    log to stderr as `<time> <node id> <level> <message>`, create --data-dir, run `amain` and
    log "stopped" (on the logger named `prog`) once it has closed its state."""
    args = parser.parse_args(argv)
    unknown = [b for b in args.bug if b not in bugs]
    if unknown:
        print(
            f"{prog}: unknown --bug {unknown[0]!r} (known: {', '.join(sorted(bugs))})",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format=f"%(asctime)s {args.id} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    os.makedirs(args.data_dir, exist_ok=True)
    try:
        asyncio.run(amain(args))
    except argparse.ArgumentTypeError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    logging.getLogger(prog).info("stopped")
    return 0
