"""The root-cause-analysis skeleton, filled from what the run recorded.

Hypotheses are computed, not canned: each one states a fact found in the data (which node
answered the anomalous op, which side of an active partition it was on, whether it was paused
or had just restarted, whether a read returned an overwritten value) and what that fact
suggests. A hypothesis with no supporting fact is not emitted.

Faults are read from their records, never from family names (`fault_kind`): any fault
package, a plugin's included, that records a grudge or sides, or the signal it sent, gets
the same analysis as the built-in partitions, kills and pauses.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dsjepsen.faults import FaultLook, FaultWindow, sides
from dsjepsen.history import Operation
from dsjepsen.reports.anomaly import Anomaly, op_text, reason_head
from dsjepsen.reports.rundata import NS, RunData, parse_log_time
from dsjepsen.reports.timeline import node_label, short
from dsjepsen.reports.txn_story import Story, StoryTxn, anomaly_keys, is_cycle, stories, txn_line

MAX_EVIDENCE = 3
INVARIANTS = {
    "nonlinearizable": (
        "Linearizability of each key as a single register: every operation must appear to "
        "take effect atomically at one instant between its invocation and its completion, "
        "so a read returns the value of the latest write that took effect before it."
    ),
    "lost": (
        "No acknowledged element is lost: once an add completed ok (or a read returned the "
        "element), every later read, and every node's final read after the heal, must contain it."
    ),
    "phantom": "Reads return only elements that some add tried and that did not fail.",
    "stale": (
        "Reads are not stale for long: once an element is known to be in the set, reads that "
        "begin later contain it."
    ),
    "duplicate": "A set read never lists an element twice.",
    "out-of-bounds": (
        "A counter read lies between the ok increments completed before it began and every "
        "increment that may have been applied by its end."
    ),
    "final-read": (
        "After the heal every node's counter equals the sum of the acknowledged increments "
        "(plus any subset of the indeterminate ones)."
    ),
    "not-converged": (
        "Strong eventual consistency: after the faults heal and the nodes exchange state, "
        "every node ends with the same value of every key."
    ),
    "wrong-total": (
        "Jepsen's bank: transfers move money between accounts, never create or destroy it, so "
        "every read of all accounts (one transaction) sums to the total put in at the start."
    ),
    "negative-balance": "Jepsen's bank: a transfer that would overdraw its account fails, so no "
    "read shows a negative balance.",
    "missing-account": "Jepsen's bank: every read of all accounts has a balance for each account.",
    "unexpected-account": "Jepsen's bank: reads show only the accounts the bank was set up with.",
    "replica-lost-element": (
        "Monotonic reads per replica: a node never loses an element of a grow-only set it "
        "has already returned."
    ),
    "replica-counter-decreased": (
        "Monotonic reads per replica: a grow-only counter read through one node never goes "
        "backwards."
    ),
}


@dataclass
class Hypothesis:
    title: str
    evidence: list[str]
    suggests: str
    #: how many anomalies this hypothesis explains (the ranking key); set from the evidence
    support: int = 0
    #: ranked above every hypothesis that is not (a cause the others only show: a lost
    #: acknowledged write explains the reads that miss it, whatever their count)
    cause: bool = False


@dataclass
class TimelineRow:
    t: int
    when: str
    what: str
    kind: str  # fault, heal, anomaly, run


@dataclass
class Rca:
    #: the facts an RCA opens with, as (label, text) rows: what failed, which invariant,
    #: when, on which node, what fault was active
    headline: list[tuple[str, str]]
    by_node: list[tuple[str, int]]
    by_phase: list[tuple[str, int]]
    summary: str
    impact: list[str]
    detection: list[str]
    timeline: list[TimelineRow]
    invariants: list[str]
    hypotheses: list[Hypothesis]
    reproduction: str | None
    notes: list[str] = field(default_factory=list)


def components(nodes: list[str], value: Any) -> list[list[str]] | None:
    """The sides of a partition, from its completion value (faults.sides)."""
    return sides(value, nodes)


#: signal names (with or without SIG) -> what a fault that sent it did to its nodes
SIGNAL_KINDS = {"STOP": "pause", "KILL": "kill"}


def fault_kind(nodes: list[str], value: Any) -> str | None:
    """What a fault record alone says was done: "partition" (it has a grudge or sides),
    "pause" (it sent SIGSTOP to its nodes), "kill" (SIGKILL), or None. Used for a family
    whose package declared no look (an older run, an imported history): such records still
    get the analysis of the built-in families."""
    if not isinstance(value, dict):
        return None
    if sides(value, nodes) is not None:
        return "partition"
    signal = value.get("signal")
    if isinstance(signal, str):
        return SIGNAL_KINDS.get(signal.strip().upper().removeprefix("SIG"))
    return None


#: what a record-only kind means when no package described the family (see fault_kind)
_RECORD_LOOKS = {
    "partition": FaultLook(label="partition", partition=True, rank=10),
    "pause": FaultLook(
        label="pause",
        title="A paused node answered: {node}",
        on_node="it was paused by \u201c{fault}\u201d during the op",
        suggests=(
            "A leader that resumes after a pause may still believe it leads (lease or timing "
            "assumptions) and serve stale or conflicting results until it learns of the new "
            "term."
        ),
        rank=20,
    ),
    "kill": FaultLook(
        label="kill",
        title="The answering node was killed around the op: {node}",
        on_node="\u201c{fault}\u201d killed it around the op",
        suggests=(
            "State acknowledged before the crash may have been lost on restart (writes "
            "acknowledged before being made durable), or the restarted node served reads "
            "before catching up with the log."
        ),
        rank=30,
    ),
}


def look_of(run: RunData, w: FaultWindow) -> FaultLook:
    """How the RCA reads window `w`: its family's look, or, when no package described the
    family, what its record says (a grudge is a partition, SIGSTOP a pause, SIGKILL a kill)."""
    look = run.looks.by_family.get(w.family)
    if look is not None:
        return look
    kind = fault_kind(run.nodes, w.value)
    return _RECORD_LOOKS.get(kind or "", run.looks(w.family))


def _is_read(o: Operation) -> bool:
    """A read in any of the vocabularies (read, get, a transaction of reads only): what the
    minority-side hypothesis is about; an add or a write accepted by a cut-off node is no
    stale answer."""
    if o.f in ("read", "get", "r"):
        return True
    return o.f == "txn" and all(isinstance(m, list) and m[:1] == ["r"] for m in o.value or [])


def _interval(o: Operation, end: int) -> tuple[int, int]:
    return o.invoke.time, o.complete.time if o.complete is not None else end


def _active(run: RunData, s: int, e: int) -> list[FaultWindow]:
    return [w for w in run.faults if not w.failed and w.start <= e and w.end >= s]


def _secs(ns: int) -> str:
    return f"{ns / NS:.2f}s"


def hypotheses(run: RunData, anomalies: list[Anomaly]) -> list[Hypothesis]:
    out: list[Hypothesis] = []
    ops = run.operations
    nodes = run.nodes
    majority = len(nodes) // 2 + 1 if nodes else 0
    minority_hits: list[str] = []
    served: dict[str, int] = {}
    anomalous = [ops[i] for a in anomalies for i in sorted(a.op_ids)[:1] if i < len(ops)]
    # the op each anomaly is about (its anchor: the op that cannot be placed)
    bad_ops: list[tuple[Anomaly, Operation]] = [
        (a, ops[a.anchor]) for a in anomalies if a.anchor is not None and a.anchor < len(ops)
    ]
    if not bad_ops:
        bad_ops = [(a, o) for a, o in zip(anomalies, anomalous, strict=False)]
    # per (family, node): the evidence that a fault acting on the answering node explains it
    on_node: dict[tuple[str, str], list[str]] = {}
    looks: dict[str, FaultLook] = {}
    quiet: list[str] = []
    for a_, o in bad_ops:
        node, label = o.node, node_label(o)  # the node that answered; how the page writes it
        s, e = _interval(o, run.end_time)
        if node:
            served[node] = served.get(node, 0) + 1
        active = _active(run, s, e)
        if not active:
            prev = [w for w in run.faults if not w.failed and w.end < s]
            if prev:
                gap = s - max(w.end for w in prev)
                quiet.append(
                    f"op {o.id} ({op_text(_d(o))}) ran {_secs(gap)} after the last fault healed"
                )
            else:
                quiet.append(f"op {o.id} ({op_text(_d(o))}) ran before any fault was injected")
        for w in active:
            look = look_of(run, w)
            comps = sides(w.value, nodes)  # any record with sides or a grudge is a partition
            if comps is not None:
                # a cycle's transactions are placed one by one (cycle_hypotheses)
                if node and _is_read(o) and not is_cycle(a_):
                    side = next((c for c in comps if node in c), [node])
                    if len(side) < majority:
                        minority_hits.append(
                            f"op {o.id} ({op_text(_d(o))}, key {short(o.key)}) was answered by "
                            f"{label} at {run.fmt_t(e)}, while {node} was on the minority side "
                            f"{{{', '.join(side)}}} of the partition \u201c{w.description}\u201d "
                            f"(active {run.fmt_t(w.start)} to {run.fmt_t(w.end)})"
                        )
            elif node and node in w.nodes and look.title and look.on_node:
                detail = look.detail(w.value, node)
                said = look.on_node.format(fault=w.description, detail=detail or "?")
                on_node.setdefault((w.family, node), []).append(
                    f"op {o.id} ({op_text(_d(o))}) was answered by {label}: {said} "
                    f"(active {run.fmt_t(w.start)} to {run.fmt_t(w.end)})"
                )
                looks[w.family] = look
    for (family, node), ev in sorted(on_node.items(), key=lambda kv: looks[kv[0][0]].rank):
        look = looks[family]
        out.append(Hypothesis(look.title.format(node=node), ev, look.suggests or ""))  # type: ignore[union-attr]
    if minority_hits:
        out.insert(
            0,
            Hypothesis(
                "Reads answered by a node cut off from the majority (and so from the leader)",
                minority_hits,
                "The node answered from its local state without confirming it still "
                "belonged to a quorum: reads that bypass consensus (no read index, no "
                "leader lease check, or serving from a follower) return values that a "
                "newer majority has already overwritten.",
            ),
        )
    lost = _lost_writes(run, [o for _, o in bad_ops], majority)
    if lost:
        # the writer's side: a write acknowledged, then never seen again, is the cause the
        # reads only show; it goes first, whatever the readers' hypotheses count
        lost_support = len({ev.op for ev in lost})
        out.insert(
            0,
            Hypothesis(
                "An acknowledged write was lost: "
                + "; ".join(
                    dict.fromkeys(f"op {ev.write.id} acknowledged by {ev.node}" for ev in lost)
                ),
                [ev.sentence for ev in lost],
                "The node acknowledged the write before a quorum had made it durable (or while "
                "it was no longer the leader a quorum follows): the entry was later truncated "
                "or never replicated, so the acknowledged value is lost for every later read.",
                support=lost_support,
                cause=True,
            ),
        )
    # a read already explained by a lost write is not also a stale read: the write was lost
    explained = {ev.op for ev in lost}
    stale = _stale_reads(run, [o for _, o in bad_ops if o.id not in explained])
    if stale:
        out.append(
            Hypothesis(
                "Stale read: an overwritten value was returned",
                stale,
                "Some replica answered from an older state than the one already acknowledged "
                "to other clients.",
            )
        )
    if len(served) == 1 and sum(served.values()) > 1:
        node = next(iter(served))
        out.append(
            Hypothesis(
                f"Every anomalous op was answered by {node}",
                [f"{served[node]} anomalous ops, all through {node}"],
                f"Look at {node}'s log around these times first.",
                support=served[node],
            )
        )
    if quiet and run.faults:  # with no faults at all, "no fault was active" explains nothing
        out.append(
            Hypothesis(
                "No fault was active while the anomalous op ran",
                quiet,
                "The anomaly happened on the normal path (or after healing): the bug need not "
                "depend on the fault at all, or state damaged during a fault persisted.",
            )
        )
    out += cycle_hypotheses(run, anomalies)
    for h in out:
        h.support = h.support or len(h.evidence)
    # causes first, then by how many anomalies each explains; ties keep the order above (most
    # specific first)
    return sorted(out, key=lambda h: (not h.cause, -h.support))


def cycle_hypotheses(run: RunData, anomalies: list[Anomaly]) -> list[Hypothesis]:
    """For transactional cycles whose transactions ran while a partition was surely in
    effect (from its start's completion to its stop's invocation, for the whole transaction):
    the nodes they went through and the side each was on, as the fault records give them. A
    cycle with a transaction served on a minority side throughout is one hypothesis per
    serving node (it completed without its quorum); a cycle all of whose transactions ran on
    the majority side throughout is another (the partition did not cut them off: the bug is on
    the majority's own path). No record with sides, or a partition that only overlapped a
    transaction's start or end, no hypothesis."""
    minority: dict[str, list[str]] = {}  # node -> evidence
    majority: list[str] = []
    majority_nodes: list[str] = []
    for n, st in stories(run, anomalies).items():
        if not st.cycle:
            continue
        placed = [t for t in st.txns if any(whole for *_, whole in t.sides)]
        if not placed:
            continue
        said = f"{st.kind} #{n} (keys {', '.join(st.keys) or '?'}): " + "; ".join(
            _placed(t) for t in st.txns
        )
        cut = [t for t in placed if any(m and whole for _, _, m, whole in t.sides)]
        for t in cut:
            minority.setdefault(t.served or t.node, []).append(said)
        if not cut and len(placed) == len(st.txns):
            majority.append(said)
            majority_nodes += [t.served or t.node for t in st.txns]
    out = []
    for node, ev in minority.items():
        ev = list(dict.fromkeys(ev))
        out.append(
            Hypothesis(
                f"A transaction of the cycle was served by {node}, on the minority side of a "
                "partition from its invocation to its completion",
                ev,
                f"{node} was cut off from the majority for the whole transaction, yet completed "
                "it ok: it cannot have ordered it through a quorum, so its reads (or its "
                "commit) bypassed the majority and could miss writes the majority had "
                "committed. A transaction must be ordered by the quorum (the leader's log, a "
                "read index) before it answers.",
                support=len(ev),
            )
        )
    if majority:
        out.append(
            Hypothesis(
                "Every transaction of the cycle ran on the majority side of the partition "
                f"throughout ({', '.join(dict.fromkeys(majority_nodes))})",
                majority,
                "The partition did not cut these transactions off from the quorum: look for "
                "the isolation bug on the majority's own commit path (concurrency control, "
                "reads outside the transaction's snapshot), which the partition's timing or "
                "leader change may have exposed.",
                support=len(majority),
            )
        )
    return out


def _placed(t: StoryTxn) -> str:
    """`T2 (op 212, [r 101 [1]]) through n4, minority side {n4, n5} of "cut ..."`."""
    op = f"op {t.op_id}" if t.op_id is not None else f"index {t.index}"
    where = f"{t.name} ({op}, {t.mops_text}) through {t.node or 'an unrecorded node'}"
    for desc, side, minor, whole in t.sides:
        which = "minority" if minor else "majority"
        span = "" if whole else " (for part of it at most)"
        where += f", on the {which} side {{{', '.join(side)}}} of \u201c{desc}\u201d{span}"
    return where + (f", invoked {t.invoked}" if t.invoked else "")


def _d(o: Operation) -> dict[str, Any]:
    return {"f": o.f, "value": o.value, "output": o.output, "type": o.type}


@dataclass
class LostWrite:
    """A write acknowledged ok and never seen again, and the anomalous op it explains."""

    write: Operation
    node: str
    op: int  # the anomalous op's id
    sentence: str


#: words a node's log uses when it drops entries it had (Raft's truncation, a rollback)
LOST_WORDS = (
    "truncat",
    "conflict",
    "rollback",
    "roll back",
    "discard",
    "step down",
    "stepping down",
)
#: how long after the write's acknowledgement the node's log is searched for them
LOG_SEARCH_S = 15.0


def _lost_writes(run: RunData, bad: list[Operation], majority: int) -> list[LostWrite]:
    """For each anomalous ok read: the latest write of its key acknowledged (ok) before the
    read began, when the read did not return its value and no read in the whole history ever
    did. That write is lost: the sentence names it, the node that acknowledged it, what the
    faults' records say that node was at that moment (the leader a partition cut off, on the
    minority side, paused), and the node's log lines that dropped entries after it."""
    out: list[LostWrite] = []
    by_key: dict[Any, list[Operation]] = {}
    for o in run.operations:
        by_key.setdefault(o.key, []).append(o)
    for r in bad:
        if r.f not in ("read", "get") or r.type != "ok":
            continue
        ops = by_key.get(r.key, [])
        acked = [
            o
            for o in ops
            if o.f in ("write", "put", "cas")
            and o.type == "ok"
            and o.complete is not None
            and o.complete.time < r.invoke.time
        ]
        if not acked:
            continue
        w = max(acked, key=lambda o: o.complete.time)  # type: ignore[union-attr]
        value = _written(w)
        if value == r.output or any(
            o.f in ("read", "get") and o.type == "ok" and o.output == value for o in ops
        ):
            continue
        node = node_label(w) or "an unrecorded node"
        assert w.complete is not None
        at = w.complete.time
        parts = [
            f"op {w.id} ({op_text(_d(w))}, key {short(w.key)}) was acknowledged ok by {node} at "
            f"{run.fmt_t(at)}; no read ever returned {short(value)}, and read op {r.id} "
            f"(invoked {run.fmt_t(r.invoke.time)}, after it) returned {short(r.output)}"
        ]
        role = _role_of(run, node, at, majority)
        if role:
            parts.append(f"when it acknowledged it, {node} {role}")
        said = _log_evidence(run, node, at)
        if said:
            parts.append(f"{node}'s log then said: \u201c{said}\u201d")
        out.append(LostWrite(w, node, r.id, "; ".join(parts)))
    return out


def _written(o: Operation) -> Any:
    """The value a write-like op left in its register (a cas's new value)."""
    if o.f == "cas" and isinstance(o.value, list | tuple) and len(o.value) == 2:
        return o.value[1]
    return o.value


def _role_of(run: RunData, node: str, t: int, majority: int) -> str | None:
    """What the faults' records say `node` was at time t: the leader a partition isolated
    (the record's `leader` / `isolated`), on a minority side, paused: None when nothing."""
    said = []
    for w in run.faults:
        if w.failed or not (w.start <= t <= w.end) or not isinstance(w.value, dict):
            continue
        value = w.value
        if node in (value.get("leader"), value.get("isolated")):
            said.append(f"was the leader isolated by \u201c{w.description}\u201d")
            continue
        comps = sides(value, run.nodes)
        if comps is not None:
            side = next((c for c in comps if node in c), None)
            if side is not None and len(side) < majority:
                said.append(
                    f"was on the minority side {{{', '.join(side)}}} of \u201c{w.description}\u201d"
                )
        elif node in w.nodes:
            said.append(f"was under \u201c{w.description}\u201d")
    return "; ".join(said) or None


def _log_evidence(run: RunData, node: str, t: int) -> str | None:
    """The first line of `node`'s logs, within LOG_SEARCH_S after history time t, that says
    the node dropped entries (LOST_WORDS); None when there is none or logs cannot be aligned."""
    if run.run_dir is None or run.start_wall is None or run.logical_time:
        return None
    start = run.wall(t)
    if start is None:
        return None
    end = start + timedelta(seconds=LOG_SEARCH_S)
    node_dir = run.run_dir / "nodes" / node
    if not node_dir.is_dir():
        return None
    for path in sorted(p for p in node_dir.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    when = parse_log_time(line)
                    if when is None or when < start:
                        continue
                    if when > end:
                        break
                    low = line.lower()
                    if any(word in low for word in LOST_WORDS):
                        return line.strip()[:300]
        except OSError:
            continue
    return None


def _stale_reads(run: RunData, bad: list[Operation]) -> list[str]:
    """For each anomalous ok read, find the write of its value and a later completed write."""
    out: list[str] = []
    for r in bad:
        if r.f != "read" or r.type != "ok" or r.output is None:
            continue
        writes = [
            o
            for o in run.operations
            if o.key == r.key
            and o.f in ("write", "cas")
            and o.type in ("ok", "info")
            and o.complete is not None
        ]

        src = [o for o in writes if _written(o) == r.output and o.invoke.time < r.invoke.time]
        last_src = max(src, key=lambda o: o.complete.time) if src else None
        later = [
            o
            for o in writes
            if o.type == "ok"
            and _written(o) != r.output
            and o.complete.time < r.invoke.time
            and (last_src is None or o.invoke.time > last_src.complete.time)
        ]
        if last_src is not None and later:
            w = max(later, key=lambda o: o.complete.time)
            out.append(
                f"read op {r.id} (key {short(r.key)}, invoked {run.fmt_t(r.invoke.time)}) "
                f"returned {short(r.output)}, written by op {last_src.id}; but op {w.id} "
                f"({op_text(_d(w))}) had completed at {run.fmt_t(w.complete.time)}, before "
                "the read began"
            )
        elif not src:
            out.append(
                f"read op {r.id} returned {short(r.output)}, a value no write in the history "
                "wrote to this key"
            )
    return out


def build(
    run: RunData,
    anomalies: list[Anomaly],
    summary: str,
    counts: dict[str, int],
    reproduce: str | None,
) -> Rca:
    affected = set().union(*(a.op_ids for a in anomalies)) if anomalies else set()
    keys = sorted(
        {k for a in anomalies for k in anomaly_keys(a)},
        key=lambda k: (0, int(k), k) if k.lstrip("-").isdigit() else (1, 0, k),
    )
    impact = []
    if anomalies:
        impact.append(
            f"{len(anomalies)} anomal{'y' if len(anomalies) == 1 else 'ies'} involving "
            f"{len(affected)} of {counts['total']} client ops"
        )
        if keys:
            impact.append(
                f"keys affected: {', '.join(keys[:30])}" + (" …" if len(keys) > 30 else "")
            )
    else:
        impact.append("no anomaly was found")
    impact.append(
        f"{counts['ok']} ok, {counts['fail']} failed, {counts['info']} indeterminate (info) ops"
    )
    detection = []
    results = run.results or {}
    for name, res in (results.get("checks") or {}).items():
        if isinstance(res, dict):
            v = res.get("valid")
            verdict = {True: "valid", False: "INVALID"}.get(v, str(v))
            # what it found, never cut inside a sentence; its own "first" is not the page's
            why = reason_head(str(res.get("reason") or ""))
            reason = f": {short(why, 400)}" if why else ""
            detection.append(f"checker {name}: {verdict}{reason}")
    if not detection:
        detection.append(
            "no checker ran (the run was interrupted before checking)"
            if run.results is None
            else "results.json lists no checks"
        )
    tl: list[TimelineRow] = [TimelineRow(0, run.fmt_t(0), "test starts", "run")]
    for w in run.faults:
        tl.append(TimelineRow(w.start, run.fmt_t(w.start), f"fault: {w.description}", "fault"))
        if w.healed:
            tl.append(
                TimelineRow(
                    w.end, run.fmt_t(w.end), f"healed: {w.stop_description or w.family}", "heal"
                )
            )
    for e in run.events:
        tl.append(TimelineRow(e.time, run.fmt_t(e.time), e.description, "fault"))
    first = _first_anomaly(run, anomalies)
    if first is not None:
        a, o = first
        tl.append(
            TimelineRow(
                o.invoke.time,
                run.fmt_t(o.invoke.time),
                f"first anomalous op {o.id} invoked ({op_text(_d(o))}, {_keys_text(a, o)}, "
                f"process {o.process}{', node ' + node_label(o) if node_label(o) else ''}): {a.message}",
                "anomaly",
            )
        )
    tl.append(TimelineRow(run.end_time, run.fmt_t(run.end_time), "last recorded op", "run"))
    tl.sort(key=lambda r: r.t)
    hyps = hypotheses(run, anomalies)
    invariants = []
    told = stories(run, anomalies)
    for a in anomalies:
        text = INVARIANTS.get(a.type, f"{a.checker}: no {a.type} anomalies")
        if a.n in told:
            text = _isolation_invariant(told[a.n])
        if text not in invariants:
            invariants.append(text)
    for h in hyps:
        if len(h.evidence) > MAX_EVIDENCE:
            more = len(h.evidence) - MAX_EVIDENCE
            h.evidence = h.evidence[:MAX_EVIDENCE] + [f"… and {more} more like these"]
    headline: list[tuple[str, str]] = []
    by_node: dict[str, int] = {}
    by_phase: dict[str, int] = {}
    for a in anomalies:
        by_node[a.node or "unknown"] = by_node.get(a.node or "unknown", 0) + 1
        by_phase[a.phase or "unknown"] = by_phase.get(a.phase or "unknown", 0) + 1
    if anomalies:
        a0 = anomalies[0]
        failed = sorted({a.checker for a in anomalies})
        headline.append(
            (
                "what failed",
                f"checker {', '.join(failed)}: {len(anomalies)} anomal"
                f"{'y' if len(anomalies) == 1 else 'ies'}"
                # a bank read spans every account, not keys: no "on no keys"
                + (f" on {len(keys)} key{'' if len(keys) == 1 else 's'}" if keys else ""),
            )
        )
        headline.append(("invariant", invariants[0] if invariants else a0.type))
        if a0.n in told:
            headline.append(("isolation", told[a0.n].isolation.sentence(a0.type)))
        if a0.t is not None:
            headline.append(("when (first)", run.fmt_t(a0.t)))
        if a0.n in told:  # a cycle happened on every node its transactions went through
            where = ", ".join(f"{t.node or 'not recorded'} ({t.name})" for t in told[a0.n].txns)
            headline.append(("on which nodes", where))
        else:
            headline.append(("on which node", a0.node or "not recorded"))
        headline.append(("fault active", a0.fault or f"none ({a0.phase})"))
    return Rca(
        headline=headline,
        by_node=sorted(by_node.items(), key=lambda kv: (-kv[1], kv[0])),
        by_phase=sorted(by_phase.items(), key=lambda kv: (-kv[1], kv[0])),
        summary=summary,
        impact=impact,
        detection=detection,
        timeline=tl,
        invariants=invariants,
        hypotheses=hyps,
        reproduction=reproduce,
    )


def _keys_text(a: Anomaly, o: Operation) -> str:
    """`key 3`, or for an anomaly over several keys (a transactional cycle) `keys 100, 101`."""
    keys = anomaly_keys(a) if a.key is None else []
    if len(keys) > 1:
        return f"keys {', '.join(keys)}"
    return f"key {keys[0] if keys else short(o.key)}"


def _isolation_invariant(st: Story) -> str:
    """The invariant a cycle breaks, in the models the run was checked for."""
    iso = st.isolation
    checked = ", ".join(iso.violated or iso.checked) or "the checked isolation level"
    return (
        f"Isolation ({checked}): the committed transactions must be explainable by one "
        f"order consistent with what each read saw; {st.kind} ({st.meaning}) is forbidden."
    )


def _first_anomaly(run: RunData, anomalies: list[Anomaly]) -> tuple[Anomaly, Operation] | None:
    """The first anomaly in time and its op: `anomalies` come from `anomaly.link_ops`, in
    time order, so this is the first one that names an op (one definition for the page)."""
    for a in anomalies:
        if a.anchor is not None and a.anchor < len(run.operations):
            return a, run.operations[a.anchor]
    return None


def anomaly_intervals(run: RunData, anomalies: list[Anomaly]) -> list[tuple[int, int, int]]:
    """(number, start, end) in history time of each anomaly whose op is known, in the
    anomalies' (time) order: where the log excerpts look around."""
    out = []
    for a in anomalies:
        if a.anchor is not None and a.anchor < len(run.operations):
            s, e = _interval(run.operations[a.anchor], run.end_time)
            out.append((a.n, s, e))
    return out


# ---------------------------------------------------------------------------------------------
# The RCA as Markdown: what an engineer pastes into the incident document

#: anomalies listed as evidence in the Markdown (the page has them all)
MARKDOWN_EVIDENCE = 10


def to_markdown(run: RunData, r: Rca, anomalies: list[Anomaly], title: str) -> str:
    """The RCA as a Markdown document: summary, impact, timeline, evidence (each op with its
    node, time and the fault active then), faults, hypotheses with their evidence, detection,
    the invariant and the command that reproduces the run. Facts only: every line is filled
    from the run, nothing is a placeholder to fill in later."""
    lines = [f"# Root-cause analysis: {title}", "", "## Summary", "", r.summary, ""]
    if r.headline:
        lines += ["| | |", "|---|---|"] + [f"| {k} | {_md(v)} |" for k, v in r.headline] + [""]
    lines += ["## Impact", ""] + [f"- {_md(i)}" for i in r.impact] + [""]
    lines += ["## Timeline", "", "| when | event |", "|---|---|"]
    lines += [f"| {r_.when} | {_md(r_.what)} |" for r_ in r.timeline] + [""]
    lines += ["## Evidence", ""]
    told = stories(run, anomalies)
    for a in anomalies[:MARKDOWN_EVIDENCE]:
        where = []
        if a.anchor is not None and a.anchor < len(run.operations):
            o = run.operations[a.anchor]
            where.append(f"op {o.id} `{op_text(_d(o))}`")
            where.append(f"process {o.process}")
        if a.key is not None:
            where.append(f"key {short(a.key)}")
        if a.node:
            where.append(f"node {a.node}")
        if a.t is not None:
            where.append(run.fmt_t(a.t))
        where.append(f"fault active: {a.fault}" if a.fault else a.phase or "no fault")
        lines.append(f"{a.n}. **{a.type}** ({', '.join(where)}): {_md(a.message)}")
        st = told.get(a.n)
        if st is not None:
            lines += [f"   - step: {_md(step)}" for step in st.steps] if st.cycle else []
            lines += [f"   - {_md(txn_line(t))}" for t in st.txns]
            lines.append(f"   - isolation: {_md(st.isolation.sentence(st.kind))}")
    if len(anomalies) > MARKDOWN_EVIDENCE:
        lines.append(f"\n... and {len(anomalies) - MARKDOWN_EVIDENCE} more anomalies (report.html)")
    lines += minimal_reproduction_markdown(run)
    lines += minimal_history_markdown(run)
    lines += ["", "## Faults", ""]
    for w in run.faults:
        state = "not applied" if w.failed else f"{run.fmt_t(w.start)} to {run.fmt_t(w.end)}"
        lines.append(f"- #{w.id + 1} {w.family}: {_md(w.description)} ({state})")
    if not run.faults:
        lines.append("- none")
    lines += ["", "## Hypotheses", ""]
    for n, h in enumerate(r.hypotheses, start=1):
        lines.append(f"{n}. **{_md(h.title)}** (supported by {h.support} of {len(anomalies)})")
        lines += [f"   - {_md(e)}" for e in h.evidence]
        if h.suggests:
            lines.append(f"   - suggests: {_md(h.suggests)}")
    if not r.hypotheses:
        lines.append("The data supports no specific hypothesis.")
    lines += ["", "## Detection", ""] + [f"- {_md(d)}" for d in r.detection]
    lines += ["", "## Invariant violated", ""] + [f"- {_md(i)}" for i in r.invariants]
    if r.reproduction:
        lines += ["", "## Reproduction", "", "```", r.reproduction, "```"]
    return "\n".join(lines) + "\n"


def minimal_core(run: RunData) -> dict[str, Any] | None:
    """The linearizability (or sequential-consistency) check's minimal core
    (checkers.minimize), when the run has one."""
    checks = (run.results or {}).get("checks") or {}
    minimal = next(
        (
            (checks.get(name) or {}).get("details", {}).get("minimal")
            for name in ("linearizable", "sequential")
            if (checks.get(name) or {}).get("details", {}).get("minimal")
        ),
        None,
    )
    return minimal if isinstance(minimal, dict) and minimal.get("ops") else None


def minimal_rows(run: RunData) -> list[dict[str, Any]]:
    """The minimal core's ops as the page and the Markdown show them: op id, history position,
    process, the node that served it, its text, and its interval as times."""
    m = minimal_core(run)
    rows = []
    for i in m["op_ids"] if m else ():
        if i < len(run.operations):
            o = run.operations[i]
            s, e = _interval(o, run.end_time)
            rows.append(
                {"id": o.id, "call": o.call, "process": o.process, "node": node_label(o),
                 "text": op_text(_d(o)), "start": run.fmt_t(s), "end": run.fmt_t(e),
                 "type": o.type}
            )  # fmt: skip
    return rows


def minimal_how(m: dict[str, Any]) -> str:
    """Why the core is minimal, in words (or why it is not known to be)."""
    if m.get("one_minimal"):
        what = m.get("consistency") or "linearizable"
        return f"removing any one of them (a read goes with the write it returned) makes it {what}"
    return str(m.get("note") or "not shown to be minimal")


def minimal_reproduction(run: RunData) -> dict[str, Any] | None:
    """What `dsjepsen shrink` found for this run (RUN_DIR/shrink.json): the smallest command
    that failed the same way and in how many of its tries; None when shrink has not run or
    found nothing smaller."""
    path = run.run_dir / "shrink.json" if run.run_dir is not None else None
    try:
        state = json.loads(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not state.get("current") or not state.get("rate"):
        return None
    failed, tries = state["rate"]
    if not tries:
        return None
    return {
        "command": shlex.join(["dsjepsen", "test", *map(str, state["current"])]),
        "failed": failed,
        "tries": tries,
        "minimal": bool(state.get("done")),
        "steps": len(state.get("steps") or []),
    }


def minimal_reproduction_markdown(run: RunData) -> list[str]:
    m = minimal_reproduction(run)
    if m is None:
        return []
    what = "minimal" if m["minimal"] else "smallest found so far (the search ran out of budget)"
    return [
        "",
        "## Minimal reproduction",
        "",
        f"`dsjepsen shrink` ({m['steps']} candidates tried) found this {what} configuration; it "
        f"failed the same way in {m['failed']} of {m['tries']} tries:",
        "",
        "```",
        m["command"],
        "```",
    ]


def minimal_history_markdown(run: RunData) -> list[str]:
    """The "Minimal history" section: the fewest ops of the first failing key that are still
    not linearizable, each with its node and time (empty without a core)."""
    m = minimal_core(run)
    if m is None:
        return []
    lines = [
        "",
        "## Minimal history",
        "",
        f"{len(m['ops'])} of the {m['of']} ops "
        + (f"of key {short(m['key'])}" if m["key"] is not None else "of the keys involved")
        + " are still not "
        f"{m.get('consistency') or 'linearizable'}; {minimal_how(m)}:",
        "",
    ]
    for r in minimal_rows(run):
        lines.append(
            f"- op {r['id']} `{r['text']}` ({r['type']}), process {r['process']}, node "
            f"{r['node'] or '?'}, {r['start']} to {r['end']}"
        )
    return lines


def _md(text: object) -> str:
    """Text for a Markdown line or table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
