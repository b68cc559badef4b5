"""The ops a CRDT anomaly is about, found again in the history.

The set, counter and convergence checkers describe an anomaly by what they saw (an element, its
add's times, when and through which node a read returned it or missed it), not by op ids. The
report finds those ops in the history by the times the checker recorded: they are the history's
own nanoseconds (an invocation's or a completion's), so a match is exact, and it works for any
results.json, old ones included. Every CRDT anomaly then links to its ops, is placed in time by
the op it is about (its anchor), counts the ops it involves, and can be drawn (`crdt.diagram`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dsjepsen.history import Operation
from dsjepsen.reports.rundata import NS, RunData
from dsjepsen.reports.timeline import node_label, short

#: the anomaly types of the set, counter and convergence checkers
TYPES = frozenset(
    {
        "lost",
        "phantom",
        "duplicate",
        "stale",
        "replica-lost-element",
        "replica-counter-decreased",
        "not-converged",
        "out-of-bounds",
        "final-read",
    }
)


@dataclass(frozen=True)
class Cited:
    """One op an anomaly cites, with what it is to the anomaly (`role`) and what it did
    (`text`); `op` is None for a fact that no op shows ("no read ever returned it")."""

    op: int | None
    role: str
    text: str = ""
    n: int = 0  # its number in the anomaly's diagram (1, 2, ...; 0 for a fact)


@dataclass
class Citation:
    """What `cite` found: the op the anomaly is about and every op it cites, in the order a
    person reads them (the cause first, the reads that show it after)."""

    anchor: int | None
    cited: list[Cited]
    element: Any = None  # the element a set anomaly is about (None for counters)

    @property
    def op_ids(self) -> set[int]:
        return {c.op for c in self.cited if c.op is not None}


def _key(k: Any) -> str:
    return short(k, 24)


def _is_read(o: Operation) -> bool:
    return "read" in o.f and o.f != "add"


class OpIndex:
    """The history's client ops by invocation time, completion time, added element and key:
    built once per report, only when there are CRDT anomalies."""

    def __init__(self, run: RunData) -> None:
        self.run = run
        self.by_call: dict[int, list[int]] = {}
        self.by_ret: dict[int, list[int]] = {}
        self.adds: dict[tuple[str, Any], list[int]] = {}
        self.reads: dict[str, list[int]] = {}  # ok reads of each key, in history order
        idx = (run.results or {}).get("final_reads_from_index")
        self.final_from = idx if isinstance(idx, int) else None
        for o in run.operations:
            self.by_call.setdefault(o.invoke.time, []).append(o.id)
            if o.complete is not None:
                self.by_ret.setdefault(o.complete.time, []).append(o.id)
            if o.f == "add":
                try:
                    self.adds.setdefault((_key(o.key), o.value), []).append(o.id)
                except TypeError:  # an unhashable element: found by scanning instead
                    pass
            elif _is_read(o) and o.type == "ok":
                self.reads.setdefault(_key(o.key), []).append(o.id)

    def op(self, i: int) -> Operation:
        return self.run.operations[i]

    def node(self, i: int) -> str:
        """The node an op went through, as the checkers record it (invocation first)."""
        o = self.op(i)
        n = o.invoke.node or (o.complete.node if o.complete is not None else None)
        return str(n) if n else ""

    def _pick(self, ids: Iterable[int], key: Any, node: Any) -> int | None:
        found = [i for i in ids if _key(self.op(i).key) == _key(key)]
        if node is not None:
            found = [i for i in found if self.node(i) == str(node)] or found
        return found[0] if found else None

    def invoked_at(self, t: Any, key: Any, node: Any = None) -> int | None:
        return self._pick(self.by_call.get(t, ()), key, node) if isinstance(t, int) else None

    def completed_at(self, t: Any, key: Any, node: Any = None) -> int | None:
        return self._pick(self.by_ret.get(t, ()), key, node) if isinstance(t, int) else None

    def add_of(self, key: Any, element: Any, call_time: Any = None) -> int | None:
        """The add of `element` to `key` (the one invoked at call_time when several were)."""
        try:
            ids = self.adds.get((_key(key), element), [])
        except TypeError:
            ids = [
                o.id
                for o in self.run.operations
                if o.f == "add" and _key(o.key) == _key(key) and o.value == element
            ]
        exact = [i for i in ids if self.op(i).invoke.time == call_time]
        return (exact or ids or [None])[0]

    def is_final(self, i: int) -> bool:
        return self.final_from is not None and self.op(i).invoke.index >= self.final_from

    def last_finals(self, key: Any) -> dict[str, int]:
        """Each node's last final read of `key` (the value the convergence checker judges)."""
        out: dict[str, int] = {}
        for i in self.reads.get(_key(key), []):
            if self.is_final(i):
                out[self.node(i)] = i  # history order: the last one per node stands
        return dict(sorted(out.items()))

    def first_read(self, key: Any, node: Any, test: Callable[[Operation], bool]) -> int | None:
        """The first ok read of `key` (through `node`, when given) that passes `test`."""
        for i in self.reads.get(_key(key), []):
            if (node is None or self.node(i) == str(node)) and test(self.op(i)):
                return i
        return None


