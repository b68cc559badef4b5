"""A transactional anomaly told as a story an on-call engineer can paste into an RCA.

The transactional checkers (list-append, rw-register) explain each cycle as steps between
transactions T1, T2, ... ("T2's read of key 101 saw T1's append of 1, so T1 < T2 (wr)"). The
checker knows nothing of nodes, clocks or faults; this module joins its words to what the run
recorded: for each transaction of the cycle (or, for an anomaly that is no cycle, the
transaction it names and the writer it read from), the op, the process, the node that served it,
when it was invoked and completed (relative to the test's start, as the rest of the report),
the fault in effect meanwhile and, for a partition, the side its node was on; and for the
anomaly, which isolation levels it rules out (`consistency.boundary`, Elle's `:not` /
`:also-not` for this one anomaly) against the models the run was checked for and the strongest
models the whole history still leaves standing (the checker's `strongest_possible`).

Everything here is read from the checker's result and the history; nothing is guessed. A
transaction the history does not place (an orphan completion of an imported history) gets no
times; a fault record without sides gets no side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.checkers import consistency as cm
from dsjepsen.faults import FaultWindow, sides
from dsjepsen.reports.anomaly import Anomaly, mops_text
from dsjepsen.reports.crdt import Tally
from dsjepsen.reports.rundata import RunData
from dsjepsen.reports.timeline import node_label, short

#: what each anomaly kind means, in a sentence (docs/transactions.md's table)
MEANING = {
    "G0": "a cycle of write-write dependencies: two transactions' writes interleaved",
    "G1a": "aborted read: a read saw what only a failed transaction wrote",
    "G1b": "intermediate read: a read saw a state its writer went on to overwrite",
    "G1c": "circular information flow: a cycle of write-write and write-read dependencies",
    "G-single": "read skew: a cycle with exactly one anti-dependency, a read that missed a "
    "write it should have seen",
    "G-nonadjacent": "a cycle with two or more anti-dependencies, never two in a row",
    "G2": "write skew and its kin: a cycle with two anti-dependencies in a row",
    "internal": "a read disagrees with its own transaction's earlier writes or reads",
    "future-read": "a read saw a value its own transaction appends only later",
    "dirty-update": "a committed append directly on top of a failed one",
    "duplicate-elements": "a read holds the same appended value twice",
    "incompatible-order": "two reads of a key that no one order of its appends explains",
    "lost-update": "two committed transactions read the same state of a key and both wrote it",
    "cyclic-versions": "the version orders inferred for a key contradict each other",
}
#: the suffixes Elle adds to a cycle kind, and what they mean
SUFFIXES = {
    "-item": "",
    "-process": ", closed only with process order",
    "-realtime": ", closed only with real-time order",
}


def meaning(kind: str) -> str:
    """`G-single-item-realtime` -> read skew ..., closed only with real-time order."""
    base, tail = kind, []
    changed = True
    while changed:
        changed = False
        for suffix, words in SUFFIXES.items():
            if base.endswith(suffix) and base != suffix:
                base, tail = base[: -len(suffix)], [words, *tail]
                changed = True
    if base.endswith("-cycle-exists"):
        return "a cycle the model forbids exists (found cheaply, without naming it)"
    text = MEANING.get(base)
    return text + "".join(tail) if text else kind


@dataclass
class StoryTxn:
    """One transaction of a cycle, placed in the run."""

    name: str  # T1, T2, ... (the checker's names)
    op_id: int | None  # the page's `op N`
    index: Any  # its completion's history index
    process: Any
    node: str  # the node that served it ("n3 via n1", as the page writes it); "" unknown
    served: str  # the node that served it, alone (the one a partition side is matched on)
    type: str  # ok, info, fail
    mops: Any
    mops_text: str  # the micro-ops as Elle writes them: [append 100 2] [r 101 [1]]
    invoked: str | None  # relative time, as the page writes it
    completed: str | None  # None: it never completed (info) or the history has no clock
    #: each fault in effect while it ran, with its node's side when the record has sides
    faults: list[str] = field(default_factory=list)
    #: per partition overlapping it: (description, the side its node was on, minority?,
    #: surely in effect from its invocation to its completion?)
    sides: list[tuple[str, list[str], bool, bool]] = field(default_factory=list)


@dataclass
class Isolation:
    """Which isolation levels one anomaly rules out, against what was checked."""

    checked: list[str]  # the models the run was checked for
    violated: list[str]  # those of them this anomaly's kind is forbidden by
    weakest_ruled_out: list[str]  # the weakest models this anomaly rules out (Elle's :not)
    also_ruled_out: list[str]  # every stronger one it rules out (:also-not)
    standing: list[str]  # the strongest models the whole history leaves standing
    #: the checker said what stands (an older result may not have): an empty `standing` then
    #: means every model of Elle's lattice is ruled out
    standing_known: bool = False

    def sentence(self, kind: str) -> str:
        parts = []
        if self.violated:
            parts.append(
                f"{kind} violates {', '.join(self.violated)} (checked for "
                f"{', '.join(self.checked)})"
            )
        elif self.checked:
            parts.append(f"{kind} is allowed by {', '.join(self.checked)} (the models checked)")
        if self.weakest_ruled_out:
            parts.append(
                f"it rules out {', '.join(self.weakest_ruled_out)} and every stronger model"
            )
        if self.standing:
            parts.append(
                "the strongest models nothing in the history rules out: " + ", ".join(self.standing)
            )
        elif self.standing_known:
            parts.append("the history rules out every model of Elle's (none is left standing)")
        return "; ".join(parts) + "." if parts else ""


@dataclass
class Story:
    """One transactional anomaly: its steps in words (a cycle's; otherwise the checker's
    sentence), its transactions placed in the run, the isolation levels it rules out."""

    n: int
    kind: str
    meaning: str
    steps: list[str]
    txns: list[StoryTxn]
    keys: list[str]
    isolation: Isolation
    cycle: bool = True  # a dependency cycle (else an aborted / intermediate read, ...)


def is_cycle(a: Anomaly) -> bool:
    return isinstance(a.raw.get("cycle"), list) and isinstance(a.raw.get("steps"), list)


def anomaly_keys(a: Anomaly) -> list[str]:
    """The keys an anomaly is about, as the page writes them: its `key`, else the keys its
    cycle's steps name (a transactional anomaly spans several keys)."""
    if a.key is not None:
        return [short(a.key)]
    keys: list[str] = []
    for s in a.raw.get("steps") or []:
        if isinstance(s, Mapping) and "key" in s and short(s["key"]) not in keys:
            keys.append(short(s["key"]))
    if not keys and isinstance(a.raw.get("key"), str | int):
        keys.append(short(a.raw["key"]))
    return keys


