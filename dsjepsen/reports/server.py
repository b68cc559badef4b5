"""A read-only web view of the store: runs newest first, each report and file.

Only GET and HEAD exist. Every request path is decoded once, refused if any segment is `..`,
and then resolved with realpath and refused unless it is still inside the store, so neither
traversal, encoded traversal nor a symlink that points out of the store can reach a file
elsewhere. Only a file named report.html is served as HTML, under the report's own policy (no
network fetches, no inline script or style but the report's own, allowed by hash); everything
else, node logs included, is text/plain in a sandbox, so a log containing markup is shown, not
run. The index and directory pages allow their one stylesheet by hash and no script at all.
A report page of a long run carries only part of its ops; `report.html?window=A,B` answers the
ops of that stretch as JSON (`timeline.window`), which is all the page itself may fetch.

It faces whatever can reach its port, so no request may cost it a thread for long or a
traceback: a path segment longer than any file name (255 bytes) is 404 and a path longer than
any file path (4096 bytes) is 414 before the file system sees them; a client that connects and
sends nothing is dropped after IDLE_TIMEOUT seconds; errors are answered as text/plain.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import socketserver
import sys
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from dsjepsen import __version__
from dsjepsen.errors import InputError
from dsjepsen.faults import START, read_op
from dsjepsen.reports import timeline
from dsjepsen.reports.rundata import RunData, load_run_dir

TEMPLATES = Path(__file__).with_name("templates")
RUN_NAME = re.compile(r"^\d{8}T\d{6}")
#: files (logs, JSON) are data: no script, no style, no fetch, and a sandbox besides
PLAIN_CSP = "default-src 'none'; sandbox"
#: the index and listing pages: their own <style> (its hash is added) and nothing else
INDEX_POLICY_BASE = "default-src 'none'; base-uri 'none'; form-action 'none'"
#: sent with every HTML page as a header only (a <meta> policy cannot carry it)
HEADER_ONLY = "frame-ancestors 'none'"
#: Linux NAME_MAX and PATH_MAX, in bytes: no file in the store can have a longer name or path
MAX_SEGMENT = 255
MAX_PATH = 4096
#: seconds a connection may stay silent before it is dropped (each one holds a thread)
IDLE_TIMEOUT = 30.0
CONTENT_TYPES = {".json": "application/json", ".jsonl": "text/plain", ".edn": "text/plain"}


class WindowSource:
    """The run whose stretches a page asks for, read once: a long run takes seconds to read and
    its page asks for one stretch per zoom. One run is kept (the one asked for last); a run
    whose history changed since is read again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[str, int] | None = None
        self._run: RunData | None = None

    def ops(self, run_dir: Path, query: str) -> dict[str, Any] | None:
        """The ops of the stretch `window=A,B` asks for, or None when the query is not two
        finite numbers A <= B or the run cannot be read."""
        raw = urllib.parse.parse_qs(query).get("window", [""])[0]
        try:
            a, b = (float(x) for x in raw.split(","))
        except ValueError:
            return None
        if not (math.isfinite(a) and math.isfinite(b) and a <= b):
            return None
        try:
            stamp = (str(run_dir), (run_dir / "history.jsonl").stat().st_mtime_ns)
            with self._lock:
                if self._stamp != stamp or self._run is None:
                    self._run, self._stamp = load_run_dir(run_dir), stamp
                run = self._run
        except (OSError, InputError, ValueError):
            return None
        return timeline.window(run, a, b)


@dataclass
class RunSummary:
    name: str
    rel: str  # path inside the store, posix
    started: str
    sort_key: str
    verdict: str
    verdict_css: str
    ops: int
    faults: int
    duration: str
    has_report: bool


_cache: dict[tuple[str, float, int], tuple[int, int, int]] = {}
_cache_lock = threading.Lock()


def _history_counts(path: Path) -> tuple[int, int, int]:
    """(client ops, fault starts, last time ns) from a history, cached by mtime and size.

    Substring tests instead of JSON parsing: the store lists hundreds of runs quickly and
    these files are written by dsjepsen itself in one compact format.
    """
    try:
        st = path.stat()
    except OSError:
        return 0, 0, 0
    key = (str(path), st.st_mtime, st.st_size)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    ops = faults = 0
    last = ""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"type":"invoke"' in line:
                if '"process":"nemesis"' in line:
                    faults += _starts_a_fault(line)
                else:
                    ops += 1
            if line.strip():
                last = line
    t = 0
    try:
        t = int(json.loads(last).get("time", 0)) if last else 0
    except (ValueError, AttributeError):
        t = 0
    with _cache_lock:
        _cache[key] = (ops, faults, t)
    return ops, faults, t


def _starts_a_fault(line: str) -> bool:
    """Whether a nemesis invocation's line starts a fault (faults.read_op's reading)."""
    try:
        op = json.loads(line)
        return read_op(str(op.get("f", "")), op.get("value")).phase == START
    except (ValueError, AttributeError):
        return False


def _json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def _parse_time(s: Any) -> datetime | None:
    if not isinstance(s, str):
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None


