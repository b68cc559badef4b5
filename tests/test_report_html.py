"""report.html from run directories: every section, every verdict, damaged input, hostile data.

Run directories here come from synthetic_runs (a simulated register with one planted
stale read during a partition); tests/test_report_runs.py renders directories made by real runs.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from synthetic_runs import EVIL, build_run_dir

from dsjepsen.cli import main
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.reports.html import render_check_report, render_run_report

PORCUPINE = Path("/work/shared/histories/porcupine/jepsen")


def timeline_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="timeline-data">(.*?)</script>', page, re.S)
    assert m, "timeline data script missing"
    return json.loads(m.group(1))


def section(page: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}".*?</section>', page, re.S)
    assert m, f"section {sid} missing"
    return m.group(0)


@pytest.fixture
def invalid_run(tmp_path: Path) -> Path:
    return build_run_dir(tmp_path / "store", n_ops=1500, seed=7)


def test_invalid_run_report_has_every_section(invalid_run: Path) -> None:
    out = render_run_report(invalid_run)
    assert out == invalid_run / "report.html"
    page = out.read_text()
    results = json.loads((invalid_run / "results.json").read_text())
    anomaly = results["checks"]["linearizable"]["anomalies"][0]
    history = read_jsonl(invalid_run / "history.jsonl")
    ops = history.operations()

    # 1. verdict banner and summary
    assert re.search(r'id="verdict"[^>]*>INVALID<', page)
    summary = section(page, "summary")
    assert f"{len(ops):,} client ops" in summary
    assert "raft-kv (bugs: stale-read) on 5 nodes" in summary
    assert html.escape(anomaly["message"]) in summary
    # 2. reproduce: the exact command with its seed, versions
    repro = section(page, "reproduce")
    assert (
        "dsjepsen test --target raft-kv --bug stale-read --nemesis partition-majority "
        "--time-limit" in repro
    )
    assert "--seed 7" in repro
    assert "raft-kv 0.1 (synthetic)" in repro
    # 3. timeline: every client op, its outcome and lane; fault windows with descriptions
    tl = timeline_json(page)
    assert len(tl["ops"]["s"]) == len(ops)
    types = Counter(tl["ops"]["t"])
    assert types[0] == sum(o.type == "ok" for o in ops)
    assert types[2] == sum(o.type == "info" for o in ops)
    assert sorted(tl["lanes"], key=int) == sorted({str(o.process) for o in ops}, key=int)
    assert tl["faults"] and all(f["d"].startswith("cut ") for f in tl["faults"])
    bad_id = next(o.id for o in ops if o.call == anomaly["op"]["call"])
    assert bad_id in tl["anomalies"]
    # 4. plots
    assert '<svg id="latency-plot"' in page and '<svg id="throughput-plot"' in page
    assert page.count('class="fault fault-partition"') == 2 * len(tl["faults"])
    # 5. the anomaly: op that cannot be placed, linearization with states, diagram
    anom = section(page, "anomalies")
    assert f'href="#op-{bad_id}"' in anom
    assert "The op that cannot be placed" in anom
    assert anom.count('class="pc-step"') == len(anomaly["prefix"])
    for step in anomaly["prefix"]:
        assert f'<td class="states">{step["state"]}</td>' in anom
    assert 'class="pc-op pc-bad"' in anom
    # 6. node logs: aligned excerpts for stamped logs, an explicit note for the unstamped one
    logs = section(page, "logs")
    assert 'href="./nodes/n1/node.log"' in logs
    assert "this log has no timestamps" in logs and "nodes/n5/node.log" in logs
    assert re.search(r"<strong>anomal(y|ies) #1\b", logs), logs[:400]
    # 7. RCA: the minority-side hypothesis computed from the grudge and Op.node
    rca = section(page, "rca")
    bad_node = next(o.invoke.node for o in ops if o.id == bad_id)
    assert "cut off from the majority" in rca
    assert f"answered by {bad_node}" in rca
    assert "Stale read" in rca
    # 8. per-f statistics match the history
    stats = section(page, "stats")
    reads = [o for o in ops if o.f == "read"]
    row = re.search(r"<strong>read</strong></td><td class=\"n\">([\d,]+)</td>", stats)
    assert row and int(row.group(1).replace(",", "")) == len(reads)


def test_log_excerpts_are_aligned_with_history_time(tmp_path: Path) -> None:
    """A line logged in another time zone lands in the right window; far lines do not."""
    run = build_run_dir(tmp_path / "store", n_ops=600, seed=3, unstamped_node=None)
    test = json.loads((run / "test.json").read_text())
    start = datetime.fromisoformat(test["start_time"])
    history = read_jsonl(run / "history.jsonl")
    fault_t = next(op.time for op in history if op.f == "start-partition")
    near = (start + timedelta(microseconds=fault_t / 1000 + 1_500_000)).astimezone()
    far = start + timedelta(seconds=3600)
    tz = near.strftime("%z")
    custom = run / "nodes" / "n2" / "custom.log"
    custom.write_text(
        f"{near.strftime('%Y-%m-%d %H:%M:%S.%f')}{tz} WARN marker-near-fault\n"
        "  continuation line of the near entry\n"
        f"{far.strftime('%Y-%m-%dT%H:%M:%S')}Z INFO marker-far-away\n"
    )
    page = render_run_report(run).read_text()
    logs = section(page, "logs")
    assert "marker-near-fault" in logs
    assert "continuation line of the near entry" in logs
    assert "marker-far-away" not in logs


@pytest.mark.parametrize(
    ("verdict", "label", "detail"),
    [
        ("valid", "VALID", "every checker passed"),
        ("unknown", "UNKNOWN", "search exceeded its time budget"),
        ("interrupted", "NO VERDICT", "run interrupted"),
    ],
)
def test_other_verdicts(tmp_path: Path, verdict: str, label: str, detail: str) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=400, verdict=verdict)
    page = render_run_report(run).read_text()
    assert re.search(rf'id="verdict"[^>]*>{label}<', page)
    assert detail in page
    assert len(timeline_json(page)["ops"]["s"]) == 400  # the history is drawn regardless
    if verdict == "interrupted":
        assert "No checker ran" in section(page, "tested")
        assert 'id="rca"' not in page  # nothing to analyse: no RCA section


def test_interrupted_run_with_half_written_history(tmp_path: Path) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=300, verdict="interrupted")
    hist = run / "history.jsonl"
    lines = hist.read_text().splitlines(keepends=True)
    hist.write_text("".join(lines[:200]) + lines[200][:15])  # killed mid-write
    (run / "test.json").unlink()
    page = render_run_report(run).read_text()
    assert "NO VERDICT" in page and "test.json is missing" in page
    tl = timeline_json(page)
    assert 90 <= len(tl["ops"]["s"]) <= 110  # ~200 lines = ~100 ops, some never completed
    assert -1 in tl["ops"]["e"] or len(tl["ops"]["s"]) == 100


def test_hostile_values_are_text_everywhere(tmp_path: Path) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=600, evil=True)
    page = render_run_report(run).read_text()
    # no markup from the system under test survives anywhere in the page...
    assert EVIL not in page
    assert "<script>alert" not in page
    # ... exactly our three script elements exist, and the JSON cannot close its element
    assert len(re.findall(r"<script[\s>]", page)) == 3
    data = re.search(r'id="timeline-data">(.*?)</script>', page, re.S).group(1)
    assert "</" not in data and "<" not in data
    # and the values are still there as text: in the data, the summary, faults and logs
    tl = json.loads(data)
    assert any(EVIL in v for v in tl["ops"]["v"])
    assert any(EVIL in d["d"] for d in tl["faults"])
    escaped = html.escape(EVIL)
    for sid in ("summary", "anomalies", "logs", "timeline-section"):
        assert escaped in section(page, sid), sid
    assert html.escape("</script><script>alert(2)</script>") in section(page, "anomalies")
    assert html.escape(EVIL) in page.split("<title>")[1].split("</title>")[0]


def test_large_history_keeps_anomaly_ops(tmp_path: Path) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=20_000, seed=11)
    out = render_run_report(run)
    page = out.read_text()
    tl = timeline_json(page)
    assert len(tl["ops"]["s"]) == 20_000
    assert tl["anomalies"]
    assert out.stat().st_size < 20 * 1024 * 1024 * 0.2  # 20k ops well under a fifth of 20 MB


def test_report_command(tmp_path: Path, invalid_run: Path, capsys) -> None:
    (invalid_run / "report.html").unlink(missing_ok=True)
    assert main(["report", str(invalid_run)]) == 0
    assert (invalid_run / "report.html").exists()
    other = tmp_path / "elsewhere.html"
    assert main(["report", str(invalid_run), "-o", str(other)]) == 0
    assert "INVALID" in other.read_text()
    assert main(["report", str(tmp_path / "nope")]) == 254
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 254
    err = capsys.readouterr().err
    assert "not a run directory" in err


def test_imported_porcupine_history_with_real_checker(tmp_path: Path) -> None:
    path = PORCUPINE / "etcd_000.log"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared Porcupine corpus not mounted)")
    from dsjepsen.checkers.linearizable import check_linearizable
    from dsjepsen.formats import read_history

    history = read_history(path)
    result = check_linearizable(history)
    out = render_check_report(history, result, tmp_path / "etcd.html", meta={"name": "etcd_000"})
    page = out.read_text()
    label = {True: "VALID", False: "INVALID"}.get(result.valid, "UNKNOWN")
    assert re.search(rf'id="verdict"[^>]*>{label}<', page)
    tl = timeline_json(page)
    assert tl["unit"] == "pos"  # an imported log has no clock: positions, not seconds
    assert len(tl["ops"]["s"]) == len(history.operations())
    if result.valid is False:
        a = result.anomalies[0]
        assert html.escape(a["message"]) in section(page, "anomalies")
        assert 'class="porcupine"' in page
        assert len(tl["anomalies"]) >= 1
    # an imported history has no logs and no clock: those sections are left out, not empty
    assert 'id="logs"' not in page and 'id="plots"' not in page


def test_check_report_without_result(tmp_path: Path) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=200, verdict="valid")
    history = read_jsonl(run / "history.jsonl")
    page = render_check_report(history, None, tmp_path / "r.html").read_text()
    assert "NO VERDICT" in page and "no check result was given" in page


def test_summary_says_which_consistency_was_checked_and_at_which_scope() -> None:
    from dsjepsen.reports.html import checked_for

    lin = {"checks": {"linearizable": {"valid": True, "details": {"model": "cas-register"}}}}
    assert "linearizability" in checked_for(lin)
    seq = {
        "checks": {
            "sequential": {
                "valid": True,
                "details": {"consistency": "sequential", "scope": "whole-history"},
            }
        }
    }
    assert checked_for(seq) == (
        "Checked for sequential consistency, scope: whole-history (one order of all the ops, "
        "all keys together)."
    )
    per_key_pass = {"checker": "sequential", "valid": "unknown",
                    "details": {"consistency": "sequential", "scope": "per-key"}}  # fmt: skip
    assert "necessary condition" in checked_for(per_key_pass)
    per_key_fail = {**per_key_pass, "valid": False}
    assert "a violation on one key is a violation of the whole history" in checked_for(per_key_fail)
    assert checked_for({"checks": {"stats": {"valid": True, "details": {}}}}) is None


def test_what_was_tested_gives_each_fault_windows_ok_latency(tmp_path: Path) -> None:
    """Per fault window: ops invoked under it, ok ones, and their p50 / p99 latency, which must
    be those of the ok ops invoked inside the window."""
    import numpy as np

    from dsjepsen.reports.rundata import load_run_dir

    run = build_run_dir(tmp_path / "store", n_ops=3000, verdict="valid")
    page = render_run_report(run).read_text()
    rows = re.findall(r"<tr><td class=\"n\">(\d+)</td>.*?</tr>", page.split('id="tested-table"')[1])
    assert rows
    data = load_run_dir(run)
    w = [w for w in data.faults if w.id == int(rows[0]) - 1][0]
    lat = [
        (o.complete.time - o.invoke.time) / 1e6
        for o in data.operations
        if o.type == "ok" and w.start <= o.invoke.time <= w.end
    ]
    p50, p99 = np.percentile(lat, [50, 99])
    assert f"{p50:.1f} / {p99:.1f} ms" in page