def anomaly_nodes(a: Anomaly, told: Mapping[int, Story]) -> list[str]:
    """The nodes a cycle's transactions went through, in cycle order, each once ([] for an
    anomaly that is not a told cycle)."""
    st = told.get(a.n)
    return list(dict.fromkeys(t.served for t in st.txns if t.served)) if st else []


def _check_details(run: RunData, checker: str) -> Mapping[str, Any]:
    checks = (run.results or {}).get("checks")
    check = checks.get(checker) if isinstance(checks, Mapping) else None
    details = check.get("details") if isinstance(check, Mapping) else None
    return details if isinstance(details, Mapping) else {}


def isolation(run: RunData, a: Anomaly) -> Isolation:
    """What this anomaly's kind rules out (from the model lattice the checker uses) and what
    the checker's result says of the whole history (its models, `strongest_possible`)."""
    det = _check_details(run, a.checker)
    checked = [str(m) for m in det.get("consistency_models") or []]
    forbidden = det.get("forbidden") if isinstance(det.get("forbidden"), Mapping) else {}
    violated = [m for m in checked if a.type in (forbidden.get(m) or [])]
    is_not, also_not = cm.boundary([a.type])
    standing = [str(m) for m in det.get("strongest_possible") or []]
    known = isinstance(det.get("strongest_possible"), list)
    return Isolation(checked, violated, is_not, also_not, standing, known)


def _faults_during(run: RunData, s: int, e: int) -> list[FaultWindow]:
    return [w for w in run.faults if not w.failed and w.start <= e and w.end >= s]


def involved(a: Anomaly) -> list[tuple[str, Mapping[str, Any]]]:
    """The transactions a transactional anomaly names, as (name, the checker's description
    of it): a cycle's T1, T2, ...; else its `txn` ("the txn"), the `writer` of what it read
    ("its writer"), or the `txns` it lists (T1, T2, ...). [] for any other anomaly."""
    raw = a.raw
    if is_cycle(a):
        return [(str(t.get("name")), t) for t in raw["cycle"] if isinstance(t, Mapping)]
    out: list[tuple[str, Mapping[str, Any]]] = []
    for field_, name in (("txn", "the txn"), ("writer", "its writer")):
        t = raw.get(field_)
        if isinstance(t, Mapping) and "mops" in t:
            out.append((name, t))
    listed = [t for t in raw.get("txns") or [] if isinstance(t, Mapping) and "mops" in t]
    out += [(f"T{i + 1}", t) for i, t in enumerate(listed)]
    return out


