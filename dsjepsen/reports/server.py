"""A read-only web view of the store: runs newest first, each report and file.

Only GET and HEAD exist. Every request path is decoded once, refused if any segment is `..`,
and then resolved with realpath and refused unless it is still inside the store, so neither
traversal, encoded traversal nor a symlink that points out of the store can reach a file
elsewhere. Only a file named report.html is served as HTML (under a CSP that allows no network
fetches); everything else, node logs included, is text/plain, so a log containing markup is
shown, not run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jinja2

from dsjepsen import __version__

TEMPLATES = Path(__file__).with_name("templates")
RUN_NAME = re.compile(r"^\d{8}T\d{6}")
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)
PLAIN_CSP = "default-src 'none'; sandbox"
CONTENT_TYPES = {".json": "application/json", ".jsonl": "text/plain", ".edn": "text/plain"}


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
                    if '"f":"start-' in line:
                        faults += 1
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


def resolve(store: Path, url_path: str) -> Path | None:
    """The file or directory a request names, or None when it is outside the store."""
    path = urllib.parse.urlsplit(url_path).path
    try:
        raw = urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\x00" in raw or "\\" in raw:
        return None
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
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


class StoreHandler(BaseHTTPRequestHandler):
    server_version = f"dsjepsen/{__version__}"
    store: Path  # set on the subclass made by make_server
    quiet = False

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

    def _get(self, head: bool) -> None:
        target = resolve(self.store, self.path)
        if target is None:
            self._send_text(HTTPStatus.FORBIDDEN, "forbidden: outside the store\n", head)
            return
        if target == self.store:
            self._send_html(self._index(), head, csp=PLAIN_CSP.replace("; sandbox", ""))
            return
        if target.is_dir():
            if not self.path.split("?", 1)[0].endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", self.path.split("?", 1)[0] + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_html(self._listing(target), head, csp=PLAIN_CSP.replace("; sandbox", ""))
            return
        if not target.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n", head)
            return
        if target.name == "report.html":
            ctype, csp = "text/html; charset=utf-8", REPORT_CSP
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
        self, status: HTTPStatus, text: str, head: bool = False, extra: dict[str, str] | None = None
    ) -> None:
        body = text.encode()
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
                store=str(self.store), runs=list_runs(self.store), version=__version__, listing=None
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
            )
        )


def make_server(
    store: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8080, quiet: bool = False
) -> ThreadingHTTPServer:
    real = Path(os.path.realpath(store))
    handler = type("BoundStoreHandler", (StoreHandler,), {"store": real, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