def list_runs(store: Path) -> list[RunSummary]:
    """Every run directory under store/<test>/<run>/, newest first."""
    runs: list[RunSummary] = []
    if not store.is_dir():
        return runs
    for test_dir in sorted(store.iterdir()):
        if test_dir.is_symlink() or not test_dir.is_dir():
            continue
        for run_dir in test_dir.iterdir():
            if run_dir.is_symlink() or not run_dir.is_dir():
                continue
            has_hist = (run_dir / "history.jsonl").exists()
            if not (has_hist or (run_dir / "test.json").exists()):
                continue
            test = _json(run_dir / "test.json")
            results = (
                _json(run_dir / "results.json") if (run_dir / "results.json").exists() else None
            )
            ops, faults, last_t = (
                _history_counts(run_dir / "history.jsonl") if has_hist else (0, 0, 0)
            )
            start, end = _parse_time(test.get("start_time")), _parse_time(test.get("end_time"))
            if start and end:
                duration = f"{(end - start).total_seconds():.1f} s"
            elif last_t:
                duration = f"{last_t / 1e9:.1f} s"
            else:
                duration = "–"
            if results is None or results.get("interrupted") or results.get("error"):
                verdict, css = "no verdict", "none"
            else:
                v = results.get("valid")
                verdict, css = {True: ("valid", "valid"), False: ("invalid", "invalid")}.get(
                    v, ("unknown", "unknown")
                )
            started = start.strftime("%Y-%m-%d %H:%M:%S") if start else run_dir.name
            runs.append(
                RunSummary(
                    name=str(test.get("name") or test_dir.name),
                    rel=run_dir.relative_to(store).as_posix(),
                    started=started,
                    sort_key=start.isoformat() if start else run_dir.name,
                    verdict=verdict,
                    verdict_css=css,
                    ops=ops,
                    faults=faults,
                    duration=duration,
                    has_report=(run_dir / "report.html").exists(),
                )
            )
    runs.sort(key=lambda r: (r.sort_key, r.rel), reverse=True)
    return runs


def length_status(url_path: str) -> HTTPStatus | None:
    """414 for a decoded path longer than any file path, 404 for a segment longer than any file
    name, else None. Checked before the file system is asked: an over-long name makes stat()
    fail with ENAMETOOLONG, which pathlib does not treat as "no such file"."""
    raw = urllib.parse.unquote_to_bytes(urllib.parse.urlsplit(url_path).path)
    if len(raw) > MAX_PATH:
        return HTTPStatus.REQUEST_URI_TOO_LONG
    if any(len(seg) > MAX_SEGMENT for seg in raw.split(b"/")):
        return HTTPStatus.NOT_FOUND
    return None


def url_parts(url_path: str) -> list[str] | None:
    """The decoded, non-empty path segments of a request, or None when it can never name a
    file of the store (`..`, NUL, a backslash, invalid UTF-8, an over-long name)."""
    path = urllib.parse.urlsplit(url_path).path
    try:
        raw = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in raw or "\\" in raw:
        return None
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." or len(p.encode()) > MAX_SEGMENT for p in parts):
        return None
    return parts


def resolve(store: Path, url_path: str) -> Path | None:
    """The file or directory a request names, or None when it is outside the store."""
    parts = url_parts(url_path)
    if parts is None:
        return None
    real = Path(os.path.realpath(store.joinpath(*parts)))
    if real != store and store not in real.parents:
        return None
    return real


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["urlpath"] = lambda s: urllib.parse.quote(str(s))
    return env


def _index_css() -> Markup:
    # our own stylesheet, inserted verbatim so that the hash in the policy matches it
    return Markup((TEMPLATES / "index.css").read_text(encoding="utf-8"))