def when(run: RunData, t: int) -> str:
    """A history time, short: t+1.234s (or the position, for a history without clocks)."""
    return f"position {t}" if run.logical_time else f"t+{t / NS:.3f}s"


def _contains(output: Any, element: Any) -> bool:
    return isinstance(output, list) and element in output


def describe(index: OpIndex, i: int, element: Any = None) -> str:
    """An op in words: what it did, through which node, when, and (for a set read, given the
    element) whether it returned the element."""
    run, o = index.run, index.op(i)
    node = node_label(o)
    through = f" through {node}" if node else ""
    done = (
        f", {o.type} at {when(run, o.complete.time)}"
        if o.complete is not None
        else ", never completed"
    )
    if o.f == "add":
        return f"add {short(o.value)}{through}, invoked {when(run, o.invoke.time)}{done}"
    what = f"{o.f}{through}, invoked {when(run, o.invoke.time)}{done}"
    out = o.output
    if isinstance(out, list):
        has = ""
        if element is not None:
            has = f", with {short(element)}" if element in out else f", without {short(element)}"
        return f"{what}: {len(out)} element{'' if len(out) == 1 else 's'}{has}"
    if o.type == "ok" and out is not None:
        return f"{what}: returned {short(out)}"
    return what


def cite(index: OpIndex, kind: str, raw: dict[str, Any]) -> Citation:
    """The ops anomaly `raw` (of type `kind`) cites, found by the times and nodes it records."""
    key, node = raw.get("key"), raw.get("node")
    element = raw.get("element")
    cited: list[tuple[int | None, str]] = []
    anchor: int | None = None
    if kind == "lost":
        add = raw.get("add") if isinstance(raw.get("add"), dict) else {}
        anchor = index.add_of(key, element, add.get("call_time"))
        cited.append((anchor, "the add"))
        seen = raw.get("seen_on") if isinstance(raw.get("seen_on"), dict) else {}
        for n, s in sorted(seen.items()):
            if not isinstance(s, dict):
                continue
            first = index.completed_at(s.get("first"), key, n)
            last = index.completed_at(s.get("last"), key, n)
            cited.append((first, f"first returned through {n}"))
            if last != first:
                cited.append((last, f"last returned through {n}"))
        if not seen:
            cited.append((None, "no read ever returned it"))
        for n, i in index.last_finals(key).items():
            cited.append((i, f"last final read through {n}"))
    elif kind in ("phantom", "duplicate"):
        if kind == "phantom":
            anchor = index.first_read(key, node, lambda o: _contains(o.output, element))
        else:
            anchor = index.first_read(
                key, node, lambda o: isinstance(o.output, list) and o.output.count(element) > 1
            )
        cited.append(
            (anchor, f"the read that returned it{' twice' if kind == 'duplicate' else ''}")
        )
        if kind == "phantom" and isinstance(raw.get("add"), dict):
            add = index.add_of(key, element, raw["add"].get("call_time"))
            if add is not None:
                cited.insert(0, (add, "its add, which failed"))
    elif kind == "replica-lost-element":
        first = index.completed_at(raw.get("seen_at"), key, node)
        anchor = index.invoked_at(raw.get("missing_at"), key, node)
        cited += [
            (index.add_of(key, element), "its add"),
            (first, f"first returned through {node}"),
            (anchor, f"a later read through {node} without it"),
        ]
    elif kind == "replica-counter-decreased":
        after = raw.get("previous_at")
        before = index.completed_at(after, key, node)
        anchor = index.first_read(
            key,
            node,
            lambda o: o.output == raw.get("value") and o.invoke.time > (after or 0),
        )
        cited += [(before, f"the higher read through {node}"), (anchor, "the lower read after it")]
    elif kind == "out-of-bounds":
        anchor = index.invoked_at(raw.get("call_time"), key, node)
        cited.append((anchor, "the read out of bounds"))
    elif kind == "final-read":
        anchor = index.completed_at(raw.get("ret_time"), key, node)
        cited.append((anchor, "the final read"))
    elif kind == "not-converged":
        finals = index.last_finals(key)
        for n, i in finals.items():
            cited.append((i, f"last final read through {n}"))
        anchor = finals.get(str(node)) if node is not None else None
        if anchor is None and finals:
            anchor = next(iter(finals.values()))
    element = element if kind in ("lost", "phantom", "duplicate", "replica-lost-element") else None
    # one entry per op (an op cited twice, e.g. a node's last read that was also its last
    # final read, gets both roles), numbered in reading order as the diagram numbers them
    roles: dict[int | None, list[str]] = {}
    for i, role in cited:
        if i is not None or role.startswith("no "):
            roles.setdefault(i if i is not None else None, []).append(role)
    out: list[Cited] = []
    for i, rs in roles.items():
        if i is None:
            out += [Cited(None, r) for r in rs]
        else:
            n = sum(1 for c in out if c.op is not None) + 1
            out.append(Cited(i, "; ".join(rs), describe(index, i, element), n))
    return Citation(anchor, out, element)