def story(run: RunData, a: Anomaly) -> Story | None:
    """The story of one transactional anomaly; None when `a` names no transaction."""
    named = involved(a)
    if not named:
        return None
    nodes = run.nodes
    majority = len(nodes) // 2 + 1 if nodes else 0
    txns: list[StoryTxn] = []
    for name, t in named:
        op_id = t.get("op_id")
        o = (
            run.operations[op_id]
            if isinstance(op_id, int) and 0 <= op_id < len(run.operations)
            else None
        )
        row = StoryTxn(
            name=name,
            op_id=op_id if isinstance(op_id, int) else None,
            index=t.get("index"),
            process=t.get("process"),
            node=(node_label(o) if o is not None else "") or str(t.get("node") or ""),
            served=(o.node if o is not None else None) or str(t.get("node") or ""),
            type=str(t.get("type")),
            mops=t.get("mops"),
            mops_text=mops_text(t.get("mops")),
            invoked=None,
            completed=None,
        )
        # an orphan completion (no invocation in the history) has no start to place it by
        if o is not None and o.invoke is not o.complete:
            row.invoked = run.fmt_t(o.invoke.time)
            end = o.complete.time if o.complete is not None else run.end_time
            if o.complete is not None:
                row.completed = run.fmt_t(o.complete.time)
            for w in _faults_during(run, o.invoke.time, end):
                comps = sides(w.value, nodes)
                served = o.node or ""
                side = next((c for c in comps or [] if served in c), None)
                if comps is not None and side is not None:
                    minority = len(side) < majority
                    # the fault's narrow span (its start done, its stop not yet begun) held
                    # the whole transaction: only then did it surely run on that side
                    whole = (
                        o.complete is not None
                        and w.in_effect(o.invoke.index)
                        and w.in_effect(o.complete.index)
                    )
                    row.sides.append((w.description, side, minority, whole))
                    which = "minority" if minority else "majority"
                    span = "throughout" if whole else "for part of it at most"
                    row.faults.append(
                        f"{w.description} ({served} on the {which} side "
                        f"{{{', '.join(side)}}}, {span})"
                    )
                else:
                    row.faults.append(w.description)
        txns.append(row)
    cycle = is_cycle(a)
    if cycle:
        steps = [str(s.get("text")) for s in a.raw["steps"] if isinstance(s, Mapping)]
    else:
        steps = [a.message]
    return Story(
        a.n, a.type, meaning(a.type), steps, txns, anomaly_keys(a), isolation(run, a), cycle
    )


def stories(run: RunData, anomalies: list[Anomaly]) -> dict[int, Story]:
    """The story of every cycle anomaly, by its number on the page."""
    out = {}
    for a in anomalies:
        s = story(run, a)
        if s is not None:
            out[a.n] = s
    return out


def txn_line(t: StoryTxn) -> str:
    """One transaction in a sentence (the RCA's evidence): `T2 = op 212 (process 6, node n4,
    invoked t+1.500s, completed t+1.501s, during "cut n4, n5 off ..." (n4 on the minority
    side {n4, n5})): [r 101 [1]] [r 100 [1]]`."""
    where = [f"process {short(t.process)}"]
    if t.node:
        where.append(f"node {t.node}")
    if t.invoked:
        where.append(f"invoked {t.invoked}")
    where.append(f"completed {t.completed}" if t.completed else f"{t.type}, never completed")
    where.append("during " + "; ".join(t.faults) if t.faults else "no fault active")
    op = f"op {t.op_id}" if t.op_id is not None else f"index {t.index}"
    return f"{t.name} = {op} ({', '.join(where)}), {t.type}: {t.mops_text}"


def tallies(run: RunData) -> list[Tally]:
    """Per transactional checker: how many anomalies of the kinds its models forbid it found
    (`anomaly_counts`) against how many it lists (at most `max_cases_per_kind` of a kind),
    so that the page's counts agree with results.json."""
    out = []
    checks = (run.results or {}).get("checks")
    for name, check in checks.items() if isinstance(checks, Mapping) else ():
        if not isinstance(check, Mapping) or check.get("valid") is not False:
            continue
        det = check.get("details") if isinstance(check.get("details"), Mapping) else {}
        counts = det.get("anomaly_counts")
        kinds = det.get("anomaly_types")
        if not isinstance(counts, Mapping) or not isinstance(kinds, list):
            continue
        found = sum(int(counts.get(k) or 0) for k in kinds)
        listed = len(check.get("anomalies") or [])
        cap = det.get("max_cases_per_kind")
        how = f"the first {cap} of each kind ({listed})" if cap else f"{listed}"
        out.append(Tally(str(name), "transactional anomalies", max(found, listed), listed, how, ""))
    return out