class StoreHandler(BaseHTTPRequestHandler):
    server_version = f"dsjepsen/{__version__}"
    store: Path  # set on the subclass made by make_server
    quiet = False
    #: socket timeout of every connection (StreamRequestHandler applies it in setup())
    timeout: float | None = IDLE_TIMEOUT
    report_csp = PLAIN_CSP  # the policies are computed by make_server
    windows = WindowSource()  # make_server gives each server its own
    index_csp = PLAIN_CSP

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if not self.quiet:
            super().log_message(format, *args)

    def do_HEAD(self) -> None:
        self._get(head=True)

    def do_GET(self) -> None:
        self._get(head=False)

    def _refuse_write(self) -> None:
        self._send_text(
            HTTPStatus.METHOD_NOT_ALLOWED,
            "read-only: only GET and HEAD\n",
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_write  # noqa: N815

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's errors (bad request line, 414, 501...) as text/plain with our security
        headers, instead of an HTML page that echoes the request. The status line carries only
        the standard phrase, never text from the request."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        head = getattr(self, "command", None) == "HEAD" or code < 200 or code in (204, 304)
        self._send_text(code, f"{code} {message or phrase}\n", head)

    def _get(self, head: bool) -> None:
        status = length_status(self.path)
        if status is not None:
            text = "path too long\n" if status == HTTPStatus.REQUEST_URI_TOO_LONG else "not found\n"
            self._send_text(status, text, head)
            return
        self._started = False
        try:
            self._serve(head)
        except OSError as e:
            # a name the file system refuses (ENAMETOOLONG, EACCES, ELOOP...): no traceback,
            # no dropped connection, just the answer for a file we cannot give; once a
            # response has begun, all that is left is to end the connection
            if isinstance(e, ConnectionError) or self._started:
                raise
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", head)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._started = True
        super().send_response(code, message)

    def _serve(self, head: bool) -> None:
        parts = url_parts(self.path)
        target = resolve(self.store, self.path)
        if parts is None or target is None:
            self._send_text(HTTPStatus.FORBIDDEN, "forbidden: outside the store\n", head)
            return
        if target == self.store:
            self._send_html(self._index(), head, csp=self.index_csp)
            return
        if target.is_dir():
            if not self.path.split("?", 1)[0].endswith("/"):
                # built from the decoded segments, not echoed: `//host` must not become a
                # protocol-relative redirect to another site
                location = "/" + "/".join(urllib.parse.quote(p) for p in parts) + "/"
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_html(self._listing(target), head, csp=self.index_csp)
            return
        if not target.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", head)
            return
        query = urllib.parse.urlsplit(self.path).query
        if target.name == "report.html" and query.startswith("window="):
            found = self.windows.ops(target.parent, query)
            if found is None:
                self._send_text(HTTPStatus.NOT_FOUND, "no such window of this run\n", head)
                return
            body = json.dumps(found, separators=(",", ":")).encode()
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self._security_headers(PLAIN_CSP)
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        if target.name == "report.html":
            ctype, csp = "text/html; charset=utf-8", self.report_csp
        else:
            ctype = CONTENT_TYPES.get(target.suffix, "text/plain") + "; charset=utf-8"
            csp = PLAIN_CSP
        try:
            fh = open(target, "rb")  # noqa: SIM115
        except OSError:
            self._send_text(HTTPStatus.FORBIDDEN, "cannot read this file\n", head)
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self._security_headers(csp)
            self.end_headers()
            if not head:
                shutil.copyfileobj(fh, self.wfile)

    def _security_headers(self, csp: str) -> None:
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-cache")

    def _send_text(
        self, status: int, text: str, head: bool = False, extra: dict[str, str] | None = None
    ) -> None:
        body = text.encode("utf-8", "replace")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self._security_headers(PLAIN_CSP)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_html(self, page: str, head: bool, csp: str) -> None:
        body = page.encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self._security_headers(csp)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _index(self) -> str:
        return (
            _env()
            .get_template("index.html.j2")
            .render(
                store=str(self.store),
                runs=list_runs(self.store),
                version=__version__,
                listing=None,
                css=_index_css(),
            )
        )

    def _listing(self, d: Path) -> str:
        entries = []
        for p in sorted(d.iterdir()):
            inside = resolve(
                self.store, "/" + urllib.parse.quote(p.relative_to(self.store).as_posix())
            )
            if inside is None:
                continue  # a symlink pointing out of the store is not listed
            entries.append(
                {
                    "name": p.name + ("/" if p.is_dir() else ""),
                    "size": None if p.is_dir() else p.stat().st_size,
                }
            )
        return (
            _env()
            .get_template("index.html.j2")
            .render(
                store=str(self.store),
                runs=[],
                version=__version__,
                listing={"rel": d.relative_to(self.store).as_posix(), "entries": entries},
                css=_index_css(),
            )
        )


class StoreServer(ThreadingHTTPServer):
    """ThreadingHTTPServer for IPv4 or IPv6 (make_server sets address_family), without the
    reverse DNS lookup HTTPServer does on bind, and with one line instead of a traceback when
    a request fails (a client that hangs up mid-transfer is not the server's problem)."""

    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return
        handler = self.RequestHandlerClass
        if not getattr(handler, "quiet", False):
            print(
                f"dsjepsen serve: request from {client_address[0]} failed: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


def address_family(host: str, port: int) -> socket.AddressFamily:
    """The family of the first address `host` resolves to for listening (IPv6 for `::1`,
    IPv4 for `127.1`), as http.server's own command line picks it."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0]


def make_server(
    store: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    quiet: bool = False,
    idle_timeout: float = IDLE_TIMEOUT,
) -> ThreadingHTTPServer:
    """A server bound to host:port (IPv4 or IPv6), not yet serving. The HTML policies are
    computed here, once, from this version's templates."""
    from dsjepsen.reports.html import content_policy, report_policy

    real = Path(os.path.realpath(store))
    handler = type(
        "BoundStoreHandler",
        (StoreHandler,),
        {
            "store": real,
            "quiet": quiet,
            "timeout": idle_timeout,
            "windows": WindowSource(),
            "report_csp": f"{report_policy()}; {HEADER_ONLY}",
            "index_csp": content_policy(
                [], [_index_css()], base=f"{INDEX_POLICY_BASE}; {HEADER_ONLY}"
            ),
        },
    )
    server_cls = type(
        "BoundStoreServer", (StoreServer,), {"address_family": address_family(host, port)}
    )
    return server_cls((host, port), handler)
