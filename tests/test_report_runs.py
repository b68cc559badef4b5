"""Reports of run directories made by the project's own `dsjepsen test` runs on real namespace
clusters: valid, invalid (raft-kv's stale-read bug), unknown (a requested fault that never
took effect) and interrupted (SIGINT mid-run). Each run is short; the cluster is ours and is taken
down at the end, also on failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.reports.html import render_run_report

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster_name() -> Iterator[str]:
    from dsjepsen.cluster import localnet

    if (
        not localnet.has_net_admin()
        or shutil.which("ip") is None
        or shutil.which("iptables") is None
    ):
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")

    name = "rp" + os.urandom(2).hex()  # 6 characters, unique per test session
    try:
        yield name
    finally:
        localnet.down(name)
        assert not localnet.status(name)["exists"]


def dsjepsen_test(store: Path, cluster: str, *args: str, interrupt_after: float | None = None):
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--node-count", "3",
        "--cluster-name", cluster, "--store", str(store), "--time-limit", "8",
        "--rate", "50", "--seed", "11", *args,
    ]  # fmt: skip
    if interrupt_after is None:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
        return proc.returncode, proc.stderr
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        hist = None
        while time.monotonic() < deadline:  # wait for clients to be running, then Ctrl-C
            hist = next(store.glob("*/*/history.jsonl"), None)
            if hist is not None and hist.stat().st_size > 2000:
                break
            time.sleep(0.3)
        time.sleep(interrupt_after)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)
    return p.returncode, err


def only_run(store: Path) -> Path:
    runs = [
        p
        for p in store.glob("*/*")
        if p.is_dir() and not p.is_symlink() and not p.parent.is_symlink()
    ]
    assert len(runs) == 1, runs
    return runs[0]


def verdict(page: str) -> str:
    return re.search(r'id="verdict"[^>]*>([^<]+)<', page).group(1)


def client_ops(run: Path) -> int:
    return len(read_jsonl(run / "history.jsonl").operations())


def test_invalid_run_stale_read(tmp_path: Path, cluster_name: str) -> None:
    code, err = dsjepsen_test(
        tmp_path, cluster_name, "--bug", "stale-read", "--nemesis", "partition-majority",
        "--nemesis-interval", "3",
    )  # fmt: skip
    assert code == 1, err[-2000:]
    run = only_run(tmp_path)
    page = (run / "report.html").read_text()  # written by `dsjepsen test` after the run
    assert verdict(page) == "INVALID"
    assert "--seed 11" in page and "--bug stale-read" in page
    results = json.loads((run / "results.json").read_text())
    first = next(a for c in results["checks"].values() for a in c.get("anomalies", []))
    assert 'class="porcupine"' in page
    assert first["message"].replace("'", "&#39;") in page
    # every node's log is linked and (raft-kv stamps its lines) excerpted
    for node in ("n1", "n2", "n3"):
        assert f'href="./nodes/{node}/' in page
    assert "none found" not in page
    assert 'class="fault fault-partition"' in page
    # regenerating gives the same content
    again = render_run_report(run).read_text()
    assert verdict(again) == "INVALID"


def test_valid_run(tmp_path: Path, cluster_name: str) -> None:
    code, err = dsjepsen_test(tmp_path, cluster_name, "--nemesis", "partition-majority",
                              "--nemesis-interval", "3")  # fmt: skip
    assert code == 0, err[-2000:]
    run = only_run(tmp_path)
    page = (run / "report.html").read_text()
    assert verdict(page) == "VALID"
    assert f"{client_ops(run):,} client ops" in page
    # a valid run says what was tested and how hard, and has no RCA section
    assert 'id="tested"' in page and 'id="rca"' not in page
    assert 'id="tested-table"' in page  # the partitions that took effect, with ops under each


def test_unknown_run(tmp_path: Path, cluster_name: str) -> None:
    # a requested fault that never took effect (a bridge needs 3 nodes: on 2 its start
    # fails) makes the verdict unknown, never a pass, and the report must say so and why
    code, err = dsjepsen_test(
        tmp_path, cluster_name, "--nemesis", "bridge", "--node-count", "2",
        "--nemesis-interval", "2", "--time-limit", "5",
    )  # fmt: skip
    assert code == 2, err[-2000:]
    run = only_run(tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] == "unknown"
    page = (run / "report.html").read_text()
    assert verdict(page) == "UNKNOWN"
    assert "never took effect" in page


def test_interrupted_run(tmp_path: Path, cluster_name: str) -> None:
    dsjepsen_test(tmp_path, cluster_name, "--time-limit", "60", interrupt_after=2.0)
    run = only_run(tmp_path)
    out = render_run_report(run)  # the runner may or may not have written one: regenerate
    page = out.read_text()
    assert verdict(page) == "NO VERDICT"
    assert "run interrupted" in page
    n = client_ops(run)
    assert n > 0
    tl = json.loads(re.search(r'id="timeline-data">(.*?)</script>', page, re.S).group(1))
    assert len(tl["ops"]["s"]) == n
