"""kafka: Jepsen's queue/log checker (jepsen.tests.kafka) for Maelstrom's kafka workload.

A history of `send` (key, message -> ok [offset, message]), `poll` (ok {key: [[offset,
message], ...]}), `assign` (value {keys, ...}) and `crash` ops. Every key is an append-only log;
what the sends acknowledged and the polls returned says which message each offset holds (the
*version order*, gaps removed: offsets may be sparse). Against it, as Jepsen defines them (each
one makes the history invalid; its anomalies cite the ops that prove it):

- **inconsistent-offsets**: one offset of a key holds two different messages;
- **duplicate**: one message of a key sits at two offsets;
- **lost-write**: an acknowledged send that no poll returned, although a poll returned a later
  offset of the same key (whoever read up to there should have read it);
- **unseen**: an acknowledged send that no poll ever returned, not even the final polls, which
  read every key from offset 0;
- **poll-skip** / **nonmonotonic-poll**: a process's poll of a key began past messages known
  to exist after where its previous poll of that key ended, or at or before it (an `assign`
  that drops a key, or a crash, starts the process afresh on it);
- **int-poll-skip** / **int-nonmonotonic-poll**: the same within one poll's list for a key;
- **nonmonotonic-send**: a process's send to a key got an offset at or before its previous
  send's to that key;
- **aborted-read** (Jepsen's G1a): a poll returned a message whose send failed (`fail`: it
  certainly did not happen).

And one finding that is reported but judged nothing: **committed-offset-regression**, a
`list_committed_offsets` that returned a lower offset for a key than one already committed
before it began. Maelstrom's spec allows it (a fresh assign may start "at offset 3 (or
lower)"), so a node that does it only makes consumers read messages again.

Only ok polls count as reads (Maelstrom's kafka client records no messages for a poll that
did not succeed); sends count when ok, and when info for their process's order.

Linear in the history: one pass builds the version order (dicts per key), a second checks each
op against it; memory is a few dict entries per message (bench/kafka_checker.py: 1,000,000
messages).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.set_full import hashable, plain
from dsjepsen.history import NEMESIS, History, Op, gc_paused

SEND, POLL, ASSIGN = "send", "poll", "assign"
#: every error type, in the order results list them, with what it means in one phrase
ERROR_TYPES = {
    "inconsistent-offsets": "two messages at one offset",
    "duplicate": "one message at two offsets",
    "lost-write": "an acknowledged message skipped by every poll that read past it",
    "unseen": "an acknowledged message no poll ever returned",
    "poll-skip": "a poll skipped messages after the previous poll of the process",
    "nonmonotonic-poll": "a poll went back to or before the previous poll of the process",
    "int-poll-skip": "one poll's messages skip offsets",
    "int-nonmonotonic-poll": "one poll's messages go backwards",
    "nonmonotonic-send": "a process's send got an offset at or before its previous send's",
    "aborted-read": "a poll returned a message whose send failed",
}
INFO_TYPES = {
    "committed-offset-regression": "list_committed_offsets returned less than was committed",
}
#: anomalies kept per type (the counts are always complete)
MAX_PER_TYPE = 20
#: skipped messages named in one anomaly
SHOWN = 8


def max_offsets(ops: Iterable[Op]) -> dict[str, int]:
    """{key: highest offset an ok send acknowledged or an ok poll returned} (Jepsen's
    max-offsets, which the final polls must reach)."""
    out: dict[str, int] = {}
    for op in ops:
        if op.type != "ok":
            continue
        if op.f == SEND and isinstance(op.value, list) and len(op.value) == 2:
            o = op.value[0]
            if isinstance(o, int) and o > out.get(op.key, -1):
                out[op.key] = o
        elif op.f == POLL and isinstance(op.value, dict):
            for k, pairs in op.value.items():
                for p in pairs or ():
                    if (
                        isinstance(p, list)
                        and p
                        and isinstance(p[0], int)
                        and p[0] > out.get(k, -1)
                    ):
                        out[k] = p[0]
    return out


def _keys_of(value: Any) -> list[Any]:
    if isinstance(value, dict):
        value = value.get("keys")
    return list(value) if isinstance(value, list | tuple) else []


@dataclass(slots=True)
class _Log:
    """What one key's log is known to hold."""

    at: dict[int, Any] = field(default_factory=dict)  # offset -> message (the first seen)
    first: dict[Any, int] = field(default_factory=dict)  # message -> lowest offset (then index)
    read: set[Any] = field(default_factory=set)  # messages ok polls returned
    acked: dict[Any, int] = field(default_factory=dict)  # message -> ok send's completion pos
    failed: dict[Any, int] = field(default_factory=dict)  # message -> failed send's pos
    conflicts: dict[int, set[Any]] = field(default_factory=dict)  # offset -> messages
    dups: dict[Any, set[int]] = field(default_factory=dict)  # message -> its offsets
    max_read: tuple[int, Any, int] | None = None  # (offset, message, poll completion pos)
    order: list[Any] = field(default_factory=list)  # index -> message
    index_of: dict[int, int] = field(default_factory=dict)  # offset -> index


