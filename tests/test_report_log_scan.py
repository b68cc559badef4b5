"""The report's log scan at scale: which moments hold a line's instant (found by bisection
over the moments' edges) must be exactly what testing every moment finds, whatever the
moments' overlaps; and zone-less log timestamps keep the machine's local offset."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dsjepsen.reports.logs import Moment, MomentIndex, _scan
from dsjepsen.reports.rundata import parse_log_time

T0 = datetime(2026, 12, 7, 13, 0, 0, tzinfo=UTC)


def brute(ms: list[Moment], t: datetime) -> list[int]:
    return [i for i, m in enumerate(ms) if m.start <= t <= m.end]


def test_moment_index_agrees_with_testing_every_moment() -> None:
    rng = random.Random(7)
    for _ in range(300):
        ms = []
        for _ in range(rng.randrange(0, 12)):
            a, b = rng.randrange(0, 40), rng.randrange(0, 40)  # some empty (start after end)
            ms.append(Moment([], T0 + timedelta(seconds=a), T0 + timedelta(seconds=b)))
        index = MomentIndex(ms)
        for half_s in range(-4, 90):  # every edge, every gap, before and after all of them
            t = T0 + timedelta(seconds=half_s / 2)
            assert index.holding(t) == brute(ms, t), (ms, t)


def test_scan_puts_each_line_in_every_moment_that_holds_it(tmp_path: Path) -> None:
    ms = [
        Moment(["a"], T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)),
        Moment(["b"], T0 + timedelta(seconds=3), T0 + timedelta(seconds=5)),  # shares an edge
        Moment(["c"], T0 + timedelta(seconds=9), T0 + timedelta(seconds=8)),  # empty
    ]
    lines = []
    for tenth in range(0, 70):
        at = T0 + timedelta(seconds=tenth / 10)
        lines.append(f"{at.isoformat()} line {tenth}\n")
        if tenth % 10 == 0:
            lines.append("  a continuation without a timestamp\n")
    log = tmp_path / "server.log"
    log.write_text("".join(lines))
    found, buckets = _scan(log, ms)
    assert found
    a, b, c = buckets
    assert c is None
    assert a is not None and b is not None
    # line 30 (t+3.0 s) and its continuation are in both a and b
    assert any("line 30" in x for x in a.lines) and any("line 30" in x for x in b.lines)
    assert a.lines[0].endswith("line 10") and b.lines[0].endswith("line 30")
    assert len(a.lines) == 21 + 3 and len(b.lines) == 21 + 3  # 21 stamped, 3 continuations


def test_zoneless_timestamps_keep_the_local_offset() -> None:
    for text in ("2026-12-07 13:05:01,250 INFO x", "2026-07-01T02:30:00.5 y"):
        got = parse_log_time(text)
        naive = datetime.fromisoformat(text.split(" INFO")[0].split(" y")[0].replace(",", "."))
        assert got == naive.astimezone() and got.utcoffset() == naive.astimezone().utcoffset()
    assert parse_log_time("2026-12-07T13:05:01Z x") == datetime(2026, 12, 7, 13, 5, 1, tzinfo=UTC)
