"""Everything a report needs from one run, loaded once and tolerant of missing pieces.

A report must render from whatever a run left behind: a finished run directory, an interrupted
one (no results.json, a half-written last history line), or a bare imported history with no
run directory at all. So loading never raises for a missing or damaged artefact; it records a
warning that the page shows instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from dsjepsen.errors import DsjError
from dsjepsen.faults import FaultLooks, FaultWindow, NemesisEvent, windows
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.history import (
    NEMESIS,
    History,
    Op,
    Operation,
    make_operation,
)

NS = 1_000_000_000


@dataclass
class RunData:
    """A run as the report sees it."""

    title: str
    history: History
    operations: list[Operation]
    test: dict[str, Any]
    results: dict[str, Any] | None
    run_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    events: list[NemesisEvent] = field(default_factory=list)
    #: how each fault family is drawn and explained (test.json's, else the installed packages')
    looks: FaultLooks = field(default_factory=FaultLooks)
    logical_time: bool = False  # imported history without clocks: time is the position
    interrupted: bool = False

    @property
    def start_wall(self) -> datetime | None:
        # the wall time of history time 0 (older runs only recorded the run's start)
        return parse_wall(
            self.test.get("history_start_time")
            or self.test.get("start_time")
            or self.test.get("start")
        )

    @property
    def end_time(self) -> int:
        return self.history.ops[-1].time if self.history.ops else 0

    def wall(self, t_ns: int) -> datetime | None:
        s = self.start_wall
        return None if s is None else s + timedelta(microseconds=t_ns / 1000)

    def fmt_t(self, t_ns: int) -> str:
        """A history time as a person reads it: seconds since start (and wall clock)."""
        if self.logical_time:
            return f"position {t_ns}"
        w = self.wall(t_ns)
        rel = f"t+{t_ns / NS:.3f}s"
        return f"{rel} ({w.strftime('%H:%M:%S.%f')[:-3]})" if w else rel

    @property
    def nodes(self) -> list[str]:
        nodes = self.test.get("nodes") or []
        names = [n if isinstance(n, str) else str(n.get("name", n)) for n in nodes]
        if not names:
            names = sorted({str(op.node) for op in self.history.ops if op.node is not None})
        return names


def parse_wall(s: Any) -> datetime | None:
    """ISO time from test.json; a zone-less time is taken as the controller's local time."""
    if not isinstance(s, str) or not s:
        return None
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.astimezone()
    return d


def _read_json(path: Path, warnings: list[str]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, json.JSONDecodeError) as e:
        warnings.append(f"{path.name} is unreadable ({e}); shown without it")
        return None
    if not isinstance(data, dict):
        warnings.append(f"{path.name} is not a JSON object; ignored")
        return None
    return data


def lenient_operations(ops: list[Op]) -> list[Operation]:
    """Pair invocations and completions without enforcing Jepsen's rules.

    Used only when the strict pairing rejects a history: a report of a broken history is
    still more useful than no report, and the page says the history broke the rules.
    """
    open_ops: dict[Any, Op] = {}
    out: list[Operation] = []
    slots: dict[Any, int] = {}
    for op in ops:
        if op.process == NEMESIS:
            continue
        if op.type == "invoke":
            open_ops[op.process] = op
            slots[op.process] = len(out)
            out.append(make_operation(op, None))
        elif op.process in open_ops:
            inv = open_ops.pop(op.process)
            out[slots.pop(op.process)] = make_operation(inv, op)
    for i, o in enumerate(out):
        o.id = i
    return out


def fault_windows(ops: list[Op]) -> tuple[list[FaultWindow], list[NemesisEvent]]:
    """The history's fault windows and other nemesis events (faults.windows: one rule)."""
    return windows(ops)


def _is_logical(ops: list[Op]) -> bool:
    return bool(ops) and all(op.time == op.index for op in ops[: min(len(ops), 200)])


