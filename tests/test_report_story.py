"""Issue 15: the report an engineer writes a root-cause analysis from, checked in headless
Chromium on real reports: one real `--bug stale-read` run (shared by the module), synthetic
valid and unknown run directories, an imported Porcupine kv history without clocks, and a
hand-made CRDT run with clock-fault records.

What is measured, not assumed: the first anomaly the summary names is the op the first-anomaly
section draws, the op the RCA timeline cites and the op the timeline's "first anomaly" button
selects; no text of any diagram or plot pokes out of its box; the stale-read page stays under
8,000 px at 1,400 px wide; plot text stays readable at 800 px; the browser reports nothing.
Screenshots of each report kind land in the test's temp directory for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_cdp import CHROMIUM, CLIPPED_JS, Cdp, first_anomaly_ops, launch, show
from synthetic_runs import build_run_dir

from dsjepsen.history import Op, write_jsonl
from dsjepsen.reports.html import render_check_report, render_run_report

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup installs Debian's chromium)"
)
KV_BAD = Path("/work/shared/histories/porcupine/kv/c10-bad.txt")
NS = 1_000_000_000


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Cdp]:
    with launch(tmp_path / "profile") as cdp:
        yield cdp


def open_all_rows(cdp: Cdp) -> int:
    return cdp.evaluate(
        "(function(){var r=document.querySelectorAll('details');"
        "r.forEach(function(d){d.open=true});return r.length})()"
    )


def screenshot(cdp: Cdp, path: Path, at: str | None = None) -> None:
    """The whole page, or (at: an element id) the window scrolled to that element: a page
    with every anomaly row open is too tall to capture whole in reasonable time."""
    if at is not None:
        cdp.evaluate(f"document.getElementById({json.dumps(at)}).scrollIntoView()")
    cdp.screenshot(path, full_page=at is None)
    assert path.stat().st_size > 10_000


# -- the real stale-read run, shared by the module ---------------------------------------


@pytest.fixture(scope="module")
def stale_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from dsjepsen.cluster import localnet

    if (
        not localnet.has_net_admin()
        or shutil.which("ip") is None
        or shutil.which("iptables") is None
    ):
        pytest.skip("needs root (CAP_NET_ADMIN), ip and iptables for namespace clusters")
    name = "rs" + os.urandom(2).hex()
    store = tmp_path_factory.mktemp("stale")
    argv = [
        sys.executable, "-m", "dsjepsen", "test", "--target", "raft-kv", "--bug", "stale-read",
        "--nemesis", "partition-majority", "--node-count", "3", "--time-limit", "12",
        "--nemesis-interval", "3", "--cluster-name", name, "--store", str(store), "--seed", "42",
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 1, proc.stderr[-2000:]
        runs = [p for p in store.glob("*/2*") if p.is_dir() and not p.parent.is_symlink()]
        assert len(runs) == 1, runs
        yield runs[0]
    finally:
        localnet.down(name)
        assert not localnet.status(name)["exists"]


@pytest.mark.cluster
@pytest.mark.slow
def test_stale_read_report_tells_one_story(stale_run: Path, browser: Cdp, tmp_path: Path) -> None:
    report = render_run_report(stale_run)
    results = json.loads((stale_run / "results.json").read_text())
    # every failing key: the explained ones and those the checker only located (issue 25)
    n_anomalies = sum(
        len(c.get("anomalies") or []) + len((c.get("details") or {}).get("unexplained") or [])
        for c in results["checks"].values()
    )
    assert n_anomalies >= 2
    failing = results["checks"]["linearizable"]["details"]["failing_keys"]
    assert n_anomalies == len(failing), (n_anomalies, failing)
    show(browser, report.as_uri())
    # the counts are every failing key's, and the rows name the keys the cut-off node failed
    card = browser.evaluate(
        "[].filter.call(document.querySelectorAll('#summary .k'), e => e.textContent === 'anomalies')"
        ".map(e => Number(e.previousElementSibling.textContent))"
    )
    assert card == [len(failing)], (card, failing)
    rows = browser.evaluate(
        "[].map.call(document.querySelectorAll('#anomaly-table details.arow'), d => ({key: d.dataset.key,"
        " node: d.dataset.node, cut: (d.querySelector('.pill.fail') || {}).title || ''}))"
    )
    assert sorted(r["key"] for r in rows) == sorted(str(k) for k in failing), rows
    cut_side = [r for r in rows if r["cut"] and re.search(rf"cut {r['node']} off", r["cut"])]
    assert cut_side, rows
    height = browser.evaluate("document.documentElement.scrollHeight")
    assert height < 8000, height
    # the story's order: summary, first anomaly, RCA, then evidence, then every anomaly
    order = browser.evaluate("[].map.call(document.querySelectorAll('main > section'), s => s.id)")
    assert order[:3] == ["summary", "first-anomaly", "rca"], order
    assert order.index("timeline-section") < order.index("anomalies"), order
    assert "tested" not in order
    screenshot(browser, tmp_path / "invalid-1400.png")
    firsts = first_anomaly_ops(browser)
    assert firsts["summary"] is not None and len(set(firsts.values())) == 1, firsts
    # only the ops the anomalies are about are highlighted, not every op they involve
    tl = json.loads(re.search(r'id="timeline-data">(.*?)</script>', report.read_text(), re.S)[1])
    assert 1 <= len(tl["anomalies"]) <= n_anomalies
    # the per-key view: the first failing key, its linearization drawn, the bad op in red
    browser.evaluate(
        "(function(){var s=document.querySelector('.tl-select');s.value=s.options[1].value;"
        "s.dispatchEvent(new Event('change'))})()"
    )
    key_view = browser.evaluate(
        "({mode: document.getElementById('timeline').getAttribute('data-mode'),"
        " steps: document.querySelectorAll('#timeline .tl-step').length,"
        " bad: document.querySelectorAll('#timeline .tl-op.anomalous').length,"
        " labels: document.querySelectorAll('#timeline .tl-op-label').length})"
    )
    assert key_view["mode"] == tl["keys"][0] and key_view["steps"] >= 1, key_view
    assert key_view["bad"] >= 1, key_view
    rows = open_all_rows(browser)
    assert rows >= n_anomalies
    assert browser.evaluate(CLIPPED_JS) == []
    screenshot(browser, tmp_path / "invalid-1400-open.png", at="anomaly-2")
    # plot text readable at 800 px: rendered font size of the tick labels
    browser.set_width(800)
    time.sleep(0.3)
    px = browser.evaluate(
        "Math.min.apply(null, [].map.call(document.querySelectorAll('svg.plot .tick'),"
        " t => t.getBoundingClientRect().height))"
    )
    assert px >= 10, px
    assert browser.evaluate(CLIPPED_JS) == []
    screenshot(browser, tmp_path / "invalid-800.png", at="plots")
    assert browser.problems() == []


# -- synthetic valid / unknown, an imported history, a CRDT run with clock faults --------


@pytest.mark.parametrize("verdict", ["valid", "unknown"])
def test_valid_and_unknown_reports_say_what_was_tested(
    verdict: str, browser: Cdp, tmp_path: Path
) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=600, verdict=verdict)
    show(browser, render_run_report(run).as_uri())
    ids = browser.evaluate("[].map.call(document.querySelectorAll('main > section'), s => s.id)")
    assert "rca" not in ids and "first-anomaly" not in ids and "anomalies" not in ids, ids
    assert "tested" in ids
    n_faults = browser.evaluate("document.querySelectorAll('#tested-table tr').length - 1")
    assert n_faults >= 1
    assert browser.evaluate("document.getElementById('tested').textContent").count("Availability")
    assert browser.evaluate(CLIPPED_JS) == []
    screenshot(browser, tmp_path / f"{verdict}.png")
    assert browser.problems() == []


def test_imported_history_without_clocks(browser: Cdp, tmp_path: Path) -> None:
    if not KV_BAD.exists():
        pytest.skip(f"{KV_BAD} is absent (shared Porcupine corpus not mounted)")
    from dsjepsen.checkers.linearizable import check_linearizable
    from dsjepsen.formats import read_history

    history = read_history(KV_BAD)
    result = check_linearizable(history)
    assert result.valid is False
    out = render_check_report(history, result, tmp_path / "kv.html", meta={"name": "c10-bad"})
    show(browser, out.as_uri())
    ids = browser.evaluate("[].map.call(document.querySelectorAll('main > section'), s => s.id)")
    # no clocks, no run directory: no time plots, no logs, no reproduction, no empty sections
    for absent in ("plots", "logs", "reproduce", "files"):
        assert absent not in ids, ids
    assert "by history position" in browser.evaluate("document.body.textContent")
    assert "p50" not in browser.evaluate("document.getElementById('stats-table').textContent")
    firsts = first_anomaly_ops(browser)
    assert firsts["summary"] is not None and len(set(firsts.values())) == 1, firsts
    # the diagram draws the op that set the state the failing get contradicts
    a = min(
        result.anomalies,
        key=lambda a: a["op"]["call"],
    )
    writes = [p["op"]["call"] for p in a["prefix"] if p["op"]["f"] != "get"]
    drawn = browser.evaluate(
        "[].map.call(document.querySelectorAll('#first-anomaly g[data-call]'),"
        " g => Number(g.getAttribute('data-call')))"
    )
    assert writes and writes[-1] in drawn and a["op"]["call"] in drawn
    open_all_rows(browser)
    assert browser.evaluate(CLIPPED_JS) == []
    screenshot(browser, tmp_path / "imported.png", at="first-anomaly")
    assert browser.problems() == []


def crdt_run_dir(root: Path) -> Path:
    """A hand-made grow-only-set run on three nodes: a partition from 2 s to 5 s during which n3
    falls behind, a clock fault that sets and measures offsets, a heal, final reads where the
    nodes agree again, and the checkers' results in their documented shapes."""
    run = root / "gset" / "20240501T120000"
    (run / "nodes").mkdir(parents=True)
    raw: list[tuple[int, Any, str, str, Any, Any, str | None]] = []

    def add(t: float, process: Any, typ: str, f: str, value: Any, key: Any = None,
            node: str | None = None) -> None:  # fmt: skip
        raw.append((int(t * NS), process, typ, f, value, key, node))

    add(2.0, "nemesis", "invoke", "start-partition", None)
    add(2.01, "nemesis", "ok", "start-partition",
        {"description": "cut n3 off from n1, n2", "grudge": {"n3": ["n1", "n2"]}})  # fmt: skip
    add(2.5, "nemesis", "invoke", "start-clock", None)
    add(2.51, "nemesis", "ok", "start-clock",
        {"description": "n3 ahead 5 s", "clock_offsets": {"n1": 0, "n2": 0, "n3": 5.0},
         "measured_offsets": {"n1": 0.01, "n2": -0.02, "n3": 4.97}})  # fmt: skip
    elements: list[int] = []
    seen = {"n1": [], "n2": [], "n3": []}
    for i in range(70):
        t = 0.1 + i * 0.1
        node = ("n1", "n2", "n3")[i % 3]
        add(t, i % 3, "invoke", "add", i, key=0, node=node)
        add(t + 0.01, i % 3, "ok", "add", i, key=0, node=node)
        elements.append(i)
        for n in seen:
            if not (2.0 <= t <= 5.0 and (n == "n3") != (node == "n3")):
                seen[n].append(i)
        add(t + 0.02, 3 + i % 3, "invoke", "read-set", None, key=0, node=node)
        add(t + 0.03, 3 + i % 3, "ok", "read-set", sorted(seen[node]), key=0, node=node)
    add(5.0, "nemesis", "invoke", "stop-partition", None)
    add(5.01, "nemesis", "ok", "stop-partition", {"description": "healed the network"})
    add(5.5, "nemesis", "invoke", "stop-clock", None)
    add(5.51, "nemesis", "ok", "stop-clock",
        {"description": "clocks reset", "clock_offsets": {"n1": 0, "n2": 0, "n3": 0},
         "measured_offsets": {"n1": 0.0, "n2": 0.01, "n3": 0.02}})  # fmt: skip
    for j, node in enumerate(("n1", "n2", "n3")):
        add(7.3 + j * 0.01, 10 + j, "invoke", "read-set", None, key=0, node=node)
        add(7.35 + j * 0.01, 10 + j, "ok", "read-set", elements[:-1], key=0, node=node)
    raw.sort(key=lambda r: r[0])  # history order is time order
    ops = [Op(i, t, p, typ, f, v, key=k, node=n) for i, (t, p, typ, f, v, k, n) in enumerate(raw)]
    final_from = next(o.index for o in ops if o.process == 10)
    write_jsonl(ops, run / "history.jsonl")
    (run / "test.json").write_text(json.dumps({
        "name": "gset", "nodes": ["n1", "n2", "n3"], "seed": 3,
        "start_time": "2024-05-01T12:00:00+00:00",
        "argv": ["dsjepsen", "test", "--workload", "g-set", "--nemesis", "partition,clock"],
        "options": {"workload": "g-set", "nemesis": ["partition", "clock"]},
    }))  # fmt: skip
    lost = {
        "type": "lost", "key": 0, "element": 69, "node": "n3",
        "add": {"type": "ok", "node": "n1", "call_time": int(7.0 * NS), "ret_time": int(7.01 * NS)},
        "message": "element 69 of key 0 was lost: its add through n1 completed ok at 7.010 s; "
                   "absent from the final reads of every node (n1, n2, n3); lost by n3.",
    }  # fmt: skip
    results = {
        "valid": False,
        "reason": "set-full: 1 lost",
        "final_reads_from_index": final_from,
        "healed_at": int(5.01 * NS),
        "convergence": {"converged": True, "rounds": 3, "seconds": 0.4},
        "checks": {
            "set-full": {"valid": False, "reason": "1 lost", "anomalies": [lost]},
            "convergence": {
                "valid": True, "anomalies": [],
                "details": {"time_to_converge_s": 2.34, "summary":
                            "1 key(s) converged on every node (3) within 2.340 s of the heal"},
            },
        },
    }  # fmt: skip
    (run / "results.json").write_text(json.dumps(results))
    return run


