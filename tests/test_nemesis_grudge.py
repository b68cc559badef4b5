"""Grudge shapes: pure functions of node names and a seeded rng."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsjepsen.nemesis import grudge as g


def names(n: int) -> list[str]:
    return [f"n{i}" for i in range(1, n + 1)]


seeds = st.integers(min_value=0, max_value=2**32)


@settings(max_examples=60)
@given(n=st.integers(min_value=2, max_value=9), seed=seeds)
def test_random_halves_is_a_symmetric_majority_minority_cut(n, seed):
    nodes = names(n)
    grudge = g.random_halves(nodes, random.Random(seed))
    assert g.is_symmetric(grudge)
    comps = g.components(grudge, nodes)
    assert len(comps) == 2
    small, big = sorted(comps, key=len)
    assert len(small) == n // 2 and len(big) == n - n // 2
    assert len(big) >= g.majority(n) or n % 2 == 0
    for a in small:
        assert set(grudge[a]) == set(big)
    for b in big:
        assert set(grudge[b]) == set(small)


@settings(max_examples=60)
@given(n=st.integers(min_value=2, max_value=9), seed=seeds)
def test_partition_one_isolates_exactly_one_node(n, seed):
    nodes = names(n)
    grudge = g.random_one(nodes, random.Random(seed))
    assert g.is_symmetric(grudge)
    isolated = [a for a in nodes if len(grudge[a]) == n - 1]
    others = [a for a in nodes if a not in isolated]
    if n > 2:
        assert len(isolated) == 1
        assert all(grudge[o] == isolated for o in others)


@settings(max_examples=60)
@given(n=st.integers(min_value=3, max_value=9), seed=seeds)
def test_bridge_joins_two_cut_halves(n, seed):
    nodes = names(n)
    grudge = g.bridge(nodes, random.Random(seed))
    assert g.is_symmetric(grudge)
    bridges = [a for a in nodes if not grudge[a]]
    assert len(bridges) == 1
    (b,) = bridges
    assert all(b not in grudge[a] for a in nodes)
    rest = [a for a in nodes if a != b]
    comps = g.components({a: grudge[a] for a in rest}, rest)
    assert len(comps) == 2
    left, right = comps
    for a in left:
        assert set(grudge[a]) == set(right)
    # the bridge plus either half is what each half's node sees
    seen = g.visible(grudge, nodes)
    assert all(seen[a] == set(left) | {b} for a in left)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 9])
@pytest.mark.parametrize("seed", range(20))
def test_majorities_ring_every_node_sees_a_distinct_majority(n, seed):
    nodes = names(n)
    grudge = g.majorities_ring(nodes, random.Random(seed))
    assert g.is_symmetric(grudge)
    seen = g.visible(grudge, nodes)
    for a in nodes:
        assert a in seen[a]
        assert len(seen[a]) >= g.majority(n), (a, seen[a])
    majorities = [frozenset(s) for s in seen.values()]
    assert len(set(majorities)) == n, "two nodes see the same majority"
    # it is a real fault: some node cannot hear some other node
    assert any(grudge[a] for a in nodes)


def test_majorities_ring_on_five_is_jepsens_perfect_ring():
    nodes = names(5)
    grudge = g.majorities_ring(nodes, random.Random(7))
    # each node drops exactly the two nodes that are not its ring neighbours
    assert all(len(d) == 2 for d in grudge.values())
    # the "sees" relation is a single 5-cycle
    adj = {a: set(nodes) - set(grudge[a]) - {a} for a in nodes}
    assert all(len(v) == 2 for v in adj.values())
    start = nodes[0]
    prev, cur, walked = None, start, []
    for _ in range(5):
        walked.append(cur)
        nxt = next(x for x in adj[cur] if x != prev)
        prev, cur = cur, nxt
    assert cur == start and sorted(walked) == nodes


@pytest.mark.parametrize(
    "shape", [g.random_halves, g.random_one, g.bridge, g.majorities_ring], ids=lambda f: f.__name__
)
def test_same_seed_same_grudge_and_seeds_vary(shape):
    nodes = names(5)
    assert shape(nodes, random.Random(42)) == shape(nodes, random.Random(42))
    distinct = {repr(shape(nodes, random.Random(s))) for s in range(30)}
    assert len(distinct) > 1


def test_shapes_refuse_too_few_nodes():
    with pytest.raises(ValueError, match="at least 3 nodes"):
        g.majorities_ring(names(2), random.Random(0))
    with pytest.raises(ValueError, match="at least 3 nodes"):
        g.bridge(names(2), random.Random(0))
    with pytest.raises(ValueError, match="at least 2 nodes"):
        g.random_halves(names(1), random.Random(0))


def test_grudges_name_only_cluster_nodes_in_cluster_order():
    nodes = ["b", "a", "d", "c", "e"]
    for seed, shape in itertools.product(range(5), [g.random_halves, g.bridge, g.majorities_ring]):
        grudge = shape(nodes, random.Random(seed))
        assert list(grudge) == nodes
        for dropped in grudge.values():
            assert dropped == [x for x in nodes if x in dropped]


def test_descriptions():
    nodes = names(5)
    assert g.describe(g.isolate(nodes, "n2"), nodes) == "cut n2 off from n1, n3, n4, n5"
    halves = g.complete_grudge([["n1", "n2"], ["n3", "n4", "n5"]])
    assert g.describe(halves, nodes) == "cut n1, n2 off from n3, n4, n5"
    bridge = {"n1": ["n4", "n5"], "n2": ["n4", "n5"], "n3": [], "n4": ["n1", "n2"]}
    bridge["n5"] = ["n1", "n2"]
    assert g.describe(bridge, nodes) == (
        "cut n1, n2 off from n4, n5, with n3 still talking to both sides"
    )
    assert g.describe({}, nodes) == "no node drops any other"
    ring = g.majorities_ring(nodes, random.Random(1))
    assert g.describe(ring, nodes).count("drops") == 5
