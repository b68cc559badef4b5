"""Dependency graphs and the cycles in them: the one graph module of the checkers.

A checker that proves an anomaly with a cycle builds a graph whose edges are orderings every
legal execution must obey (process order, reads-from, a version order a read implies, real
time); a cycle is then a proof, and the cycle itself, step by step, is the explanation. The
sequential-consistency checker's graph pass and the transactional checkers (Elle's list-append
and rw-register) share what is here:

* `Digraph`: a small labelled graph (dicts of dicts) for the parts a person reads: acyclicity,
  one cycle, the shortest cycle through given nodes, ancestors and descendants, strongly
  connected components, and `constrained_cycle`, the shortest cycle whose edge labels a small
  automaton accepts (Elle's G-single needs exactly one anti-dependency, G-nonadjacent no two in
  a row, and so on).
* `components`: the strongly connected components of a graph given as edge arrays, in compiled
  code (scipy), for histories of a million transactions: only the nodes of a component with
  more than one node can lie on a cycle, so everything after this step looks at small graphs.

Nodes are any hashable values in a `Digraph` and integers 0..n-1 in `components`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import numpy as np

N = TypeVar("N", bound=Hashable)
S = TypeVar("S", bound=Hashable)


class Digraph:
    """A directed graph with one label per edge and no parallel edges.

    `add_edge` keeps the first label an edge was given (the sequential checker names each edge
    by the first reason found for it); `merge_edge` ORs integer labels (the transactional
    checkers keep every relationship between two transactions as bits of one label). Nodes
    keep their insertion order, so everything derived from the graph is deterministic.
    """

    def __init__(self) -> None:
        self._succ: dict[Any, dict[Any, Any]] = {}
        self._pred: dict[Any, dict[Any, None]] = {}

    def __len__(self) -> int:
        return len(self._succ)

    def __contains__(self, node: object) -> bool:
        return node in self._succ

    def add_node(self, node: Any) -> None:
        if node not in self._succ:
            self._succ[node] = {}
            self._pred[node] = {}

    def add_nodes(self, nodes: Iterable[Any]) -> None:
        for n in nodes:
            self.add_node(n)

    def add_edge(self, a: Any, b: Any, label: Any = None) -> bool:
        """Add a -> b with `label` unless the edge exists; True when it was new."""
        self.add_node(a)
        self.add_node(b)
        out = self._succ[a]
        if b in out:
            return False
        out[b] = label
        self._pred[b][a] = None
        return True

    def merge_edge(self, a: Any, b: Any, bits: int) -> None:
        """Add a -> b, OR-ing `bits` into the label of an existing edge."""
        self.add_node(a)
        self.add_node(b)
        out = self._succ[a]
        out[b] = out.get(b, 0) | bits
        self._pred[b][a] = None

    def has_edge(self, a: Any, b: Any) -> bool:
        out = self._succ.get(a)
        return out is not None and b in out

    def label(self, a: Any, b: Any) -> Any:
        return self._succ[a][b]

    def nodes(self) -> list[Any]:
        return list(self._succ)

    def successors(self, a: Any) -> Iterable[Any]:
        return self._succ.get(a, {}).keys()

    def out_edges(self, a: Any) -> Iterable[tuple[Any, Any]]:
        """(successor, label) pairs of a."""
        return self._succ.get(a, {}).items()

    def predecessors(self, a: Any) -> Iterable[Any]:
        return self._pred.get(a, {}).keys()

    def edges(self) -> Iterator[tuple[Any, Any, Any]]:
        for a, out in self._succ.items():
            for b, lab in out.items():
                yield a, b, lab

    def edge_count(self) -> int:
        return sum(len(out) for out in self._succ.values())

    def subgraph(self, nodes: Iterable[Any], keep: Callable[[Any], Any] | None = None) -> Digraph:
        """The graph induced by `nodes`; with `keep`, only edges whose label it maps to a true
        value, labelled with what it returned (e.g. `lambda bits: bits & mask`)."""
        inside = set(nodes)
        g = Digraph()
        for a in self._succ:
            if a in inside:
                g.add_node(a)
        for a in g._succ:
            for b, lab in self._succ[a].items():
                if b not in inside:
                    continue
                if keep is None:
                    g.add_edge(a, b, lab)
                else:
                    kept = keep(lab)
                    if kept:
                        g.add_edge(a, b, kept)
        return g

    # -----------------------------------------------------------------------------------------
    # Order

    def is_acyclic(self) -> bool:
        """Whether the graph has no cycle (Kahn's algorithm: linear)."""
        indeg = {n: len(p) for n, p in self._pred.items()}
        ready = [n for n, d in indeg.items() if d == 0]
        seen = 0
        while ready:
            n = ready.pop()
            seen += 1
            for m in self._succ[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
        return seen == len(self._succ)

    def find_cycle(self) -> list[Any] | None:
        """Some cycle as its list of nodes (the edge from the last back to the first closes
        it), or None. Iterative depth-first search, so long graphs do not hit the recursion
        limit."""
        WHITE, GREY, BLACK = 0, 1, 2
        color = dict.fromkeys(self._succ, WHITE)
        for root in self._succ:
            if color[root] != WHITE:
                continue
            path = [root]
            color[root] = GREY
            stack = [iter(self._succ[root])]
            while stack:
                nxt = next(stack[-1], None)
                if nxt is None:
                    color[path.pop()] = BLACK
                    stack.pop()
                    continue
                c = color[nxt]
                if c == GREY:
                    return path[path.index(nxt) :]
                if c == WHITE:
                    color[nxt] = GREY
                    path.append(nxt)
                    stack.append(iter(self._succ[nxt]))
        return None

    def ancestors(self, node: Any) -> set[Any]:
        return self._reach(node, self._pred)

    def descendants(self, node: Any) -> set[Any]:
        return self._reach(node, self._succ)

    @staticmethod
    def _reach(node: Any, adj: dict[Any, Any]) -> set[Any]:
        seen: set[Any] = set()
        todo = list(adj.get(node, ()))
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            todo.extend(m for m in adj[n] if m not in seen)
        seen.discard(node)  # as networkx: a node is never its own ancestor or descendant
        return seen

    def shortest_cycle(self, through: Sequence[Any], starts: int = 24) -> list[Any] | None:
        """The shortest cycle through any of the first `starts` nodes of `through` (breadth-
        first from each), as its node list; None when none of them lies on a cycle."""
        best: list[Any] | None = None
        for u in through[:starts]:
            parent: dict[Any, Any] = {u: None}
            frontier = [u]
            last = None
            while frontier and last is None:
                nxt = []
                for x in frontier:
                    if u in self._succ[x]:
                        last = x
                        break
                    for y in self._succ[x]:
                        if y not in parent:
                            parent[y] = x
                            nxt.append(y)
                frontier = nxt
            if last is None:
                continue
            path: list[Any] = []
            node = last
            while node is not None:
                path.append(node)
                node = parent[node]
            path.reverse()
            if best is None or len(path) < len(best):
                best = path
        return best

    def strongly_connected(self) -> list[list[Any]]:
        """The components with more than one node (a cycle lies inside exactly one), each in
        node order; iterative Tarjan."""
        index: dict[Any, int] = {}
        low: dict[Any, int] = {}
        on_stack: set[Any] = set()
        stack: list[Any] = []
        out: list[list[Any]] = []
        counter = 0
        for root in self._succ:
            if root in index:
                continue
            work = [(root, iter(self._succ[root]))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                v, it = work[-1]
                w = next(it, None)
                if w is not None:
                    if w not in index:
                        index[w] = low[w] = counter
                        counter += 1
                        stack.append(w)
                        on_stack.add(w)
                        work.append((w, iter(self._succ[w])))
                    elif w in on_stack:
                        low[v] = min(low[v], index[w])
                    continue
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
        position = {n: i for i, n in enumerate(self._succ)}
        for comp in out:
            comp.sort(key=position.__getitem__)
        out.sort(key=lambda c: position[c[0]])
        return out


# ---------------------------------------------------------------------------------------------
# Cycles whose labels obey a rule


class SearchTimeout(Exception):
    """A constrained cycle search ran past its deadline."""


def constrained_cycle(
    g: Digraph,
    starts: Iterable[Any],
    initial: S,
    step: Callable[[S, Any], Iterable[tuple[S, Any]]],
    accept: Callable[[S], bool],
    deadline: float | None = None,
) -> list[tuple[Any, Any, Any]] | None:
    """The shortest cycle through the first start (in the order given) that has one, whose
    labels a small automaton accepts; as [(a, b, what step said of the edge a -> b), ...].

    The automaton reads the cycle's edges in order from its start: `step(state, label)` yields
    (next state, the meaning it gave the edge) for each way the edge may be read (none: the
    edge cannot be used in this state), and `accept(state)` says whether a cycle that closes in
    this state qualifies. Breadth-first over (node, state), so each start costs O((V + E) *
    states). Raises SearchTimeout past `deadline` (time.monotonic()).
    """
    counter = 0
    for s in starts:
        parent: dict[tuple[Any, Any], tuple[Any, Any, Any] | None] = {(s, initial): None}
        frontier: deque[tuple[Any, Any]] = deque([(s, initial)])
        while frontier:
            node, q = frontier.popleft()
            counter += 1
            if deadline is not None and not counter & 255 and time.monotonic() > deadline:
                raise SearchTimeout()
            for nxt, lab in g.out_edges(node):
                for q2, used in step(q, lab):
                    if nxt == s:
                        if accept(q2):
                            return _unwind(parent, (node, q), (nxt, used))
                        continue
                    key = (nxt, q2)
                    if key not in parent:
                        parent[key] = (node, q, used)
                        frontier.append(key)
    return None


def _unwind(
    parent: dict[tuple[Any, Any], tuple[Any, Any, Any] | None],
    last: tuple[Any, Any],
    closing: tuple[Any, Any],
) -> list[tuple[Any, Any, Any]]:
    steps: list[tuple[Any, Any, Any]] = []
    b, used = closing
    key: tuple[Any, Any] | None = last
    while key is not None:
        a = key[0]
        steps.append((a, b, used))
        link = parent[key]
        if link is None:
            break
        pa, pq, pused = link
        b, used = a, pused
        key = (pa, pq)
    steps.reverse()
    return steps


# ---------------------------------------------------------------------------------------------
# Large graphs


def components(n: int, src: np.ndarray, dst: np.ndarray) -> list[np.ndarray]:
    """The strongly connected components with more than one node of the graph on nodes
    0..n-1 with edges src[i] -> dst[i] (parallel edges allowed, no self-edges), each as a
    sorted array of nodes, in the order of their smallest node. Compiled (scipy), so a graph
    of millions of edges takes about a second."""
    if n == 0 or len(src) == 0:
        return []
    import numpy as np  # here: only the transactional checkers' large graphs need it
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    m = csr_matrix(
        (np.ones(len(src), dtype=np.int8), (src.astype(np.int32), dst.astype(np.int32))),
        shape=(n, n),
    )
    count, labels = connected_components(m, directed=True, connection="strong")
    if count == n:
        return []
    sizes = np.bincount(labels, minlength=count)
    big = np.flatnonzero(sizes > 1)
    if len(big) == 0:
        return []
    nodes = np.flatnonzero(sizes[labels] > 1)
    order = np.argsort(labels[nodes], kind="stable")
    nodes = nodes[order]
    bounds = np.cumsum(sizes[big])[:-1]
    comps = np.split(nodes, bounds)
    comps.sort(key=lambda c: int(c[0]))
    return comps


__all__ = ["Digraph", "SearchTimeout", "components", "constrained_cycle"]