def test_crdt_and_clock_views(browser: Cdp, tmp_path: Path) -> None:
    run = crdt_run_dir(tmp_path / "store")
    page = render_run_report(run).read_text()
    assert "2.340 s after every fault was healed" in page
    show(browser, (run / "report.html").as_uri())
    lines = browser.evaluate(
        "[].map.call(document.querySelectorAll('#crdt-plot .node-line'), p => p.getAttribute('data-node'))"
    )
    assert lines == ["n1", "n2", "n3"]
    clock = browser.evaluate(
        "({lines: document.querySelectorAll('#clock-plot .node-line').length,"
        " dots: document.querySelectorAll('#clock-plot .measured').length})"
    )
    assert clock == {"lines": 3, "dots": 6}
    table = browser.evaluate("document.getElementById('crdt-found').textContent")
    assert "lost elements" in table and "n3 1" in table
    # the lost element is an anomaly with its ops: the add (op id) and each node's final read
    first = browser.evaluate("document.getElementById('first-anomaly').textContent")
    assert "the add" in first and "last final read through n3" in first and "op " in first
    assert browser.evaluate("document.querySelectorAll('#first-anomaly svg.cr-diagram').length")
    rca = browser.evaluate("document.getElementById('rca').textContent")
    assert "No acknowledged element is lost" in rca
    assert browser.evaluate(CLIPPED_JS) == []
    screenshot(browser, tmp_path / "crdt.png")
    assert browser.problems() == []
