"""Issue 25, item 3: the op that proves an anomaly is on screen, with its node, without the
reader scrolling sideways. Checked in headless Chromium on the report of a real raft-kv
`--bug stale-read` run under a majority partition (a pooled cluster), at 800 and 1,400 px:
the first anomaly's diagram and every diagram opened in the anomaly table show the op that
cannot be placed inside the window and inside the diagram's box (fitted to the width when its
text stays readable, else scrolled to that op), beside the label of its lane, which names the
process and the node; its hover text and the linearization table name each op's node as
history.jsonl has it. A unit check covers an op served by another node than it was sent to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from browser_cdp import CHROMIUM, Cdp, launch, show

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.cli import build_parser
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.config import config_from_args
from dsjepsen.harness.runner import Runner
from dsjepsen.history import History, Op
from dsjepsen.reports.html import render_check_report, render_run_report
from dsjepsen.reports.timeline import node_label

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

#: the op that cannot be placed in the diagram inside `box` (scrolled vertically into view
#: first, as a reader does), the label of its lane, and what the diagram's box did
PROVING_JS = """(function(box){
  box.scrollIntoView({block: 'center'});
  var bad = box.querySelector('.pc-bad rect'), b = bad.getBoundingClientRect();
  var c = box.getBoundingClientRect(), W = window.innerWidth, H = window.innerHeight;
  function inside(r) { return r.left >= Math.max(0, c.left) - 0.5 && r.right <= Math.min(W, c.right) + 0.5 &&
                              r.top >= 0 && r.bottom <= H; }
  var mid = (b.top + b.bottom) / 2, lane = null, best = 1e9;
  box.querySelectorAll('svg.pc-lanes text').forEach(function (t) {
    var r = t.getBoundingClientRect(), d = Math.abs((r.top + r.bottom) / 2 - mid);
    if (d < best) { best = d; lane = t; }
  });
  return {bad: inside(b), lane: lane ? lane.textContent : null,
          laneInside: lane ? inside(lane.getBoundingClientRect()) : false,
          tip: bad.parentNode.querySelector('title').textContent, fit: box.getAttribute('data-fit'),
          at: [b.left, b.right], box: [c.left, c.right]};
})(document.querySelector(%s))"""


def proving(cdp: Cdp, selector: str) -> dict[str, Any]:
    return cdp.evaluate(PROVING_JS % json.dumps(selector))


@pytest.mark.cluster
@pytest.mark.slow
def test_the_op_that_cannot_be_placed_is_in_view(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=3)
    full = [
        "test", "--store", str(tmp_path), "--target", "raft-kv", "--bug", "stale-read",
        "--nemesis", "partition-majority", "--time-limit", "9", "--nemesis-interval", "3",
        "--seed", "42",
    ]  # fmt: skip
    config = config_from_args(build_parser().parse_args(full), argv=["dsjepsen", *full])
    run = Runner(config, cluster).run().run_dir
    report = render_run_report(run)
    ops = read_jsonl(run / "history.jsonl").operations(orphans=True)
    with launch(tmp_path / "profile") as cdp:
        for width in (1400, 800):
            show(cdp, report.as_uri(), width)
            rows = cdp.evaluate(
                "[].map.call(document.querySelectorAll('details.arow'), r => r.id)"
                ".filter(id => document.querySelector('#' + id + ' .diagram svg.porcupine'))"
            )
            boxes = ["#first-anomaly .diagram"] + [f"#{r} .diagram" for r in rows]
            assert cdp.evaluate("!!document.querySelector('#first-anomaly .pc-bad')"), (
                "the run's first anomaly has no diagram"
            )
            for box in boxes:
                row = box.split()[0]
                if row != "#first-anomaly":  # the reader opens the row: a click, nothing more
                    cdp.evaluate(f"document.querySelector('{row} > summary').click()")
                    deadline = time.monotonic() + 5
                    while not cdp.evaluate(
                        f"document.querySelector('{box}').hasAttribute('data-fit')"
                    ):
                        assert time.monotonic() < deadline, f"{box} was never fitted"
                        time.sleep(0.05)
                seen = proving(cdp, box)
                assert seen["fit"] in ("whole", "scaled", "scrolled"), seen
                assert seen["bad"] and seen["laneInside"], (width, box, seen)
                # its lane names the process and the node, as history.jsonl has them
                op = int(seen["tip"].split(":")[0].removeprefix("op "))
                o = ops[op]
                assert seen["lane"] in (
                    f"p{o.process} · {node_label(o)}",
                    f"p{o.process}",  # a process whose drawn ops ran on several nodes ...
                ), seen
                if seen["lane"] == f"p{o.process}":  # ... names each op's node in its label
                    assert node_label(o) in cdp.evaluate(
                        f"document.querySelector('{box} .pc-bad .pc-label').textContent"
                    )
                assert f"node {node_label(o)}" in seen["tip"], seen
        # the linearization table names each op's node
        cells = cdp.evaluate(
            "[].map.call(document.querySelectorAll('#first-anomaly details.lin tr'), tr =>"
            " [].map.call(tr.cells, c => c.textContent.trim())).slice(1, -1)"
        )
        assert cells
        for step in cells:
            o = ops[int(step[1].removeprefix("op "))]
            assert step[3] == node_label(o), step
        assert cdp.problems() == []


def test_an_op_served_by_another_node_says_so(tmp_path: Path) -> None:
    """A read sent to n1 and answered by n3 (a follower forwarding to the leader) is
    "n3 via n1" in the diagram, its hover text and the linearization table."""
    raw = [
        (0, "invoke", "write", 1, "n1", "n1"), (0, "ok", "write", 1, "n1", "n1"),
        (1, "invoke", "write", 2, "n2", "n2"), (1, "ok", "write", 2, "n2", "n2"),
        (2, "invoke", "read", None, "n1", None), (2, "ok", "read", 1, "n1", "n3"),
    ]  # fmt: skip
    ops = [
        Op(i, i * 1_000_000, p, t, f, v, key=0, node=(served if t != "invoke" else sent))
        for i, (p, t, f, v, sent, served) in enumerate(raw)
    ]
    history = History(ops, "served.jsonl")
    result = check_linearizable(history)
    assert result.valid is False
    out = render_check_report(history, result, tmp_path / "r.html")
    page = out.read_text()
    assert "n3 via n1" in page
    with launch(tmp_path / "profile") as cdp:
        show(cdp, out.as_uri(), 1400)
        lanes = cdp.evaluate(
            "[].map.call(document.querySelectorAll('#first-anomaly svg.pc-lanes text'),"
            " t => t.textContent)"
        )
        assert "p2 · n3 via n1" in lanes, lanes
        tip = cdp.evaluate("document.querySelector('#first-anomaly .pc-bad title').textContent")
        assert "node n3 via n1" in tip
        assert cdp.problems() == []
