"""The replicated data types, state-based (CvRDTs, Shapiro et al. 2011): G-Set, G-Counter and
PN-Counter, each with a merge that is commutative, associative and idempotent.

Those three properties are what make the store correct without coordination: replicas may
receive each other's states in any order, any number of times, and still end equal once every
state has reached every replica (strong eventual consistency). They also make recovery simple:
replaying a journal over a snapshot that already holds some of it changes nothing.

The buggy merges (`lww-set`, `sum-merge`) live here too, beside the correct ones, so that the
one-line difference is easy to see.
"""

from __future__ import annotations

import json
import time
from typing import Any

#: a last-writer-wins stamp: (wall-clock ns, replica id), compared as a tuple
Stamp = tuple[int, str]


def canonical(element: Any) -> str:
    """The identity of an element: its JSON text with sorted keys, so that equal JSON values
    (whatever their Python type or key order) are one element."""
    return json.dumps(element, sort_keys=True, separators=(",", ":"))


def _sort_key(element: Any) -> tuple[int, Any]:
    if isinstance(element, bool) or element is None:
        return (2, canonical(element))
    if isinstance(element, int | float):
        return (0, element)
    if isinstance(element, str):
        return (1, element)
    return (2, canonical(element))


class GSet:
    """A grow-only set: merge is union.

    `stamp` is used only by the `lww-set` bug, where the whole set is one last-writer-wins
    register: a local add stamps the set, and a merge keeps whichever side has the larger
    stamp, throwing the other side's concurrent adds away.
    """

    __slots__ = ("elements", "stamp")

    def __init__(self) -> None:
        self.elements: dict[str, Any] = {}  # canonical text -> element
        self.stamp: Stamp = (0, "")

    def add(self, element: Any) -> bool:
        """Add one element; True when it was new."""
        c = canonical(element)
        if c in self.elements:
            return False
        self.elements[c] = element
        return True

    def merge(self, elements: list[Any]) -> bool:
        """Union with another replica's elements; True when ours grew."""
        grew = False
        for e in elements:
            grew = self.add(e) or grew
        return grew

    # -- the lww-set bug ----------------------------------------------------------------------

    def lww_add(self, element: Any, replica: str, now_ns: int | None = None) -> Stamp:
        """Add, then stamp the whole set as written now by `replica` (later than any stamp it
        has seen, so a local add always wins locally). Returns the new stamp."""
        self.add(element)
        now = time.time_ns() if now_ns is None else now_ns
        self.stamp = (max(now, self.stamp[0] + 1), replica)
        return self.stamp

    def lww_merge(self, elements: list[Any], stamp: Stamp) -> bool:
        """The bug: the side with the larger stamp wins outright; True when ours changed."""
        if stamp <= self.stamp:
            return False
        theirs = GSet()
        theirs.merge(elements)
        changed = theirs.elements.keys() != self.elements.keys()
        self.elements, self.stamp = theirs.elements, stamp
        return changed

    # -- views --------------------------------------------------------------------------------

    def read(self) -> list[Any]:
        """The elements, sorted (numbers first, numerically) so answers are easy to read."""
        return sorted(self.elements.values(), key=_sort_key)

    def to_wire(self) -> dict[str, Any]:
        return {"elements": list(self.elements.values()), "stamp": list(self.stamp)}


class GCounter:
    """A grow-only counter: one non-negative count per replica, each only ever raised by its
    own replica; merge takes the max per replica, the value is the sum."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def value(self) -> int:
        return sum(self.counts.values())

    def raise_to(self, replica: str, count: int) -> bool:
        """Merge one entry (max); True when ours grew."""
        if count > self.counts.get(replica, 0):
            self.counts[replica] = count
            return True
        return False

    def merge(
        self, counts: dict[str, int], add_for: str | None = None, own: str | None = None
    ) -> bool:
        """Max per replica; True when ours changed.

        `add_for` and `own` are the `sum-merge` bug: the entry of replica `add_for` (the
        sender's own) is added to ours instead of maxed, as if the state were an increment,
        and the entry of replica `own` (ours, which we think we know best) is not merged at
        all. Gossip repeats, so the same increments are counted again and again, growing with
        every exchange (skipping our own entry keeps that growth linear instead of letting
        the inflated counts feed back into themselves).
        """
        changed = False
        for replica, count in counts.items():
            if replica == own:
                continue
            if replica == add_for:
                if count:
                    self.counts[replica] = self.counts.get(replica, 0) + count
                    changed = True
            else:
                changed = self.raise_to(replica, count) or changed
        return changed


class PNCounter:
    """A counter that also decreases: two G-Counters, P for increments and N for the
    magnitudes of decrements; value = P - N."""

    __slots__ = ("n", "p")

    def __init__(self) -> None:
        self.p = GCounter()
        self.n = GCounter()

    def value(self) -> int:
        return self.p.value() - self.n.value()

    def half(self, delta: int) -> tuple[str, GCounter]:
        """Which half a delta goes to: ("p", P) for positive, ("n", N) for negative."""
        return ("p", self.p) if delta >= 0 else ("n", self.n)

    def merge(
        self, wire: dict[str, Any], add_for: str | None = None, own: str | None = None
    ) -> bool:
        grew_p = self.p.merge(wire.get("p") or {}, add_for, own)
        grew_n = self.n.merge(wire.get("n") or {}, add_for, own)
        return grew_p or grew_n

    def to_wire(self) -> dict[str, Any]:
        return {"p": dict(self.p.counts), "n": dict(self.n.counts)}
