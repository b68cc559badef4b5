"""Node log excerpts around the moments that matter, aligned with the history's clock.

History times are nanoseconds since the test started; node logs carry wall-clock timestamps.
test.json's start time joins the two: wall = start + t. Lines without a timestamp (stack
traces, continuations) belong to the last timestamped line before them. A log with no
timestamps at all cannot be aligned, and the page says so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dsjepsen.reports.rundata import RunData, parse_log_time

AROUND_S = 3.0
MAX_LINES = 40
MAX_LINE_CHARS = 400
MAX_SCAN_BYTES = 64 * 1024 * 1024
SNIFF_LINES = 300


@dataclass
class Moment:
    """A time the reader will want logs for: a fault start/stop or an anomaly. `anomalies`
    are the numbers of the anomalies whose op ran in it (their rows link here)."""

    label: str
    start: datetime
    end: datetime
    anomalies: list[int] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return f"log-{self.start.strftime('%H%M%S%f')}"


@dataclass
class Excerpt:
    node: str
    file: str  # relative link from the report, e.g. nodes/n1/raft.log
    lines: list[str] = field(default_factory=list)
    more: int = 0


@dataclass
class LogFile:
    node: str
    rel: str
    size: int
    timestamps: bool


@dataclass
class LogSection:
    files: list[LogFile] = field(default_factory=list)
    moments: list[tuple[Moment, list[Excerpt]]] = field(default_factory=list)
    note: str | None = None


#: anomalies that get log windows of their own (the others' rows link to the window they
#: fall in, when one does)
ANOMALY_MOMENTS = 8


def moments(run: RunData, anomaly_times: list[tuple[int, int, int]]) -> list[Moment]:
    """Windows of +-AROUND_S around each fault's start and end and around the first anomalies
    (`anomaly_times`: (number, start, end) in history time, first first). Windows stay apart,
    each named for its moment: one that overlaps the one before starts where that one ends (so
    no line is shown twice), and one left empty by that is dropped, its anomalies going to the
    window that holds them."""
    if run.start_wall is None or run.logical_time:
        return []
    around = timedelta(seconds=AROUND_S)
    raw: list[Moment] = []
    for n, s, e in anomaly_times[:ANOMALY_MOMENTS]:
        raw.append(Moment(f"anomaly #{n}", run.wall(s) - around, run.wall(e) + around, [n]))
    for w in run.faults:
        raw.append(
            Moment(
                f"{w.family} starts: {w.description}",
                run.wall(w.start) - around,
                run.wall(w.start) + around,
            )
        )
        if w.healed:
            raw.append(
                Moment(f"{w.family} healed", run.wall(w.end) - around, run.wall(w.end) + around)
            )
    raw.sort(key=lambda m: (m.start, m.end))
    kept: list[Moment] = []
    for m in raw:
        if kept and m.start < kept[-1].end:
            if m.end <= kept[-1].end:  # inside the window before: that one shows its lines
                kept[-1].anomalies += m.anomalies
                if m.anomalies:
                    kept[-1].label = f"{kept[-1].label}; {m.label}"
                continue
            m = Moment(m.label, kept[-1].end, m.end, m.anomalies)
        kept.append(m)
    for n, s, _e in anomaly_times[ANOMALY_MOMENTS:]:
        when = run.wall(s)
        holder = next((m for m in kept if when is not None and m.start <= when <= m.end), None)
        if holder is not None:
            holder.anomalies.append(n)
    return kept


def _log_files(run_dir: Path) -> list[tuple[str, Path]]:
    nodes_dir = run_dir / "nodes"
    if not nodes_dir.is_dir():
        return []
    out = []
    for node_dir in sorted(p for p in nodes_dir.iterdir() if p.is_dir()):
        for f in sorted(node_dir.rglob("*")):
            if f.is_file() and not f.is_symlink():
                out.append((node_dir.name, f))
    return out


def excerpts(run: RunData, anomaly_times: list[tuple[int, int, int]]) -> LogSection:
    """The log section: every node log file, and the lines of each moment (see `moments`)."""
    section = LogSection()
    if run.run_dir is None:
        section.note = "No run directory: an imported history has no node logs."
        return section
    files = _log_files(run.run_dir)
    if not files:
        section.note = "The run directory has no node logs (nodes/ is missing or empty)."
        return section
    ms = moments(run, anomaly_times)
    if run.start_wall is None:
        section.note = (
            "test.json has no start time, so log lines cannot be aligned with the history."
        )
    per_moment: list[list[Excerpt]] = [[] for _ in ms]
    for node, path in files:
        rel = path.relative_to(run.run_dir).as_posix()
        found_ts, buckets = _scan(path, ms)
        section.files.append(LogFile(node, rel, path.stat().st_size, found_ts))
        for i, ex in enumerate(buckets):
            if ex is not None:
                ex.node, ex.file = node, rel
                per_moment[i].append(ex)
    section.moments = list(zip(ms, per_moment, strict=True))
    return section


def _scan(path: Path, ms: list[Moment]) -> tuple[bool, list[Excerpt | None]]:
    """One pass over a log: which lines fall in which moment. Returns (has timestamps, ...)."""
    buckets: list[Excerpt | None] = [None for _ in ms]
    found = False
    current: datetime | None = None
    read = 0
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return False, buckets
    with fh:
        for n, line in enumerate(fh):
            read += len(line)
            if read > MAX_SCAN_BYTES:
                break
            t = parse_log_time(line)
            if t is not None:
                found = True
                current = t
            elif not found and n >= SNIFF_LINES:
                break  # no timestamps in the first lines: treat as unstamped
            if current is None or not ms:
                continue
            for i, m in enumerate(ms):
                if m.start <= current <= m.end:
                    ex = buckets[i]
                    if ex is None:
                        ex = buckets[i] = Excerpt("", "")
                    if len(ex.lines) < MAX_LINES:
                        text = line.rstrip("\n")
                        if len(text) > MAX_LINE_CHARS:
                            text = text[:MAX_LINE_CHARS] + " …"
                        ex.lines.append(text)
                    else:
                        ex.more += 1
    return found, buckets
