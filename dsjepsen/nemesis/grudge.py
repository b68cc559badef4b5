"""Grudges: who drops whose packets, computed the way Jepsen computes them.

A grudge maps each node to the nodes it drops traffic *from*. It is pure data, computed from
the node names and a seeded rng, so that the same seed cuts the same nodes and every shape can
be checked without a network. The partition nemesis turns it into iptables rules.

We make every grudge symmetric (if a drops b then b drops a). Jepsen's perfect majorities ring
is directed for even majorities (n = 3, 6, 7, ...), but over TCP a one-way cut is a full cut
(a connection needs both directions), so a directed ring would leave nodes seeing a minority
and the fault would not be what its name promises.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence

from dsjepsen.faults import components  # the sides of a grudge: one definition

Grudge = dict[str, list[str]]


def majority(n: int) -> int:
    """Smallest number of nodes that is more than half of n."""
    return n // 2 + 1


def complete_grudge(components: Iterable[Iterable[str]]) -> Grudge:
    """Every node drops every node outside its own component."""
    comps = [list(c) for c in components]
    everyone = [n for c in comps for n in c]
    grudge: Grudge = {}
    for comp in comps:
        inside = set(comp)
        for node in comp:
            grudge[node] = [n for n in everyone if n not in inside]
    return grudge


def bisect(nodes: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split into (smaller half, larger half), like Jepsen's `bisect`."""
    cut = len(nodes) // 2
    return list(nodes[:cut]), list(nodes[cut:])


def ordered(grudge: Mapping[str, Iterable[str]], nodes: Sequence[str]) -> Grudge:
    """The grudge with keys and values in cluster order, so records read the same every run."""
    order = list(nodes)
    return {n: sorted(set(grudge.get(n, ())), key=order.index) for n in order}


def _shuffled(nodes: Sequence[str], rng: random.Random) -> list[str]:
    out = list(nodes)
    rng.shuffle(out)
    return out


def _need(nodes: Sequence[str], at_least: int, shape: str) -> None:
    if len(nodes) < at_least:
        raise ValueError(f"{shape} needs at least {at_least} nodes, the cluster has {len(nodes)}")


def random_halves(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """A random minority cut off from the majority (Jepsen's partition-random-halves)."""
    _need(nodes, 2, "a majority/minority partition")
    minority, majority_side = bisect(_shuffled(nodes, rng))
    return ordered(complete_grudge([minority, majority_side]), nodes)


def isolate(nodes: Sequence[str], node: str) -> Grudge:
    """One node cut off from all others."""
    _need(nodes, 2, "isolating a node")
    if node not in nodes:
        raise ValueError(f"unknown node {node!r}")
    return ordered(complete_grudge([[node], [n for n in nodes if n != node]]), nodes)


def random_one(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """A random node cut off from all others (Jepsen's partition-random-node)."""
    _need(nodes, 2, "isolating a node")
    return isolate(nodes, rng.choice(list(nodes)))


def bridge(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Two halves that cannot talk, plus one node (the bridge) that talks to both.

    As Jepsen: shuffle, bisect, the first node of the larger half is the bridge; nobody drops
    the bridge and the bridge drops nobody.
    """
    _need(nodes, 3, "a bridge")
    left, right = bisect(_shuffled(nodes, rng))
    the_bridge = right[0]
    full = complete_grudge([left, right])
    return ordered(
        {
            node: ([] if node == the_bridge else [n for n in dropped if n != the_bridge])
            for node, dropped in full.items()
        },
        nodes,
    )


def majorities_ring(nodes: Sequence[str], rng: random.Random) -> Grudge:
    """Every node sees a majority (itself included), and no two nodes see the same one.

    Nodes are shuffled onto a ring and each sees a window of its ring neighbours centred on
    itself: the width is the majority rounded up to an odd number, so that the grudge stays
    symmetric (for odd majorities this is exactly Jepsen's perfect ring). With 3 nodes no ring
    works (a window of 3 is everyone), so the shape is a line a - b - c: b sees all, a and c see
    two distinct majorities.
    """
    _need(nodes, 3, "a majorities ring")
    ring = _shuffled(nodes, rng)
    n = len(ring)
    if n == 3:
        a, b, c = ring
        return ordered({a: [c], b: [], c: [a]}, nodes)
    width = majority(n)
    if width % 2 == 0:
        width += 1
    reach = width // 2
    grudge: Grudge = {}
    for i, node in enumerate(ring):
        seen = {ring[(i + d) % n] for d in range(-reach, reach + 1)}
        grudge[node] = [m for m in ring if m not in seen]
    return ordered(grudge, nodes)


# ---------------------------------------------------------------------------------------------
# Questions asked about a grudge (used by the nemesis descriptions and the tests)


def visible(grudge: Mapping[str, Iterable[str]], nodes: Sequence[str]) -> dict[str, set[str]]:
    """For each node, the nodes it can still hear from (itself included)."""
    return {n: set(nodes) - set(grudge.get(n, ())) for n in nodes}


def is_symmetric(grudge: Mapping[str, Iterable[str]]) -> bool:
    for a, dropped in grudge.items():
        for b in dropped:
            if a not in set(grudge.get(b, ())):
                return False
    return True


def describe(grudge: Mapping[str, Iterable[str]], nodes: Sequence[str]) -> str:
    """One human sentence for a grudge, e.g. "cut n1, n2 off from n3, n4, n5"."""
    order = list(nodes)
    cutting = {n: sorted(set(grudge.get(n, ())), key=order.index) for n in order}
    if not any(cutting.values()):
        return "no node drops any other"
    seen = visible(grudge, order)
    # Bridges: nodes that hear everyone and that everyone hears.
    bridges = [n for n in order if seen[n] == set(order) and all(n in seen[m] for m in order)]
    rest = [n for n in order if n not in bridges]
    comps = components({n: cutting[n] for n in rest}, rest)
    complete = all(seen[n] - set(bridges) == set(c) for c in comps for n in c)
    if complete and len(comps) >= 2:
        if len(comps) == 2:
            small, big = sorted(comps, key=len)
            text = f"cut {', '.join(small)} off from {', '.join(big)}"
        else:
            text = "split into " + " | ".join(", ".join(c) for c in comps)
        if bridges:
            text += f", with {', '.join(bridges)} still talking to both sides"
        return text
    return "; ".join(f"{n} drops {', '.join(d)}" for n, d in cutting.items() if d)
