"""Helpers for the CRDT checker tests: a history builder, and the brute-force oracles the fast
checkers are compared with (tiny histories only: they enumerate subsets)."""

from __future__ import annotations

from itertools import combinations
from typing import Any

from dsjepsen.history import History, Op

MS = 1_000_000  # ns


class Builder:
    """Appends ops with increasing index and time (1 ms apart unless told)."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.t = 0

    def _emit(
        self, process: int | str, typ: str, f: str, key: Any, value: Any, node: str | None
    ) -> Op:
        self.t += MS
        op = Op(len(self.ops), self.t, process, typ, f, value, key=key, node=node)
        self.ops.append(op)
        return op

    def invoke(self, p: int, f: str, key: Any = 0, value: Any = None, node: str | None = "n1"):
        return self._emit(p, "invoke", f, key, value, node)

    def complete(
        self, p: int, typ: str, f: str, key: Any = 0, value: Any = None, node: str | None = "n1"
    ) -> Op:
        return self._emit(p, typ, f, key, value, node)

    def op(
        self,
        p: int,
        f: str,
        key: Any = 0,
        value: Any = None,
        typ: str = "ok",
        out: Any = None,
        node: str | None = "n1",
    ) -> None:
        """An invocation immediately followed by its completion (`out`: a read's result)."""
        self.invoke(p, f, key, value, node)
        self.complete(p, typ, f, key, value if out is None else out, node)

    def nemesis(self, f: str) -> None:
        self._emit("nemesis", "invoke", f, None, None, None)
        self._emit("nemesis", "ok", f, None, None, None)

    @property
    def index(self) -> int:
        """The index the next op gets."""
        return len(self.ops)

    def history(self) -> History:
        return History(list(self.ops))


def subset_sums(deltas: list[int]) -> set[int]:
    return {sum(c) for n in range(len(deltas) + 1) for c in combinations(deltas, n)}


def counter_oracle(history: History, per_node: bool, final_from: int | None) -> bool:
    """Is every read explainable? Each ok read must lie between the smallest and largest sum of
    D plus a subset of P \\ D (Jepsen's bounds); each node's last final read must be the ok sum
    plus some subset of the indeterminate deltas. Enumerates subsets: keep histories tiny."""
    ops = history.ops
    pairs: list[tuple[Op, Op | None]] = []
    open_: dict[Any, Op] = {}
    for op in ops:
        if op.type == "invoke":
            open_[op.process] = op
        else:
            inv = open_.pop(op.process)
            pairs.append((inv, op))
    pairs += [(inv, None) for inv in open_.values()]
    incs = [(i, c) for i, c in pairs if i.f == "increment"]
    ok_sum: dict[Any, int] = {}
    indeterminate: dict[Any, list[int]] = {}
    for i, c in incs:
        if c is not None and c.type == "ok":
            ok_sum[i.key] = ok_sum.get(i.key, 0) + i.value
        elif c is None or c.type == "info":
            indeterminate.setdefault(i.key, []).append(i.value)
    last_final: dict[tuple[Any, Any], Op] = {}
    for inv, comp in pairs:
        if inv.f != "read-counter" or comp is None or comp.type != "ok":
            continue
        if final_from is not None and inv.index >= final_from:
            prev = last_final.get((inv.key, inv.node))
            if prev is None or prev.index < comp.index:
                last_final[(inv.key, inv.node)] = comp
        definite = [
            i.value
            for i, c in incs
            if i.key == inv.key
            and c is not None
            and c.type == "ok"
            and c.index < inv.index
            and (not per_node or i.node == inv.node)
        ]
        maybe = [
            i.value
            for i, c in incs
            if i.key == inv.key
            and i.index < comp.index
            and (c is None or c.type != "fail")
            and not (
                c is not None
                and c.type == "ok"
                and c.index < inv.index
                and (not per_node or i.node == inv.node)
            )
        ]
        sums = {sum(definite) + s for s in subset_sums(maybe)}
        if not min(sums) <= comp.value <= max(sums):
            return False
    for (key, _), comp in last_final.items():  # each node's last final read: Maelstrom's rule
        finals = {ok_sum.get(key, 0) + s for s in subset_sums(indeterminate.get(key, []))}
        if comp.value not in finals:
            return False
    return True
