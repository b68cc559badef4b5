"""The fault vocabulary: what a fault record in a history says, when a fault was in effect,
whom a partition cut off from whom, and how a report shows a family of faults.

Every part of dsjepsen that reads nemesis ops reads them through here: the vacuous-run check
(did the fault happen), the campaign (which fault was in effect when the first anomaly's op
was invoked), the report (bands on the plots, the fault table, the root-cause analysis), the
nemesis worker (which fault is active now). One reading, one rule for windows:

* A fault op is `start-<family>` or `stop-<family>` (Jepsen's bare `start` / `stop` too, as in
  imported histories), with a value naming the fault (`{"fault": "partition-majority"}`) once
  dsjepsen wrote it. Anything else a nemesis did is a point event.
* A window opens at its start op and closes at the next stop of the same fault (by name when
  the stop names one, else the oldest open window of the same family). It keeps every moment
  that matters: the start's invocation and completion, the stop's invocation and completion.
  `span()` is the widest interval, in which the fault may have acted (what a report draws and
  an RCA searches); `in_effect(index)` is the narrowest, from the start's `ok` completion to
  the stop's invocation (what a campaign blames). Both are the same window.

A fault package says how a report shows and explains its faults with a `FaultLook` (Jepsen's
nemesis packages carry `:perf` for their plot): a label, a colour, and the words of the
root-cause analysis. A run records its packages' looks in test.json, so a report needs
nothing installed to draw them; a family without a look gets `DEFAULT_LOOK`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dsjepsen.history import NEMESIS, Op, pair_operations

START, STOP = "start", "stop"


# ---------------------------------------------------------------------------------------------
# One fault op


@dataclass(frozen=True)
class FaultOp:
    """What one nemesis op is: the start or stop of a fault (`phase`), of which `family` (its
    f without `start-` / `stop-`), naming which `fault`; phase None for anything else."""

    phase: str | None
    family: str
    fault: str


def read_op(f: str, value: Any) -> FaultOp:
    """The fault op an f and a value describe (see the module docstring)."""
    phase: str | None = None
    family = f
    for prefix in (START, STOP):
        if f == prefix or f.startswith(prefix + "-"):
            phase, family = prefix, f[len(prefix) + 1 :]
            break
    named = value.get("fault") if isinstance(value, dict) else None
    fault = named if isinstance(named, str) and named else family
    return FaultOp(phase, family, fault)


def fault_of(op: Op) -> str:
    """The fault a nemesis op is about: its value's `fault`, else its f without `start-`."""
    return read_op(op.f, op.value).fault


def is_start(op: Op) -> bool:
    return read_op(op.f, op.value).phase == START


def describe_value(f: str, value: Any) -> str:
    """A fault record's own sentence (`description`), else its f and value."""
    if isinstance(value, dict) and isinstance(value.get("description"), str):
        return value["description"]
    if value is None:
        return f
    return f"{f} {json.dumps(value, default=str)[:200]}"


# ---------------------------------------------------------------------------------------------
# Windows


@dataclass
class FaultWindow:
    """One fault from its start to its stop (see the module docstring for the two spans)."""

    id: int
    fault: str  # "partition-majority" (the family for a record that names no fault)
    family: str  # "partition", "kill", "pause", ... (f without start-/stop-)
    start: int  # ns since test start: the start's invocation
    end: int  # ns: the stop's completion (or invocation), else the end of the history
    start_index: int  # the start's invocation
    end_index: int | None  # the stop's completion (or invocation); None: never stopped
    description: str
    nodes: list[str]
    value: Any  # the start completion's value (grudge, signal, offsets ...)
    stop_description: str | None = None
    failed: bool = False  # the start op ended `fail`: the fault was not applied
    #: the start's completion when it was `ok` (the fault took effect from there)
    effective_index: int | None = None
    #: the stop's invocation (the fault is undone from there)
    stop_index: int | None = None

    @property
    def healed(self) -> bool:
        return self.end_index is not None

    def span(self) -> tuple[int, int]:
        """(start, end) in ns: the widest interval in which the fault may have acted."""
        return self.start, self.end

    def in_effect(self, index: int) -> bool:
        """Whether the fault was surely in effect at history position `index`: after its
        start completed ok and before its stop was invoked."""
        if self.effective_index is None or index <= self.effective_index:
            return False
        return self.stop_index is None or index < self.stop_index


@dataclass
class NemesisEvent:
    """A nemesis op that is not a start/stop pair (e.g. a one-shot kill): a point in time."""

    t: int
    index: int
    f: str
    description: str