def _h(m: Any) -> Any:
    try:
        hash(m)
        return m
    except TypeError:
        return hashable(m)


class KafkaChecker(Checker):
    name = "kafka"
    description = (
        "Jepsen's queue/log checker for Maelstrom's kafka: lost writes, duplicate and "
        "inconsistent offsets, poll skips, non-monotonic polls and sends, aborted reads"
    )

    def check(self, history: History, context: CheckContext | None = None) -> CheckResult:
        with gc_paused():
            return _Analysis(history).run()


class _Analysis:
    def __init__(self, history: History) -> None:
        self.ops = history.ops
        self.logs: dict[Any, _Log] = {}
        #: by position: a completion's invocation position, and an invocation's op id (the
        #: report's op numbers), -1 for neither; compact arrays, not dicts: a big history
        #: has millions of ops
        self.inv_at = array("q", [-1]) * len(self.ops)
        self.op_id = array("q", [-1]) * len(self.ops)
        self.found: dict[str, list[dict[str, Any]]] = {t: [] for t in [*ERROR_TYPES, *INFO_TYPES]}
        self.counts: dict[str, int] = dict.fromkeys(self.found, 0)
        self.stats = {"sends": 0, "acked": 0, "polls": 0, "messages_polled": 0}

    # -- reporting ----------------------------------------------------------------------------

    def opdict(self, pos: int) -> dict[str, Any]:
        """The op whose completion is at `pos`, as reports link it (call = invocation pos)."""
        inv_pos = self.invocation(pos)
        op_id = self.op_id[inv_pos] if self.op_id[inv_pos] >= 0 else None
        inv, comp = self.ops[inv_pos], self.ops[pos]
        out = comp.value
        if comp.f == POLL and isinstance(out, dict):
            out = {k: v[:6] + (["..."] if len(v) > 6 else []) for k, v in list(out.items())[:6]}
        return {
            "id": op_id, "call": inv_pos, "ret": pos, "process": inv.process,
            "node": inv.node or comp.node, "f": inv.f, "key": inv.key, "value": inv.value,
            "output": out, "type": comp.type, "call_time": inv.time, "ret_time": comp.time,
        }  # fmt: skip

    def add(
        self, kind: str, key: Any, make: Callable[[], tuple[str, list[int], dict[str, Any]]]
    ) -> None:
        """Count one anomaly; build it (message, the positions of the ops that prove it,
        extra fields) only while fewer than MAX_PER_TYPE of its type are kept."""
        self.counts[kind] += 1
        if len(self.found[kind]) >= MAX_PER_TYPE:
            return
        message, positions, extra = make()
        ops = [self.opdict(p) for p in positions]
        last = ops[-1] if ops else {}
        self.found[kind].append(
            {"type": kind, "key": key, "message": message, "ops": ops,
             "op_id": last.get("id"), "node": last.get("node"), "window": [o["call"] for o in ops],
             **extra}
        )  # fmt: skip

    def invocation(self, pos: int) -> int:
        """The position of the invocation of the op completed at `pos` (itself if none)."""
        inv = self.inv_at[pos]
        return pos if inv < 0 else inv

    def whose(self, positions: list[int] | None) -> str:
        """'send op 3 (process 1 through n1) and poll op 9 (...)': the ops that said so."""
        named = [f"{self.ops[p].f} {self.who(p)}" for p in positions or []]
        return " and ".join(named) if named else "sends and polls"

    def who(self, pos: int) -> str:
        d = self.opdict(pos)
        node = f" through {d['node']}" if d["node"] else ""
        return f"op {d['id']} (process {d['process']}{node})"

    # -- pass 1: the version order --------------------------------------------------------

    def collect(self) -> None:
        logs, inv_at, op_ids = self.logs, self.inv_at, self.op_id
        open_: dict[Any, int] = {}
        op_id = 0
        for pos, op in enumerate(self.ops):
            if op.type == "invoke":
                if op.process != NEMESIS:
                    open_[op.process] = pos
                    op_ids[pos] = op_id
                    op_id += 1
                continue
            got = open_.pop(op.process, None)
            if got is None:
                continue
            inv_at[pos] = got
            f = op.f
            if f == SEND:
                inv = self.ops[got]
                log = logs.get(inv.key)
                if log is None:
                    log = logs[inv.key] = _Log()
                self.stats["sends"] += 1
                if op.type == "ok" and isinstance(op.value, list) and len(op.value) == 2:
                    o, m = op.value[0], _h(op.value[1])
                    self.stats["acked"] += 1
                    log.acked.setdefault(m, pos)
                    if isinstance(o, int):
                        self._place(log, o, m)
                elif op.type == "fail":
                    log.failed.setdefault(_h(inv.value), pos)
            elif f == POLL and op.type == "ok" and isinstance(op.value, dict):
                self.stats["polls"] += 1
                for k, pairs in op.value.items():
                    log = logs.get(k)
                    if log is None:
                        log = logs[k] = _Log()
                    if not pairs:
                        continue
                    self.stats["messages_polled"] += len(pairs)
                    read = log.read
                    for o, m in pairs:
                        m = _h(m)
                        read.add(m)
                        self._place(log, o, m)
                    top = max(o for o, _ in pairs)
                    if log.max_read is None or top > log.max_read[0]:
                        log.max_read = (top, log.at.get(top), pos)
        for log in logs.values():
            offsets = sorted(log.at)
            log.index_of = {o: i for i, o in enumerate(offsets)}
            log.order = [log.at[o] for o in offsets]
            index_of = log.index_of
            log.first = {m: index_of[o] for m, o in log.first.items()}

    @staticmethod
    def _place(log: _Log, o: int, m: Any) -> None:
        cur = log.at.setdefault(o, m)
        if cur is not m and cur != m:
            log.conflicts.setdefault(o, {cur}).add(m)
        prev = log.first.setdefault(m, o)
        if prev != o:
            log.dups.setdefault(m, {prev}).add(o)
            if o < prev:
                log.first[m] = o

    # -- pass 2: each op against the order ------------------------------------------------

    def check_ops(self) -> None:
        logs = self.logs
        last_reads: dict[Any, dict[Any, tuple[Any, int]]] = {}
        last_sends: dict[Any, dict[Any, tuple[Any, int]]] = {}
        committed: dict[Any, tuple[int, int]] = {}  # key -> (highest committed offset, pos)
        before: dict[Any, dict[Any, tuple[int, int] | None]] = {}  # process -> at its assign
        for pos, op in enumerate(self.ops):
            p = op.process
            if op.type == "invoke":
                if op.f == ASSIGN and p != NEMESIS:
                    before[p] = {k: committed.get(k) for k in _keys_of(op.value)}
                continue
            f, t = op.f, op.type
            if f == POLL and t == "ok" and isinstance(op.value, dict):
                lr = last_reads.setdefault(p, {})
                for k, pairs in op.value.items():
                    log = logs[k]
                    self._within_poll(log, k, pairs, pos)
                    prev = lr.get(k)
                    if prev is not None and prev[0] is not None and pairs:
                        self._between_polls(log, k, prev, pairs[0], pos)
                    lr[k] = (pairs[-1] if pairs else None, pos)
                    if pairs:
                        top = max(0, max(o for o, _ in pairs))
                        if top > committed.get(k, (-1, 0))[0]:
                            committed[k] = (top, pos)
            elif f == SEND and t in ("ok", "info"):
                inv_pos = self.invocation(pos)
                k = self.ops[inv_pos].key
                m = (
                    op.value[1]
                    if t == "ok" and isinstance(op.value, list)
                    else self.ops[inv_pos].value
                )
                ls = last_sends.setdefault(p, {})
                prev = ls.get(k)
                log = logs.get(k)
                if prev is not None and log is not None:
                    i, j = log.first.get(_h(prev[0])), log.first.get(_h(m))
                    if i is not None and j is not None and j - i < 1:
                        self.add("nonmonotonic-send", k, lambda k=k, m=m, prev=prev, pos=pos, i=i, j=j: (
                            f"key {k!r}: {self.who(pos)} sent message {m!r}, which got index "
                            f"{j} of the log, at or before index {i} of message {prev[0]!r} "
                            f"that the same process sent earlier ({self.who(prev[1])}).",
                            [prev[1], pos], {"values": [prev[0], m], "delta": j - i},
                        ))  # fmt: skip
                ls[k] = (m, pos)
            elif f == ASSIGN and t in ("ok", "info"):
                keys = set(_keys_of(op.value) or _keys_of(self.ops[self.invocation(pos)].value))
                for table in (last_reads, last_sends):
                    kept = table.get(p)
                    if kept:
                        table[p] = {k: v for k, v in kept.items() if k in keys}
                if t == "ok" and isinstance(op.value, dict):
                    self._committed(op, pos, before.pop(p, {}))

    def _within_poll(self, log: _Log, k: Any, pairs: Sequence[Any], pos: int) -> None:
        first = log.first
        prev_i, prev = None, None
        for o, m in pairs:
            i = first.get(_h(m))
            if prev_i is not None and i is not None:
                d = i - prev_i
                if d > 1:
                    skipped = log.order[prev_i + 1 : i]
                    self.add("int-poll-skip", k, lambda prev=prev, o=o, m=m, d=d, skipped=skipped: (
                        f"key {k!r}: {self.who(pos)} returned offset {prev[0]} then {o}, "
                        f"skipping {d - 1} message(s) known to be between them: "
                        f"{_fmt(skipped)}.",
                        [pos],
                        {"values": [prev[1], m], "delta": d,
                         "skipped": [plain(x) for x in skipped[:SHOWN]]},
                    ))  # fmt: skip
                elif d < 1:
                    self.add("int-nonmonotonic-poll", k, lambda prev=prev, o=o, m=m, d=d: (
                        f"key {k!r}: {self.who(pos)} returned offset {prev[0]} (message "
                        f"{prev[1]!r}) then offset {o} (message {m!r}): not increasing.",
                        [pos], {"values": [prev[1], m], "delta": d},
                    ))  # fmt: skip
            prev_i, prev = i, (o, m)

    def _between_polls(
        self, log: _Log, k: Any, prev: tuple[Any, int], head: Sequence[Any], pos: int
    ) -> None:
        (o1, v1), last_pos = prev[0], prev[1]
        o2, v2 = head
        i, j = log.first.get(_h(v1)), log.first.get(_h(v2))
        if i is None or j is None:
            return
        d = j - i
        process = self.ops[pos].process
        if d > 1:
            skipped = log.order[i + 1 : j]
            self.add("poll-skip", k, lambda: (
                f"key {k!r}: process {process}'s poll {self.who(last_pos)} ended at offset "
                f"{o1}, its next poll of the key {self.who(pos)} began at offset {o2}, "
                f"skipping {d - 1} message(s) known to be between them: {_fmt(skipped)}.",
                [last_pos, pos],
                {"values": [v1, v2], "delta": d, "skipped": [plain(x) for x in skipped[:SHOWN]]},
            ))  # fmt: skip
        elif d < 1:
            self.add("nonmonotonic-poll", k, lambda: (
                f"key {k!r}: process {process}'s poll {self.who(last_pos)} ended at offset "
                f"{o1} (message {v1!r}), yet its next poll of the key {self.who(pos)} began at "
                f"offset {o2} (message {v2!r}), at or before it.",
                [last_pos, pos], {"values": [v1, v2], "delta": d},
            ))  # fmt: skip

    def _committed(self, op: Op, pos: int, snapshot: dict[Any, tuple[int, int] | None]) -> None:
        got = op.value.get("committed")
        if not isinstance(got, dict):
            return
        for k, c in got.items():
            had = snapshot.get(k)
            if had is not None and isinstance(c, int) and c < had[0]:
                self.add("committed-offset-regression", k, lambda k=k, c=c, had=had: (
                    f"key {k!r}: list_committed_offsets in {self.who(pos)} returned {c}, "
                    f"although offset {had[0]} had been committed before it began (the commit "
                    f"after poll {self.who(had[1])}); allowed: consumers then read messages "
                    "again, nothing is lost.",
                    [had[1], pos], {"returned": c, "committed": had[0]},
                ))  # fmt: skip

    # -- what the order itself shows ------------------------------------------------------

    def check_logs(self) -> None:
        wanted: list[tuple[Any, int | None, Any]] = []
        for k, log in self.logs.items():
            wanted += [(k, o, None) for o in log.conflicts]
            wanted += [(k, None, m) for m in log.dups]
            wanted += [(k, None, m) for m in log.failed if m in log.read]
        seen = self._witnesses(wanted) if wanted else {}
        for k, log in self.logs.items():
            for o, ms in sorted(log.conflicts.items()):
                self.add("inconsistent-offsets", k, lambda k=k, o=o, ms=ms: (
                    f"key {k!r}: offset {o} holds {len(ms)} different messages "
                    f"({_fmt(sorted(ms, key=repr))}), as {self.whose(seen.get((k, o, None)))} "
                    "reported them.",
                    seen.get((k, o, None), []), {"offset": o, "values": [plain(m) for m in ms]},
                ))  # fmt: skip
            for m, offs in log.dups.items():
                self.add("duplicate", k, lambda k=k, m=m, offs=offs: (
                    f"key {k!r}: message {plain(m)!r} sits at {len(offs)} offsets "
                    f"({', '.join(map(str, sorted(offs)))}), as "
                    f"{self.whose(seen.get((k, None, m)))} reported it.",
                    seen.get((k, None, m), []), {"value": plain(m), "offsets": sorted(offs)},
                ))  # fmt: skip
            for m, pos in log.failed.items():
                if m in log.read:
                    self.add("aborted-read", k, lambda k=k, m=m, pos=pos: (
                        f"key {k!r}: a poll returned message {plain(m)!r}, whose send "
                        f"{self.who(pos)} failed (it certainly did not happen).",
                        [pos, *seen.get((k, None, m), [])[:1]], {"value": plain(m)},
                    ))  # fmt: skip
            self._unread(k, log)

    def _unread(self, k: Any, log: _Log) -> None:
        """Acknowledged sends no ok poll returned: unseen, and lost writes when a poll read
        the key past them (Jepsen: every message up to the highest index read must have been
        read by someone)."""
        read, first = log.read, log.first
        bound = max((first[m] for m in read if m in first), default=-1)
        last_index = {m: max(log.index_of[o] for o in offs) for m, offs in log.dups.items()}
        for m, pos in log.acked.items():
            if m in read:
                continue
            idx = last_index.get(m, first.get(m))
            o = self.ops[pos].value[0]
            if idx is not None and idx <= bound and log.max_read is not None:
                top, top_m, top_pos = log.max_read
                self.add("lost-write", k, lambda m=m, pos=pos, o=o, top=top, top_m=top_m, top_pos=top_pos: (
                    f"key {k!r}: message {plain(m)!r} at offset {o} was acknowledged by send "
                    f"{self.who(pos)}, and poll {self.who(top_pos)} read the key up to offset "
                    f"{top} (message {plain(top_m)!r}), yet no poll ever returned offset {o}.",
                    [pos, top_pos], {"value": plain(m), "offset": o},
                ))  # fmt: skip
            self.add("unseen", k, lambda m=m, pos=pos, o=o: (
                f"key {k!r}: message {plain(m)!r} at offset {o} was acknowledged by send "
                f"{self.who(pos)}, but no poll ever returned it, not even the final polls "
                "from offset 0.",
                [pos], {"value": plain(m), "offset": o},
            ))  # fmt: skip

    def _witnesses(self, wanted: list[tuple[Any, int | None, Any]]) -> dict[Any, list[int]]:
        """{(key, offset, message): positions of the first ok ops (up to 4) that reported
        anything at that offset, or that message}: one pass, for the few anomalies found."""
        by_key: dict[Any, list[tuple[Any, int | None, Any]]] = {}
        for w in wanted:
            by_key.setdefault(w[0], []).append(w)
        out: dict[Any, list[int]] = {w: [] for w in wanted}
        for pos, op in enumerate(self.ops):
            if op.type != "ok":
                continue
            if op.f == SEND and isinstance(op.value, list) and len(op.value) == 2:
                k = self.ops[self.invocation(pos)].key
                pairs: Sequence[Any] = [op.value] if k in by_key else ()
            elif op.f == POLL and isinstance(op.value, dict):
                for k, pairs in op.value.items():
                    if k in by_key:
                        self._match(by_key[k], pairs or (), pos, out)
                continue
            else:
                continue
            if pairs:
                self._match(by_key[k], pairs, pos, out)
        return out

    @staticmethod
    def _match(
        items: list[tuple[Any, int | None, Any]],
        pairs: Sequence[Any],
        pos: int,
        out: dict[Any, list[int]],
    ) -> None:
        for item in items:
            hits = out[item]
            if len(hits) >= 4 or (hits and hits[-1] == pos):
                continue
            _, offset, m = item
            if any(o == offset if m is None else _h(x) == m for o, x in pairs):
                hits.append(pos)

    # -- the verdict ---------------------------------------------------------------------

    def run(self) -> CheckResult:
        self.collect()
        self.check_ops()
        self.check_logs()
        errors = [t for t in ERROR_TYPES if self.counts[t]]
        anomalies = [a for t in ERROR_TYPES for a in self.found[t]]
        details: dict[str, Any] = {
            **self.stats,
            "keys": len(self.logs),
            "error_types": errors,
            "bad_error_types": errors,
            "counts": {t: n for t, n in self.counts.items() if n},
            "what": {**ERROR_TYPES, **INFO_TYPES},
            "info": {t: self.found[t] for t in INFO_TYPES if self.found[t]},
        }
        if errors:
            first = anomalies[0]["message"] if anomalies else ""
            summary = ", ".join(f"{self.counts[t]} {t}" for t in errors)
            return CheckResult("kafka", False, f"{summary}; first: {first}", anomalies, details)
        if not self.stats["acked"] or not self.stats["polls"]:
            return CheckResult(
                "kafka", "unknown", "no send was acknowledged or no poll succeeded", [], details
            )
        return CheckResult("kafka", True, None, [], details)


def _fmt(xs: Sequence[Any]) -> str:
    shown = ", ".join(repr(plain(x)) for x in xs[:SHOWN])
    return shown + (", ..." if len(xs) > SHOWN else "")
