"""Live progress: one rewritten line on a terminal, a plain log line every few seconds otherwise.

A person watching a run wants to know it is alive, how far it is, whether ops succeed, and
which fault is on right now; a CI log wants the same without carriage returns.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import TextIO

from dsjepsen.harness.recorder import Recorder

log = logging.getLogger("dsjepsen.progress")


class Progress:
    def __init__(
        self,
        recorder: Recorder,
        time_limit: float,
        fault_now: Callable[[], str | None],
        stream: TextIO | None = None,
        interval: float | None = None,
    ):
        self.recorder = recorder
        self.time_limit = time_limit
        self.fault_now = fault_now
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.phase = "running"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        c = self.recorder.counts
        elapsed = min(self.recorder.elapsed(), 10**9)
        fault = self.fault_now() or "none"
        return (
            f"[{self.phase}] {elapsed:5.1f}s / {self.time_limit:g}s  "
            f"ok {c['ok']}  fail {c['fail']}  info {c['info']}  fault: {fault}"
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()

    def emit(self) -> None:
        try:
            if self.tty:
                self.stream.write("\r\x1b[2K" + self.line())
                self.stream.flush()
            else:
                log.info("%s", self.line())
        except (OSError, ValueError):
            pass  # a closed terminal must not break the run

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.tty:
            try:
                self.emit()
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
