"""The report's message diagram (Lamport diagram of a Maelstrom run's node-to-node messages).

A run directory is written by hand, so that which message was dropped, and when, is known:
the section must be there, with one arrow per delivered message and the one lost during the
partition drawn as lost, at the right time even though test.json's start time lies 3 s before
the history's clock started (the relays' wall clock is aligned through the client requests).
One real Maelstrom run under a partition checks the same on real relay logs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.history import Op, write_jsonl
from dsjepsen.reports.html import render_run_report
from dsjepsen.reports.messages import diagram
from dsjepsen.reports.rundata import load_run_dir

NS = 1_000_000_000
#: wall clock when the history's clock read 0; test.json says 3 s earlier (setup time)
ZERO = datetime(2024, 5, 1, 12, 0, 3, tzinfo=UTC)
EVIL = "<script>alert(1)</script>"


def _entry(t: float, node: str, d: str, src: str, dest: str, typ: str, **kw: Any) -> str:
    return json.dumps(
        {"t": ZERO.timestamp() + t, "node": node, "dir": d, "src": src, "dest": dest,
         "type": typ, **kw}
    )  # fmt: skip


def build(root: Path, with_messages: bool = True) -> Path:
    run = root / "run"
    run.mkdir(parents=True)
    (run / "test.json").write_text(
        json.dumps(
            {
                "name": "maelstrom-broadcast",
                "start_time": (ZERO - timedelta(seconds=3)).isoformat(),
                "nodes": [{"name": n} for n in ("n1", "n2", "n3")],
            }
        )
    )
    (run / "results.json").write_text(json.dumps({"valid": True, "checks": {}}))
    ops = [
        Op(0, int(0.1 * NS), 0, "invoke", "broadcast", 1, node="n1"),
        Op(0, int(0.15 * NS), 0, "ok", "broadcast", 1, node="n1"),
        Op(0, int(1.0 * NS), "nemesis", "invoke", "start-partition", None),
        Op(0, int(1.01 * NS), "nemesis", "info", "start-partition", "cut n3 off from n1, n2"),
        Op(0, int(1.1 * NS), 1, "invoke", "broadcast", 2, node="n1"),
        Op(0, int(1.15 * NS), 1, "ok", "broadcast", 2, node="n1"),
        Op(0, int(2.0 * NS), "nemesis", "invoke", "stop-partition", None),
        Op(0, int(2.01 * NS), "nemesis", "info", "stop-partition", "healed"),
    ]
    for i, op in enumerate(ops):
        op.index = i
    write_jsonl(ops, run / "history.jsonl")
    if not with_messages:
        return run
    logs: dict[str, list[str]] = {
        "n1": [
            _entry(0.1005, "n0", "in", "c1", "n0", "broadcast", msg_id=1),
            _entry(0.2, "n0", "out", "n0", "n1", "broadcast", msg_id=1),
            _entry(0.2, "n0", "out", "n0", "n2", "broadcast", msg_id=2),
            _entry(0.23, "n0", "in", "n1", "n0", "broadcast_ok", in_reply_to=1),
            _entry(1.1005, "n0", "in", "c2", "n0", "broadcast", msg_id=1),
            _entry(1.2, "n0", "out", "n0", "n1", EVIL, msg_id=3),
            _entry(1.2, "n0", "out", "n0", "n2", "broadcast", msg_id=4),  # lost: partition
        ],
        "n2": [
            _entry(0.21, "n1", "in", "n0", "n1", "broadcast", msg_id=1),
            _entry(0.22, "n1", "out", "n1", "n0", "broadcast_ok", in_reply_to=1),
            _entry(1.21, "n1", "in", "n0", "n1", EVIL, msg_id=3),
            "not json",
        ],
        "n3": [_entry(0.205, "n2", "in", "n0", "n2", "broadcast", msg_id=2)],
    }
    for node, lines in logs.items():
        (run / "nodes" / node).mkdir(parents=True)
        (run / "nodes" / node / "messages.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_section_arrows_and_the_dropped_message(tmp_path: Path) -> None:
    page = render_run_report(build(tmp_path)).read_text()
    assert '<section id="messages">' in page and 'href="#messages"' in page
    svg = page[page.index('<svg id="message-diagram"') :]
    svg = svg[: svg.index("</svg>")]
    delivered = re.findall(r'<g class="msg" data-src="(\w+)" data-dest="(\w+)"', svg)
    assert sorted(delivered) == [("n0", "n1"), ("n0", "n1"), ("n0", "n2"), ("n1", "n0")]
    lost = re.findall(r'<g class="msg dropped" data-src="(\w+)" data-dest="(\w+)"', svg)
    assert lost == [("n0", "n2")]
    # drawn at its history time (1.2 s), not 3 s later as test.json's start time would put it
    # (the alignment takes the least client delivery delay, 0.5 ms here, as part of the offset)
    assert re.search(r"n0 → n2 broadcast msg_id 4: sent t\+1\.(199|200)s, never received", svg)
    assert 'class="fault fault-partition"' in svg  # the partition band
    assert "1 never received" in page
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert " style=" not in svg  # the page's CSP allows no style attributes


def test_no_section_without_message_logs(tmp_path: Path) -> None:
    run = build(tmp_path, with_messages=False)
    assert diagram(load_run_dir(run)) is None
    page = render_run_report(run).read_text()
    assert 'id="messages"' not in page and 'href="#messages"' not in page


def test_the_window_is_capped_around_the_centre(tmp_path: Path, monkeypatch: Any) -> None:
    from dsjepsen.reports import messages

    monkeypatch.setattr(messages, "MAX_MESSAGES", 3)
    d = diagram(load_run_dir(build(tmp_path)))
    assert d is not None and d.shown == 3 and d.dropped == 1  # the ones at 1.2 s are kept


@pytest.mark.cluster
@pytest.mark.slow
def test_real_maelstrom_run_has_a_message_diagram(tmp_path: Path) -> None:
    from dsjepsen.cluster import localnet

    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name("m")
    node = Path(__file__).parent / "maelstrom_nodes" / "broadcast.py"
    argv = [sys.executable, "-m", "dsjepsen.cli", "maelstrom", "test", "-w", "broadcast",
            "--bin", f"{sys.executable} {node}", "--node-count", "3", "--time-limit", "8",
            "--rate", "20", "--concurrency", "2n", "--convergence-timeout", "5",
            "--nemesis", "partition", "--cluster-name", name, "--store", str(tmp_path / "s")]  # fmt: skip
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        if localnet.read_state(name) is not None:
            localnet.down(name)
        assert not localnet.remains(name)
    runs = sorted((tmp_path / "s").glob("*/*/results.json"))
    assert runs, res.stderr[-2000:]
    page = render_run_report(runs[-1].parent).read_text()
    assert '<section id="messages">' in page
    assert page.count('<g class="msg') > 0
    assert 'class="fault fault-partition' in page[page.index('<svg id="message-diagram"') :]