def windows(ops: Sequence[Op]) -> tuple[list[FaultWindow], list[NemesisEvent]]:
    """The fault windows of a history and its other nemesis ops as point events.

    Nemesis completions without invocations (Jepsen's logs) are events. Raises DsjError when
    the nemesis ops break Jepsen's pairing rules (the caller decides what to show then)."""
    nem = pair_operations([op for op in ops if op.process == NEMESIS], include_nemesis=True)
    invoked = {o.complete.index for o in nem if o.complete is not None}
    out: list[FaultWindow] = []
    events: list[NemesisEvent] = []
    open_windows: list[FaultWindow] = []
    end_t = ops[-1].time if ops else 0
    for o in nem:
        comp = o.complete
        value = comp.value if comp is not None else o.value
        fop = read_op(o.f, value if isinstance(value, dict) else o.value)
        desc = describe_value(o.f, value)
        if fop.phase == START:
            nodes = value.get("nodes", []) if isinstance(value, dict) else []
            w = FaultWindow(
                id=len(out),
                fault=fop.fault,
                family=fop.family,
                start=o.invoke.time,
                end=end_t,
                start_index=o.invoke.index,
                end_index=None,
                description=desc,
                nodes=[str(n) for n in nodes] if isinstance(nodes, list) else [],
                value=value,
                failed=comp is not None and comp.type == "fail",
                effective_index=comp.index if comp is not None and comp.type == "ok" else None,
            )
            out.append(w)
            open_windows.append(w)
        elif fop.phase == STOP and (w := _stopped_by(open_windows, fop)) is not None:
            open_windows.remove(w)
            end_op = comp if comp is not None else o.invoke
            w.end = end_op.time
            w.end_index = end_op.index
            w.stop_index = o.invoke.index
            w.stop_description = desc
        else:
            events.append(NemesisEvent(o.invoke.time, o.invoke.index, o.f, desc))
    for op in ops:
        if op.process == NEMESIS and op.type != "invoke" and op.index not in invoked:
            events.append(NemesisEvent(op.time, op.index, op.f, describe_value(op.f, op.value)))
    return out, events


def _stopped_by(open_windows: list[FaultWindow], stop: FaultOp) -> FaultWindow | None:
    """The open window a stop closes: the one of its fault, else the oldest of its family."""
    for w in open_windows:
        if w.fault == stop.fault and w.family == stop.family:
            return w
    return next((w for w in open_windows if w.family == stop.family), None)


def active_at(faults: Iterable[FaultWindow], index: int | None) -> list[str]:
    """The faults surely in effect at a history position (sorted names; empty for none)."""
    if index is None:
        return []
    return sorted({w.fault for w in faults if w.in_effect(index)})


# ---------------------------------------------------------------------------------------------
# Partitions: whom a grudge cut off from whom


def components(grudge: Mapping[str, Iterable[str]], nodes: Sequence[str]) -> list[list[str]]:
    """Groups of nodes that hear from exactly the same nodes, in node order: the sides of a
    partition (a bridge node that hears everyone is a group of its own)."""
    order = list(dict.fromkeys([*nodes, *(str(n) for n in grudge)]))
    heard = {n: frozenset(order) - {str(x) for x in grudge.get(n, ())} for n in order}
    groups: dict[frozenset[str], list[str]] = {}
    for n in order:
        groups.setdefault(heard[n], []).append(n)
    return list(groups.values())


def sides(value: Any, nodes: Sequence[str] = ()) -> list[list[str]] | None:
    """The sides of a partition from its record: the sides it lists (`components`, `sides`,
    `halves`, `partitions`), else those of its `grudge`; None when the record is no partition.
    Read from the record alone, so any package that records a grudge is a partition here."""
    if not isinstance(value, dict):
        return None
    for k in ("components", "sides", "halves", "partitions"):
        v = value.get(k)
        if isinstance(v, list) and v and all(isinstance(s, list) for s in v):
            return [[str(n) for n in s] for s in v]
    grudge = value.get("grudge")
    if not isinstance(grudge, dict):
        return None
    cut = {str(k): [str(n) for n in v] for k, v in grudge.items() if isinstance(v, list)}
    every = list(dict.fromkeys([*nodes, *cut, *(n for v in cut.values() for n in v)]))
    return [sorted(c) for c in components(cut, every)]


# ---------------------------------------------------------------------------------------------
# How a report shows and explains a family


@dataclass(frozen=True)
class FaultLook:
    """How a report shows and explains one family of faults (a fault package declares it).

    `label` names the family on plots and in tables; `colour` (CSS `#rrggbb`) fills its band.
    The root-cause analysis asks, for an anomaly's op answered by a node while a fault of
    this family was active: is it a partition (`partition`: the record has sides or a grudge,
    and the analysis says which side the node was on), or did the fault act on that node (it
    is in the record's `nodes`)? Then the hypothesis is `title` (with `{node}`), its evidence
    `on_node` (with `{fault}`, the fault's description, and `{detail}`, the record's
    `detail_field` entry for the node, e.g. its clock offset), and what it `suggests`.
    """

    label: str
    colour: str = "#c9372c"
    partition: bool = False
    title: str | None = None
    on_node: str | None = None
    detail_field: str | None = None
    suggests: str | None = None
    #: ranks hypotheses of equal support (lower first)
    rank: int = 50

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultLook:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def detail(self, value: Any, node: str) -> str:
        """The record's detail for `node` (`detail_field`), or "" when it has none."""
        if not self.detail_field or not isinstance(value, dict):
            return ""
        got = value.get(self.detail_field)
        if isinstance(got, dict):
            got = got.get(node)
        return "" if got is None else str(got)


#: the look of a family no package described (an imported history's `start` / `stop`)
DEFAULT_LOOK = FaultLook(label="fault")


@dataclass
class FaultLooks:
    """The looks a report knows, by family, with the default for the others."""

    by_family: dict[str, FaultLook] = field(default_factory=dict)

    def __call__(self, family: str) -> FaultLook:
        look = self.by_family.get(family)
        return look if look is not None else FaultLook(label=family or DEFAULT_LOOK.label)

    @classmethod
    def from_records(cls, *records: Mapping[str, Any] | None) -> FaultLooks:
        """Looks from test.json-style records ({family: look dict}); earlier records win."""
        by_family: dict[str, FaultLook] = {}
        for record in records:
            for family, data in (record or {}).items():
                if family not in by_family and isinstance(data, Mapping):
                    by_family[str(family)] = FaultLook.from_dict(data)
        return cls(by_family)
