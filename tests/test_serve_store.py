"""`dsjepsen serve`: the store listing, reports and files, and nothing outside the store."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import serving
from synthetic_runs import build_run_dir

from dsjepsen.cli import main
from dsjepsen.reports.html import render_run_report
from dsjepsen.reports.server import resolve


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    build_run_dir(root, n_ops=300, verdict="valid", name="older-valid")
    newest = build_run_dir(root, n_ops=500, verdict="invalid", name="newest-invalid")
    interrupted = build_run_dir(root, n_ops=200, verdict="interrupted", name="interrupted")
    for run, start in (
        (newest, "2024-05-03T10:00:00+00:00"),
        (interrupted, "2024-05-02T10:00:00+00:00"),
    ):
        test = json.loads((run / "test.json").read_text())
        test["start_time"] = start
        (run / "test.json").write_text(json.dumps(test))
    render_run_report(newest)
    # a secret next to the store, and a symlink inside the store pointing at it
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    (root / "older-valid" / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "escape-dir").symlink_to(tmp_path)
    return root


@pytest.fixture
def server(store: Path) -> Iterator[tuple[str, int]]:
    with serving(store) as addr:
        yield addr


def get(addr: tuple[str, int], path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    """A raw request: http.client sends the path exactly as given (no normalisation)."""
    conn = http.client.HTTPConnection(*addr, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def test_index_lists_runs_newest_first(server: tuple[str, int]) -> None:
    status, headers, body = get(server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    names = re.findall(r"<tr><td>([^<]+)</td><td>", body)
    assert names == ["newest-invalid", "interrupted", "older-valid"]
    rows = body.split("<tr><td>")[1:]
    assert "invalid" in rows[0] and ">500<" in rows[0] and "report.html" in rows[0]
    assert "no verdict" in rows[1] and "none yet" in rows[1]
    assert ">valid<" in rows[2] and ">300<" in rows[2]
    assert re.search(r'class="n">[1-9]\d*</td>', rows[0])  # fault count from nemesis starts


def test_report_and_files_are_served_safely(server: tuple[str, int], store: Path) -> None:
    run = next((store / "newest-invalid").iterdir())
    rel = run.relative_to(store).as_posix()
    status, headers, body = get(server, f"/{rel}/report.html")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "INVALID" in body
    status, headers, body = get(server, f"/{rel}/nodes/n1/node.log")
    assert status == 200 and headers["content-type"] == "text/plain; charset=utf-8"
    assert "sandbox" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    status, _, body = get(server, f"/{rel}/")
    assert status == 200 and "history.jsonl" in body and "nodes/" in body
    status, headers, _ = get(server, f"/{rel}")
    assert status == 301 and headers["location"] == f"/{rel}/"
    status, _, _ = get(server, f"/{rel}/missing.txt")
    assert status == 404
    status, headers, _ = get(server, f"/{rel}/history.jsonl", method="HEAD")
    assert (
        status == 200 and int(headers["content-length"]) == (run / "history.jsonl").stat().st_size
    )
    status, _, _ = get(server, "/latest/test.json")  # the store's own symlink stays inside
    assert status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/older-valid/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/older-valid/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/older-valid/escape",
        "/escape-dir/secret.txt",
        "/escape-dir/",
        "//etc/passwd/../../..%2f..%2fetc%2fpasswd",
        "/%00",
        "/..%5csecret.txt",
    ],
)
def test_paths_outside_the_store_are_refused(server: tuple[str, int], path: str) -> None:
    status, _, body = get(server, path)
    assert status in (403, 404), (path, status)
    assert "TOP SECRET" not in body and "root:" not in body


def test_resolve_rules(store: Path) -> None:
    real = Path(os.path.realpath(store))
    assert resolve(real, "/") == real
    assert resolve(real, "/older-valid/") == real / "older-valid"
    assert resolve(real, "/%2e%2e/") is None
    assert resolve(real, "/older-valid/escape") is None
    assert resolve(real, "/%252e%252e/x") == real / "%2e%2e" / "x"  # double-encoded: a name


def test_listing_hides_symlinks_out_of_the_store(server: tuple[str, int]) -> None:
    status, _, body = get(server, "/older-valid/")
    assert status == 200 and "escape" not in body


def test_read_only(server: tuple[str, int]) -> None:
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = get(server, "/", method=method)
        assert status == 405 and headers["allow"] == "GET, HEAD"


def test_serve_command(tmp_path: Path, store: Path) -> None:
    assert main(["serve", "--store", str(tmp_path / "none")]) == 254
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsjepsen", "serve", "--store", str(store), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://([\d.]+):(\d+)/", line)
        assert m, line
        assert m.group(1) == "127.0.0.1"  # loopback by default
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = get((m.group(1), int(m.group(2))), "/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert status == 200 and "newest-invalid" in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)
