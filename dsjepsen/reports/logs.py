"""Node log excerpts around the moments that matter, aligned with the history's clock.

History times are nanoseconds since the test started; node logs carry wall-clock timestamps.
test.json's start time joins the two: wall = start + t. Lines without a timestamp (stack
traces, continuations) belong to the last timestamped line before them. A log with no
timestamps at all cannot be aligned, and the page says so instead of guessing.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from dsjepsen.reports.rundata import RunData, parse_log_time

AROUND_S = 3.0
#: moments close together share one window up to this long, so a burst of anomalies reads as
#: one stretch of log rather than slivers a few milliseconds wide
MAX_WINDOW_S = 4 * AROUND_S
MAX_LINES = 40
MAX_LINE_CHARS = 400
MAX_SCAN_BYTES = 64 * 1024 * 1024
SNIFF_LINES = 300


@dataclass
class Moment:
    """A time the reader will want logs for: fault starts and stops (`events`) and anomalies
    (`anomalies`, the numbers of those whose op ran in it; their rows link here)."""

    events: list[str]
    start: datetime
    end: datetime
    anomalies: list[int] = field(default_factory=list)
    #: anomalies that have a window of their own (the first ones) name it; the rest only link
    named: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        parts = []
        if self.named:
            n = sorted(self.named)
            run = n[-1] - n[0] + 1 == len(n)
            if len(n) == 1:
                parts.append(f"anomaly #{n[0]}")
            elif run:
                parts.append(f"anomalies #{n[0]}–#{n[-1]}")
            else:
                parts.append("anomalies " + ", ".join(f"#{i}" for i in n))
        return "; ".join(parts + self.events)

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
    (`anomaly_times`: (number, start, end) in history time, first first). Windows never
    overlap, so no line is shown twice: one that overlaps the window before joins it while the
    two together span at most MAX_WINDOW_S and hold at most one fault's start or heal, and
    otherwise starts where that one ends. Each
    window is named for every moment in it; later anomalies link to the window they fall in."""
    if run.start_wall is None or run.logical_time:
        return []
    around = timedelta(seconds=AROUND_S)
    raw: list[Moment] = []
    for n, s, e in anomaly_times[:ANOMALY_MOMENTS]:
        raw.append(Moment([], run.wall(s) - around, run.wall(e) + around, [n], [n]))
    for w in run.faults:
        at = run.wall(w.start)
        raw.append(Moment([f"{w.family} starts: {w.description}"], at - around, at + around))
        if w.healed:
            at = run.wall(w.end)
            raw.append(Moment([f"{w.family} healed"], at - around, at + around))
    raw.sort(key=lambda m: (m.start, m.end))
    longest = timedelta(seconds=MAX_WINDOW_S)
    kept: list[Moment] = []
    for m in raw:
        prev = kept[-1] if kept else None
        if prev is not None and m.start < prev.end:
            short_enough = m.end <= prev.end or m.end - prev.start <= longest
            if short_enough and not (m.events and prev.events):
                prev.end = max(prev.end, m.end)
                prev.events += m.events
                prev.anomalies += m.anomalies
                prev.named += m.named
                continue
            m.start = prev.end  # apart: no line is shown twice
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


class MomentIndex:
    """Which moments hold an instant, found by bisection over the moments' edges.

    A long run's server logs hold a million lines and its report a hundred moments; testing
    every moment against every line was most of the report's time (81 of 116 s after a
    10-minute run). Between two consecutive edges, and at each edge, the set of moments that
    hold an instant is fixed, so it is computed once per piece. Moments are closed intervals
    and may overlap or be empty (start after end): the answer is exactly the moments m with
    m.start <= t <= m.end, in their order."""

    def __init__(self, ms: list[Moment]) -> None:
        self.edges = sorted({p for m in ms for p in (m.start, m.end)})
        self.at = [[i for i, m in enumerate(ms) if m.start <= p <= m.end] for p in self.edges]
        self.between = [
            [i for i, m in enumerate(ms) if m.start <= a and b <= m.end]
            for a, b in zip(self.edges, self.edges[1:], strict=False)
        ]

    def holding(self, t: datetime) -> list[int]:
        j = bisect_left(self.edges, t)
        if j < len(self.edges) and self.edges[j] == t:
            return self.at[j]
        if j == 0 or j == len(self.edges):
            return []
        return self.between[j - 1]


def _scan(path: Path, ms: list[Moment]) -> tuple[bool, list[Excerpt | None]]:
    """One pass over a log: which lines fall in which moment. Returns (has timestamps, ...)."""
    buckets: list[Excerpt | None] = [None for _ in ms]
    index = MomentIndex(ms)
    found = False
    current: datetime | None = None
    holding: list[int] = []
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
                if t != current:
                    holding = index.holding(t)
                current = t
            elif not found and n >= SNIFF_LINES:
                break  # no timestamps in the first lines: treat as unstamped
            if current is None or not ms:
                continue
            for i in holding:
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
