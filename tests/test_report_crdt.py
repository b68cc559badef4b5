"""Issue 25, item 4: the CRDT report is as good as the register one, checked in headless
Chromium on the reports of real crdt-kv runs on a pooled cluster: the lww-set bug under a
majority partition (invalid: lost elements, replicas going backwards) and the correct store
under the same fault (valid).

What is measured: the page stays under 8,000 px at 1,400 px wide; every anomaly names its ops
by id and links to them, and the ops it names are the right ones in history.jsonl (the add of
the lost element, the reads through the node that lost it); the first anomaly is drawn, its op
is the one the summary, the RCA timeline and the timeline's "first anomaly" button name, and
it is inside the window at 800 and 1,400 px; convergence anomalies have a time and a phase;
no nanosecond count or raw field name reaches the page; the anomaly list is printed once;
every count on the page (ops, anomalies found and listed, the convergence figures, the ops
the anomalies involve) is the one results.json and history.jsonl give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser_cdp import CHROMIUM, CLIPPED_JS, Cdp, first_anomaly_ops, launch, show

from dsjepsen.cli import build_parser
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.config import config_from_args
from dsjepsen.harness.runner import Runner
from dsjepsen.reports.html import render_run_report

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup)"),
]


def crdt_run(cluster: Cluster, store: Path, *argv: str) -> Path:
    """A crdt-kv g-set run under a majority partition on `cluster`; its run directory, with
    report.html rendered as `dsjepsen test` renders it."""
    full = [
        "test", "--store", str(store), "--target", "crdt-kv", "--workload", "g-set",
        "--nemesis", "partition-majority", "--time-limit", "9", "--nemesis-interval", "3",
        *argv,
    ]  # fmt: skip
    config = config_from_args(build_parser().parse_args(full), argv=["dsjepsen", *full])
    out = Runner(config, cluster).run()
    render_run_report(out.run_dir)
    return out.run_dir


def text(cdp: Cdp, selector: str) -> str:
    return cdp.evaluate(
        f"(function(){{var e=document.querySelector({json.dumps(selector)});"
        "return e ? e.textContent.replace(/\\s+/g, ' ') : null})()"
    )


def cited_ops(cdp: Cdp, selector: str) -> list[dict[str, Any]]:
    """The ops an anomaly's body lists: role, op id (from its link), the text after it."""
    return cdp.evaluate(
        f"""(function(){{
      return [].map.call(document.querySelectorAll({json.dumps(selector + " ul.cited li")}), function (li) {{
        var a = li.querySelector('a[href^="#op-"]');
        return {{role: li.querySelector('.role').textContent,
                 op: a ? Number(a.getAttribute('href').slice(4)) : null,
                 text: li.textContent.replace(/\\s+/g, ' ')}};
      }});
    }})()"""
    )


def inside_window(cdp: Cdp, selector: str) -> dict[str, Any]:
    """Scroll `selector` into view vertically (as a reader does) and say whether it lies
    inside the window and inside its diagram's box."""
    return cdp.evaluate(
        f"""(function(){{
      var e = document.querySelector({json.dumps(selector)});
      if (!e) {{ return null; }}
      e.scrollIntoView({{block: 'center'}});
      var r = e.getBoundingClientRect(), box = e.closest('.cr-box, .diagram').getBoundingClientRect();
      return {{inside: r.left >= Math.max(0, box.left) - 0.5 && r.right <= Math.min(window.innerWidth, box.right) + 0.5
                       && r.top >= 0 && r.bottom <= window.innerHeight,
               r: [r.left, r.right], box: [box.left, box.right], w: window.innerWidth}};
    }})()"""
    )


