"""A report of a long run: the page carries some of its ops in full and counts the rest.

A run of millions of ops cannot put every op in one page. The page keeps the ops an anomaly is
about and the ops nearest to each fault's start and end, summarises the quiet stretches as
counts per time bucket, and `dsjepsen serve` answers any stretch in full
(`report.html?window=A,B`), which the page loads when the reader zooms into one. Here the
budget of ops per page is made small so that a run of a few thousand ops is "long".
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_cdp import CHROMIUM, launch, show
from serving import serving
from synthetic_runs import build_run_dir

from dsjepsen.reports import timeline
from dsjepsen.reports.html import render_run_report
from dsjepsen.reports.rundata import NS, load_run_dir

BUDGET = 600


@pytest.fixture
def long_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(timeline, "OPS_IN_PAGE", BUDGET)
    run = build_run_dir(tmp_path / "store", n_ops=4000, seed=3)
    render_run_report(run)
    return run


def page_data(run: Path) -> dict:
    page = (run / "report.html").read_text()
    m = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


def test_the_page_keeps_anomalies_and_fault_edges_and_counts_the_rest(long_run: Path) -> None:
    data = page_data(long_run)
    run = load_run_dir(long_run)
    ids = data["ops"]["id"]
    assert data["total"] == len(run.operations) > BUDGET
    assert ids == sorted(set(ids)) and all(len(c) == len(ids) for c in data["ops"].values())
    # every op an anomaly is about is in the page, and the budget is kept otherwise
    assert data["anomalies"] and set(data["anomalies"]) <= set(ids)
    assert len(ids) <= BUDGET + len(data["anomalies"])
    # around each fault's start and end: every op running then, and the ten nearest, are in
    kept = set(ids)
    for w in [w for w in run.faults if not w.failed][:3]:
        for t in (w.start, w.end):

            def distance(o, t=t):
                end = o.complete.time if o.complete else run.end_time
                return max(o.invoke.time - t, t - end, 0)

            nearest = sorted(run.operations, key=distance)[:10]
            assert {o.id for o in nearest} <= kept, t
    # the summary counts exactly the ops left out, in the bucket of their invocation
    omitted = data["omitted"]
    assert omitted["n"] == len(run.operations) - len(ids)
    assert sum(omitted["ok"]) + sum(omitted["fail"]) + sum(omitted["info"]) == omitted["n"]
    left_out = [o for o in run.operations if o.id not in kept]
    bucket = int(left_out[0].invoke.time / NS * 1000 / omitted["w"])
    assert omitted["ok"][bucket] + omitted["fail"][bucket] + omitted["info"][bucket] >= 1
    # the page says what it did, in words
    assert "ops in full" in (long_run / "report.html").read_text()


def test_a_short_run_keeps_every_op_and_no_id_column(tmp_path: Path) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=800, seed=3)
    render_run_report(run)
    data = page_data(run)
    assert "id" not in data["ops"] and data["omitted"] is None
    assert len(data["ops"]["s"]) == data["total"] == len(load_run_dir(run).operations)


def test_window_answers_the_ops_of_a_stretch(long_run: Path) -> None:
    run = load_run_dir(long_run)
    a, b = 5000.0, 6000.0  # ms
    got = timeline.window(run, a, b)
    want = [
        o.id
        for o in run.operations
        if o.invoke.time <= b * NS / 1000
        and (o.complete.time if o.complete else run.end_time) >= a * NS / 1000
    ]
    assert got["ops"]["id"] == want and want
    lane = got["lanes"][got["ops"]["l"][0]]
    assert lane == str(run.operations[want[0]].process)


@pytest.fixture
def served(long_run: Path) -> Iterator[tuple[str, int]]:
    with serving(long_run.parents[1]) as addr:
        yield addr


def get(addr: tuple[str, int], path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*addr, timeout=60)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_serve_answers_a_window_as_json_and_refuses_nonsense(long_run: Path, served) -> None:
    rel = "/" + "/".join(long_run.parts[-2:]) + "/report.html"
    status, headers, body = get(served, rel + "?window=5000,6000")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["content-security-policy"].startswith("default-src 'none'")
    got = json.loads(body)
    assert got["ops"]["id"] == timeline.window(load_run_dir(long_run), 5000, 6000)["ops"]["id"]
    for bad in ("?window=6000,5000", "?window=nan,1", "?window=a,b", "?window=1"):
        status, _, body = get(served, rel + bad)
        assert status == 404 and body == b"no such window of this run\n", bad
    # the page itself is still the page
    status, headers, body = get(served, rel)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in headers["content-security-policy"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup does)")
def test_in_chromium_the_quiet_stretches_show_and_load_when_served(
    long_run: Path, served, tmp_path: Path
) -> None:
    data = page_data(long_run)
    rel = "/".join(long_run.parts[-2:]) + "/report.html"
    anomaly = data["anomalies"][0]
    with launch(tmp_path / "profile") as cdp:
        # from a file: the bands and the count of what is left out; links to kept ops work
        show(cdp, long_run.joinpath("report.html").as_uri() + f"#op-{anomaly}")
        assert cdp.evaluate(f"!!document.querySelector('#op-{anomaly}.selected')")
        cdp.evaluate("document.querySelector('button[title=\"show the whole run\"]').click()")
        assert int(cdp.evaluate("document.getElementById('timeline').dataset.omitted")) > 0
        assert cdp.evaluate("document.querySelectorAll('.tl-omitted').length") > 0
        status = cdp.evaluate("document.querySelector('.tl-status').textContent")
        assert "dsjepsen serve" in status
        assert cdp.problems() == []
        # served: zooming into a quiet stretch loads its ops from the server, and the ops
        # drawn are then every op in view
        show(cdp, f"http://{served[0]}:{served[1]}/{rel}")
        cdp.evaluate(
            "(function () { var b = document.querySelector('button[title=\"zoom in\"]');"
            " for (var n = 0; n < 6; n++) { b.click(); } })()"
        )
        deadline = time.monotonic() + 30
        while cdp.evaluate("document.getElementById('timeline').dataset.omitted") != "0":
            assert time.monotonic() < deadline, cdp.evaluate(
                "document.querySelector('.tl-status').textContent"
            )
            cdp.drain(0.1)
        status = cdp.evaluate("document.querySelector('.tl-status').textContent")
        shown, total = re.search(r"(\d+) of (\d+) ops in view", status).groups()
        assert int(total) > len(data["ops"]["id"])  # ops were added to the page
        assert cdp.problems() == []