def build_run_data(
    history: History,
    results: dict[str, Any] | None,
    test: dict[str, Any] | None = None,
    run_dir: Path | None = None,
    title: str | None = None,
    warnings: list[str] | None = None,
    looks: Mapping[str, Any] | None = None,
) -> RunData:
    """`looks` ({family: look dict}, e.g. the installed fault packages') draw the families
    the run's own test.json does not describe (runs recorded before it did)."""
    warnings = list(warnings or [])
    try:
        # completions without invocations (Elle's histories) are ops of their own here, as
        # the transactional checkers read them: the op ids the checkers name are the page's
        operations = history.operations(orphans=True)
    except DsjError as e:
        warnings.append(f"the history breaks Jepsen's process rules ({e}); ops paired leniently")
        operations = lenient_operations(history.ops)
    try:
        faults, events = fault_windows(history.ops)
    except DsjError as e:
        warnings.append(f"nemesis ops could not be paired ({e}); fault windows omitted")
        faults, events = [], []
    test = test or {}
    name = title or test.get("name") or (run_dir.parent.name if run_dir else history.source)
    return RunData(
        title=str(name),
        history=history,
        operations=operations,
        test=test,
        results=results,
        run_dir=run_dir,
        warnings=warnings,
        faults=faults,
        events=events,
        looks=FaultLooks.from_records(test.get("fault_looks"), looks),
        logical_time=_is_logical(history.ops),
        interrupted=(results is None and run_dir is not None)
        or bool((results or {}).get("interrupted")),
    )


def load_run_dir(run_dir: str | Path, looks: Mapping[str, Any] | None = None) -> RunData:
    """Read a run directory; only a missing directory or history is an error. `looks` as
    for build_run_data."""
    from dsjepsen.errors import InputError

    d = Path(run_dir)
    if not d.is_dir():
        raise InputError("not a run directory", str(d))
    warnings: list[str] = []
    test = _read_json(d / "test.json", warnings)
    if test is None:
        warnings.append("test.json is missing: no command, seed or versions to show")
    results = _read_json(d / "results.json", warnings)
    hist_path = d / "history.jsonl"
    if hist_path.exists():
        history = read_jsonl(hist_path)
    else:
        warnings.append("history.jsonl is missing: the run recorded no ops")
        history = History([], str(hist_path))
    return build_run_data(history, results, test, run_dir=d, warnings=warnings, looks=looks)


_TS_RE = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)
_EPOCH_RE = re.compile(r'"(?:ts|time|timestamp)"\s*:\s*(?P<epoch>1\d{9}(?:\.\d+)?)')


#: the local UTC offset of each hour a log's zone-less timestamps fall in (see parse_log_time)
_LOCAL_OFFSETS: dict[str, tzinfo] = {}


def parse_log_time(line: str) -> datetime | None:
    """The wall-clock timestamp at the start of a log line (ISO-ish, or a JSON epoch `ts`).

    A timestamp without a zone is the machine's local time. Asking the system for the local
    offset of every line was a quarter of reading a long run's logs, so it is asked once per
    hour of timestamps; only an hour in which the local offset changes (a daylight-saving
    switch) can then be off by that change for the lines after it."""
    m = _TS_RE.search(line, 0, 80)
    if m:
        frac = m.group("time").replace(",", ".")
        if "." in frac:
            whole, digits = frac.split(".")
            frac = f"{whole}.{digits[:6].ljust(6, '0')}"
        tz = m.group("tz") or ""
        if tz == "Z":
            tz = "+00:00"
        elif tz and ":" not in tz:
            tz = tz[:3] + ":" + tz[3:]
        try:
            d = datetime.fromisoformat(f"{m.group('date')}T{frac}{tz}")
        except ValueError:
            return None
        if d.tzinfo:
            return d
        hour = f"{m.group('date')}T{frac[:2]}"
        zone = _LOCAL_OFFSETS.get(hour)
        if zone is None:
            if len(_LOCAL_OFFSETS) > 100_000:
                _LOCAL_OFFSETS.clear()
            zone = _LOCAL_OFFSETS[hour] = d.astimezone().tzinfo  # type: ignore[assignment]
        return d.replace(tzinfo=zone)
    m2 = _EPOCH_RE.search(line, 0, 200)
    if m2:
        return datetime.fromtimestamp(float(m2.group("epoch")), tz=UTC)
    return None
