"""Live progress: a progress bar on a terminal, a plain log line every few seconds otherwise.

A person watching a run wants to know it is alive, how far it is, whether ops succeed, and
which fault is on right now; a CI log wants the same without carriage returns or colours. So
on a terminal (and not under CI, where the environment sets CI) the line is drawn with
`rich`: a bar of elapsed time over the time limit, live ok / fail / info counts and the
active fault. Anywhere else, and when rich is missing, it is a log line as before.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TextIO

log = logging.getLogger("dsjepsen.progress")


class _Counts(Protocol):
    """What progress reads from the recorder (kept minimal so it is easy to feed)."""

    counts: Mapping[str, int]

    def elapsed(self) -> float: ...


def live_terminal(stream: Any, env: Mapping[str, str] | None = None) -> bool:
    """A line may be redrawn in place: the stream is a terminal and this is not CI (env CI
    set and not "false"/"0"), whose log viewers keep every carriage return."""
    env = os.environ if env is None else env
    if not getattr(stream, "isatty", lambda: False)():
        return False
    return env.get("CI", "").strip().lower() in ("", "0", "false", "no")


def use_rich(stream: Any, env: Mapping[str, str] | None = None) -> bool:
    """A rich bar only on a live terminal (see live_terminal) and when rich is installed."""
    if not live_terminal(stream, env):
        return False
    try:
        import rich.progress  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """The run's live progress; `start()` once the clock runs, `stop()` when it is over
    (safe to call twice). `phase` says what the run is doing."""

    def __init__(
        self,
        recorder: _Counts,
        time_limit: float,
        fault_now: Callable[[], str | None],
        stream: TextIO | None = None,
        interval: float | None = None,
        env: Mapping[str, str] | None = None,
    ):
        self.recorder = recorder
        self.time_limit = time_limit
        self.fault_now = fault_now
        self.stream = stream if stream is not None else sys.stderr
        self.tty = live_terminal(self.stream, env)
        self.rich = use_rich(self.stream, env)
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.phase = "running"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._task: Any = None

    def line(self) -> str:
        c = self.recorder.counts
        elapsed = min(self.recorder.elapsed(), 10**9)
        fault = self.fault_now() or "none"
        return (
            f"[{self.phase}] {elapsed:5.1f}s / {self.time_limit:g}s  "
            f"ok {c.get('ok', 0)}  fail {c.get('fail', 0)}  info {c.get('info', 0)}  "
            f"fault: {fault}"
        )

    def _fields(self) -> dict[str, Any]:
        c = self.recorder.counts
        return {
            "phase": self.phase,
            "ok": c.get("ok", 0),
            "fail": c.get("fail", 0),
            "info": c.get("info", 0),
            "fault": self.fault_now() or "none",
        }

    def _start_rich(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as Bar

        console = Console(file=self.stream, highlight=False)
        self._bar = Bar(
            TextColumn("[bold]{task.fields[phase]}[/bold]"),
            BarColumn(bar_width=30),
            TextColumn("{task.completed:5.1f}s / {task.total:g}s"),
            TextColumn(
                "[green]ok {task.fields[ok]}[/green]  [red]fail {task.fields[fail]}[/red]  "
                "[yellow]info {task.fields[info]}[/yellow]  fault: {task.fields[fault]}"
            ),
            console=console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            transient=False,
        )
        self._task = self._bar.add_task("run", total=self.time_limit or 1, **self._fields())
        self._bar.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()

    def emit(self) -> None:
        try:
            if self._bar is not None:
                elapsed = min(self.recorder.elapsed(), float(self.time_limit))
                self._bar.update(self._task, completed=elapsed, **self._fields())
                self._bar.refresh()
            elif self.tty:
                self.stream.write("\r\x1b[2K" + self.line())
                self.stream.flush()
            else:
                log.info("%s", self.line())
        except (OSError, ValueError):
            pass  # a closed terminal must not break the run

    def start(self) -> None:
        if self.rich:
            try:
                self._start_rich()
            except Exception:  # noqa: BLE001 - a broken terminal library must not stop a run
                self._bar = None
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._bar is not None:
            try:
                self.emit()
                self._bar.stop()
            except (OSError, ValueError):
                pass
            return
        if self.tty:
            try:
                self.emit()
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
