"""The shared graph module: cycles, components and constrained cycles, against brute force on
random small graphs."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from dsjepsen.checkers.graph import Digraph, SearchTimeout, components, constrained_cycle


def random_graph(rng: random.Random, n: int, p: float) -> Digraph:
    g = Digraph()
    g.add_nodes(range(n))
    for a, b in itertools.permutations(range(n), 2):
        if rng.random() < p:
            g.add_edge(a, b, rng.choice("xy"))
    return g


def reach(g: Digraph, a: int) -> set[int]:
    """Nodes reachable from a by one edge or more (a itself when it lies on a cycle)."""
    seen: set[int] = set()
    todo = list(g.successors(a))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(g.successors(n))
    return seen


@pytest.mark.parametrize("seed", range(60))
def test_cycles_and_components_agree_with_reachability(seed: int) -> None:
    rng = random.Random(seed)
    g = random_graph(rng, rng.randint(1, 9), rng.choice((0.08, 0.15, 0.3)))
    on_cycle = {a for a in g.nodes() if a in reach(g, a)}
    assert g.is_acyclic() == (not on_cycle)
    cycle = g.find_cycle()
    if on_cycle:
        assert cycle is not None
        for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
            assert g.has_edge(a, b)
        short = g.shortest_cycle(cycle)
        assert short is not None and len(short) <= len(cycle)
    else:
        assert cycle is None
    expected = {
        frozenset(b for b in g.nodes() if b == a or (b in reach(g, a) and a in reach(g, b)))
        for a in on_cycle
    }
    assert {frozenset(c) for c in g.strongly_connected()} == expected
    src = np.array([a for a, _b, _l in g.edges()], dtype=np.int64)
    dst = np.array([b for _a, b, _l in g.edges()], dtype=np.int64)
    assert {frozenset(c.tolist()) for c in components(len(g), src, dst)} == expected
    for a in g.nodes():
        assert g.descendants(a) == reach(g, a) - {a}


def test_constrained_cycle_reads_labels_with_an_automaton() -> None:
    # 0 -x-> 1 -x-> 0 is the short cycle, but it has no y; the one with exactly one y is longer
    g = Digraph()
    g.add_edge(0, 1, "x")
    g.add_edge(1, 0, "x")
    g.add_edge(1, 2, "y")
    g.add_edge(2, 0, "x")

    def step(seen_y: int, label: str) -> list[tuple[int, str]]:
        if label == "y":
            return [] if seen_y else [(1, "y")]
        return [(seen_y, "x")]

    cycle = constrained_cycle(g, [0, 1, 2], 0, step, lambda q: q == 1)
    assert cycle == [(0, 1, "x"), (1, 2, "y"), (2, 0, "x")]
    assert constrained_cycle(g, [0], 0, step, lambda q: q == 2) is None
    with pytest.raises(SearchTimeout):
        big = Digraph()
        for i in range(3000):
            big.add_edge(i, i + 1, "x")
        constrained_cycle(big, range(3000), 0, step, lambda q: False, deadline=0.0)


def test_first_label_kept_and_bits_merged() -> None:
    g = Digraph()
    assert g.add_edge("a", "b", "rf") and not g.add_edge("a", "b", "ww")
    assert g.label("a", "b") == "rf"
    g.merge_edge(1, 2, 1)
    g.merge_edge(1, 2, 4)
    assert g.label(1, 2) == 5
    sub = g.subgraph([1, 2], keep=lambda bits: bits & 4)
    assert sub.label(1, 2) == 4 and sub.edge_count() == 1