def test_lww_set_report(pooled_cluster, tmp_path: Path) -> None:
    run = crdt_run(pooled_cluster(node_count=3), tmp_path, "--bug", "lww-set", "--seed", "5")
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is False
    checks = results["checks"]
    listed = [a for c in checks.values() for a in c.get("anomalies") or []]
    history = read_jsonl(run / "history.jsonl")
    ops = history.operations(orphans=True)
    with launch(tmp_path / "profile") as cdp:
        show(cdp, (run / "report.html").as_uri())
        assert cdp.evaluate("document.documentElement.scrollHeight") < 8000
        # the first anomaly: one op everywhere, drawn, and its op inside the window
        firsts = first_anomaly_ops(cdp)
        assert firsts["summary"] is not None and len(set(firsts.values())) == 1, firsts
        anchor = firsts["summary"]
        assert cdp.evaluate("document.querySelectorAll('#first-anomaly svg.cr-diagram').length")
        proving = f"#first-anomaly svg.cr-diagram rect.cr-anchor[data-op='{anchor}']"
        for width in (1400, 800):
            cdp.set_width(width)
            where = inside_window(cdp, proving)
            assert where is not None and where["inside"], (width, where)
        cdp.set_width(1400)
        # every anomaly lists its ops by id, and they are the ops results.json describes
        rows = cdp.evaluate("document.querySelectorAll('#anomaly-table details.arow').length")
        assert rows == len(listed)
        by_message = {a["message"]: a for a in listed}
        for n in range(1, rows + 1):
            row = f"#anomaly-{n}"
            sentence = text(cdp, f"{row} .sentence")
            kind, _, message = sentence.strip().partition(": ")
            raw = by_message[message.strip()]
            cited = cited_ops(cdp, row)
            assert any(c["op"] is not None for c in cited), (n, cited)
            for c in cited:
                assert c["op"] is None or 0 <= c["op"] < len(ops), c
            if kind == "lost":
                add = next(c for c in cited if c["role"] == "the add")
                o = ops[add["op"]]
                assert (o.f, o.key, o.value, o.invoke.node) == (
                    "add", raw["key"], raw["element"], raw["add"]["node"],
                )  # fmt: skip
            if kind == "replica-lost-element":
                miss = next(c for c in cited if "without it" in c["role"])
                o = ops[miss["op"]]
                assert o.invoke.time == raw["missing_at"] and o.invoke.node == raw["node"]
                assert raw["element"] not in o.output
        # convergence anomalies are placed in time, like every other
        placed = cdp.evaluate(
            "[].map.call(document.querySelectorAll('details.arow'), r => [r.getAttribute('data-t'),"
            " r.querySelector('.pill').textContent])"
        )
        assert all(t != "" and phase not in ("unknown", "–") for t, phase in placed), placed
        page = cdp.evaluate("document.querySelector('main').innerText")
        # no nanoseconds, no raw field names, where the anomalies are told
        cdp.evaluate("document.querySelectorAll('details.arow').forEach(d => d.open = true)")
        told = " ".join(text(cdp, f"#{s}") for s in ("first-anomaly", "rca", "crdt", "anomalies"))
        assert not re.search(r"\b\d{9,}\b", told.replace(",", "")), re.findall(r"\d{9,}", told)
        for raw_name in ("seen_on", "call_time", "ret_time", "missing_at", "seen_at"):
            assert raw_name not in told, raw_name
        cdp.evaluate("document.querySelectorAll('details.arow').forEach(d => d.open = false)")
        # the anomaly list is printed once: an anomaly other than the first is on the page
        # once (its row), the first in its row, its section, the summary and the RCA timeline
        second = text(cdp, "#anomaly-2 .sentence").partition(": ")[2].strip()
        assert page.count(second) == 1, second
        assert cdp.evaluate("document.getElementById('crdt-elements')") is None
        # the checkers' counts and caps, as results.json has them
        found = cdp.evaluate(
            "[].map.call(document.querySelectorAll('#crdt-found tr'), tr =>"
            " [].map.call(tr.cells, c => c.textContent.trim())).slice(1)"
        )
        lost = checks["set-full"]["details"]["lost_count"]
        assert ["set-full", "lost elements", f"{lost:,}"] == found[0][:3], found
        assert found[0][3] == str(sum(a["type"] == "lost" for a in listed))
        monotonic = checks["convergence"]["details"]["monotonic_violations"]
        if monotonic:
            row = next(r for r in found if r[0] == "convergence")
            assert row[2] == f"{monotonic:,}"
            assert row[3] == str(len(checks["convergence"]["anomalies"]))
        if lost > 100:
            assert f"found {lost:,} lost elements and lists the first 100" in text(cdp, "#cap-note")
        # the summary's counts, results.json's
        total = checks["stats"]["details"]["total"]
        cards = cdp.evaluate(
            "[].map.call(document.querySelectorAll('.card .v'), v => v.textContent.trim())"
        )
        assert cards[0] == f"{total['count']:,}" and cards[1] == f"{total['ok']:,}"
        assert cards[5] == str(len(listed))
        # the ops the anomalies involve are counted
        impact = re.search(r"involving (\d+) of (\d+) client ops", text(cdp, "#rca"))
        assert impact and 0 < int(impact[1]) <= int(impact[2]) == total["count"], impact
        assert_convergence_agrees(cdp, results)
        # the table sorts inside its own scrolling box, every row kept
        cdp.evaluate("document.querySelector('#anomaly-table [data-sort=node]').click()")
        nodes = cdp.evaluate(
            "[].map.call(document.querySelectorAll('#anomaly-table .arows > details.arow'),"
            " r => r.getAttribute('data-node'))"
        )
        assert len(nodes) == len(listed) and nodes == sorted(nodes)
        cdp.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert cdp.evaluate(CLIPPED_JS) == []
        assert cdp.problems() == []


