"""`--slo` (issue 31): latency, availability and throughput objectives as a verdict, measured
over the run proper (the final reads excluded)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsjepsen.checkers.base import CheckContext
from dsjepsen.checkers.slo import SloChecker, parse_slo
from dsjepsen.errors import ConfigError
from dsjepsen.history import History, Op

MS = 1_000_000


def history(rows: list[tuple[int, str, str, int, int]]) -> History:
    """(process, f, outcome, invoked at ms, completed at ms) -> a history in time order."""
    events = []
    for p, f, outcome, start, end in rows:
        events.append((start, p, "invoke", f))
        events.append((end, p, outcome, f))
    events.sort()
    return History(
        [
            Op(index=i, time=t * MS, process=p, type=ty, f=f, key=0, value=None)
            for i, (t, p, ty, f) in enumerate(events)
        ]  # fmt: skip
    )


def test_terms_parse_with_units_and_fs():
    terms = parse_slo("p99<10ms, read.p50<2s, availability>99%, throughput>5, max<250us")
    assert [(t.metric, t.op, t.limit, t.f) for t in terms] == [
        ("p99", "<", 10.0, None),
        ("p50", "<", 2000.0, "read"),
        ("availability", ">", 0.99, None),
        ("throughput", ">", 5.0, None),
        ("max", "<", 0.25, None),
    ]
    for bad in ("", "p99<10", "p99<10furlongs", "latency<5ms", "availability>2", "p99=3ms"):
        with pytest.raises(ConfigError, match="--slo"):
            parse_slo(bad)


def test_each_objective_is_measured_over_the_run_proper():
    rows = [(p, "read", "ok", 10 * i, 10 * i + 2) for i, p in enumerate([0, 1] * 50)]
    rows += [(2, "write", "ok", 5, 45), (3, "write", "fail", 50, 51)]
    h = history(rows)
    ok = SloChecker("p99<3ms,read.max<2.5ms,availability>0.95,throughput>50").check(
        h, CheckContext()
    )
    assert ok.valid is True, ok.reason
    bad = SloChecker("p99<3ms,max<3ms,write.p50<10ms,availability>0.995").check(h, CheckContext())
    assert bad.valid is False
    assert bad.details["failed"] == [
        "max<3ms: measured 40 ms",
        "write.p50<10ms: measured 40 ms",
        "availability>0.995: measured 0.9902 (101 of 102 completed ops ok)",
    ]
    # final reads (from the index the run says) do not count: the slow write is one of them
    final_from = next(o.index for o in h.ops if o.f == "write")
    late = SloChecker("max<3ms").check(h, CheckContext(final_from_index=final_from))
    assert late.valid is True, late.reason


def test_a_bad_slo_is_refused_before_any_node():
    proc = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "test", "--slo", "p99<10furlongs", "--cluster-name",
         "slo1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 254 and proc.stderr.startswith("dsjepsen: error: --slo:")
