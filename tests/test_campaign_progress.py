"""Progress of a run (what a campaign's tests show on a terminal): a rich bar with live
counts and the active fault on a terminal; plain log lines under CI or without a terminal."""

from __future__ import annotations

import io
import logging
import time
from collections import Counter

import pytest

from dsjepsen.harness.progress import Progress, use_rich


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Counts:
    """What Progress reads from the recorder."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter(ok=3, fail=1)
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def run(stream: io.StringIO, env: dict[str, str]) -> Progress:
    rec = Counts()
    p = Progress(rec, 4, lambda: "partition-majority", stream=stream, interval=0.05, env=env)
    p.start()
    time.sleep(0.2)
    rec.counts["info"] += 2
    p.phase = "final reads"
    p.stop()
    p.stop()  # twice is harmless
    return p


def test_terminal_gets_a_rich_bar() -> None:
    out = Terminal()
    p = run(out, env={})
    assert p.rich
    text = out.getvalue()
    assert "━" in text  # the bar
    assert "ok 3" in text and "fail 1" in text and "info 2" in text
    assert "fault: partition-majority" in text and "final reads" in text
    assert "/ 4s" in text


@pytest.mark.parametrize("ci", ["true", "1"])
def test_ci_gets_plain_log_lines(ci: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dsjepsen.progress")
    out = Terminal()
    p = run(out, env={"CI": ci})
    assert not p.rich and out.getvalue() == ""  # nothing redrawn in place
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all("\x1b[" not in line for line in lines) and "ok 3" in lines[0]


def test_no_terminal_gets_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dsjepsen.progress")
    out = io.StringIO()
    run(out, env={})
    assert out.getvalue() == ""
    lines = [r.getMessage() for r in caplog.records]
    assert lines and "ok 3  fail 1" in lines[0] and "fault: partition-majority" in lines[0]
    assert not use_rich(out, {})