def assert_convergence_agrees(cdp: Cdp, results: dict[str, Any]) -> None:
    """The convergence sentences carry results.json's figures, once each, and a failed
    check is said first."""
    said = text(cdp, "#convergence")
    check = results["checks"]["convergence"]
    det = check["details"]
    if check["valid"] is False:
        assert said.startswith("The convergence check failed")
    else:
        assert said.startswith("The convergence check passed")
    assert f"{det['time_to_converge_s']:.3f} s after every fault was healed" in said
    assert f"all {det['keys']} keys" in said
    conv = results["convergence"]
    assert f"ran {conv['rounds']} rounds over {conv['seconds']:.3f} s" in said
    assert said.count(" s after") == 1 and "within" not in said


def test_correct_g_set_report(pooled_cluster, tmp_path: Path) -> None:
    run = crdt_run(pooled_cluster(node_count=3), tmp_path, "--seed", "6")
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is True, results.get("reason")
    with launch(tmp_path / "profile") as cdp:
        show(cdp, (run / "report.html").as_uri())
        ids = cdp.evaluate("[].map.call(document.querySelectorAll('main > section'), s => s.id)")
        assert "crdt" in ids and "anomalies" not in ids and "first-anomaly" not in ids, ids
        assert_convergence_agrees(cdp, results)
        stale = results["checks"]["set-full"]["details"]["stale_count"]
        if stale:
            assert text(cdp, "#crdt-stale").startswith(f"{stale:,} elements")
        assert cdp.evaluate("document.documentElement.scrollHeight") < 8000
        assert cdp.evaluate(CLIPPED_JS) == []
        assert cdp.problems() == []


def test_a_time_tick_at_the_right_edge_of_a_diagram_is_written_leftwards() -> None:
    """A CRDT diagram whose panel ends on a tick (here 2.5 s) once drew that tick's label
    centred on the edge, half of it outside the picture (a browser test caught '2.5s')."""
    from types import SimpleNamespace

    from dsjepsen.reports import crdt
    from dsjepsen.reports.plots import WIDTH

    panel = crdt._Panel(0, 2_500_000_000, crdt.LEFT, WIDTH - 12, "around the anomaly")
    frame = "".join(crdt._panel_frame(SimpleNamespace(faults=[]), panel, 200))  # type: ignore[arg-type]
    ticks = re.findall(
        r'<text class="tick" x="([\d.]+)" [^>]*text-anchor="(\w+)">([^<]+)</text>', frame
    )
    assert ticks[-1] == (f"{WIDTH - 12:.1f}", "end", "2.5s")
    assert all(a == "middle" for _, a, _ in ticks[:-1]), ticks
