"""convergence: strong eventual consistency of sets and counters, judged replica by replica.

Two properties, both needing to know which node served each read (`op.node`):

1. **Convergence.** After every fault is healed (`CheckContext.healed_at`) the run reads every
   key through every node, in rounds, from `CheckContext.final_from_index` on. Each node's last
   final read of a key is its final value; every node must end with the same one. A key whose
   nodes disagree is invalid, with each node's value (for sets, which elements each node
   lacks). A node that answered no final read of a key leaves the key undecided (`unknown`).
   Whether the agreed value is the *right* one is judged by set-full (nothing lost, nothing
   phantom) and counter (the ok sum plus a subset of the indeterminate increments), which the
   CRDT workloads run beside this checker.

   The time to converge is measured from the heal: for each key, each node's final reads end
   with a run of reads that all return the final value; the key had converged by the latest
   completion, over nodes, of the first read of that run. The figure is an upper bound set by
   how often the run layer reads (when the first round already agrees, the store converged
   before the first round ended, possibly much earlier); `details` says which.

2. **Monotonic reads per replica**, for grow-only types: a node never loses an element of a set
   that one of its reads already returned, and a grow-only counter (a history whose increments
   are all non-negative) never reads lower than it already read through that node. Only reads
   ordered in real time count: the second must begin after the first completed. A violation
   names the node, the key and the element(s) (or the two values).

Reads are `read-set` and `read-counter` (values: list of elements, integer); Jepsen's `read`
is accepted when a history has neither, the value's type telling a set from a counter.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.set_full import as_set, paused_gc, plain
from dsjepsen.history import NEMESIS, History

READ_SET = "read-set"
READ_COUNTER = "read-counter"
INCREMENT = "increment"
MAX_ANOMALIES = 100
#: elements named in one message
SHOWN = 8


def read_fs(history: History) -> frozenset[str]:
    """The f values of reads: ours, or Jepsen's `read` when a history has none of ours."""
    ours = frozenset({READ_SET, READ_COUNTER})
    for op in history.ops:
        if op.f in ours:
            return ours
    return frozenset({"read"})


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _grow_only_counter(history: History) -> bool:
    """No increment has a negative delta (a g-counter history)."""
    for op in history.ops:
        if (
            op.type == "invoke"
            and op.f in (INCREMENT, "add")
            and _is_int(op.value)
            and op.value < 0
        ):
            return False
    return True


@dataclass
class _Final:
    """One ok final read."""

    node: str | None
    call_time: int
    ret_time: int
    value: Hashable  # frozenset of elements, or an int
    raw: Any


@dataclass
class _Replica:
    """Monotonic-reads state of one (node, key)."""

    seen: list[Any] = field(default_factory=list)  # set elements, by first completion
    seen_at: list[int] = field(default_factory=list)  # ... and when they were first returned
    seen_set: set[Any] = field(default_factory=set)
    best: int | None = None  # the highest counter value returned so far
    best_at: int = 0
    violations: int = 0


def _fmt(elements: list[Any]) -> str:
    shown = ", ".join(repr(plain(e)) for e in elements[:SHOWN])
    return shown + (", ..." if len(elements) > SHOWN else "")


def _sorted(elements: set[Any]) -> list[Any]:
    try:
        return sorted(elements)
    except TypeError:
        return sorted(elements, key=repr)


def _describe_value(value: Hashable) -> str:
    if isinstance(value, frozenset):
        return f"{len(value)} element(s)"
    return str(value)


class ConvergenceChecker(Checker):
    name = "convergence"
    needs = (frozenset({READ_SET}), frozenset({READ_COUNTER}))
    description = (
        "strong eventual consistency: every node ends with the same value of every key after "
        "the heal (time to converge measured), and grow-only values never shrink on a node"
    )

    def check(self, history: History, context: CheckContext | None = None) -> CheckResult:
        with paused_gc():
            return self._check(history, context or CheckContext())

    def _check(self, history: History, context: CheckContext) -> CheckResult:
        fs = read_fs(history)
        grow_only_counter = _grow_only_counter(history)
        final_from = context.final_from_index
        open_: dict[Any, tuple[int, Any]] = {}
        replicas: dict[tuple[Any, str, Any], _Replica] = {}  # (node, read f, key)
        snapshots: dict[int, tuple[int, int | None]] = {}  # invoke position -> (prefix, best)
        finals: dict[Any, list[_Final]] = {}
        final_nodes: set[Any] = set()
        first_final_time: int | None = None
        anomalies: list[dict[str, Any]] = []
        for pos, op in enumerate(history.ops):
            if op.process == NEMESIS:
                continue
            if final_from is not None and op.index >= final_from and op.type == "invoke":
                final_nodes.add(op.node)
                if first_final_time is None:
                    first_final_time = op.time
            if op.f not in fs:
                continue
            if op.type == "invoke":
                open_[op.process] = (pos, op)
                if op.node is not None:
                    r = replicas.get((op.node, op.f, op.key))
                    if r is not None:
                        snapshots[pos] = (len(r.seen), r.best)
                continue
            got = open_.pop(op.process, None)
            if got is None or op.type != "ok":
                if got is not None:
                    snapshots.pop(got[0], None)
                continue
            ipos, inv = got
            node = inv.node or op.node
            v = op.value
            if isinstance(v, list | tuple | set | frozenset):
                elements = as_set(v)
                value: Hashable = frozenset(elements)
            elif _is_int(v):
                elements = None
                value = v
            else:
                continue
            if final_from is not None and inv.index >= final_from:
                finals.setdefault((inv.f, inv.key), []).append(
                    _Final(node, inv.time, op.time, value, v)
                )
            if node is None:
                continue
            r = replicas.get((node, inv.f, inv.key))
            if r is None:
                r = replicas[(node, inv.f, inv.key)] = _Replica()
            snap = snapshots.pop(ipos, None)
            bad = self._monotonic(
                r, node, inv.key, elements, v, snap, inv.time, op.time, grow_only_counter
            )
            if bad is not None and len(anomalies) < MAX_ANOMALIES:
                anomalies.append(bad)
        monotonic_bad = sum(r.violations for r in replicas.values())
        return self._verdict(
            finals, final_nodes, context, first_final_time, anomalies, monotonic_bad
        )

    # -- monotonic reads per replica ----------------------------------------------------------

    @staticmethod
    def _monotonic(
        r: _Replica,
        node: str,
        key: Any,
        elements: set[Any] | None,
        v: Any,
        snap: tuple[int, int | None] | None,
        call_t: int,
        ret_t: int,
        grow_only_counter: bool,
    ) -> dict[str, Any] | None:
        """Check one ok read against what the node returned before it began; then remember
        what it returned. Counts every violation in `r.violations`, and returns an anomaly for
        the first one of this (node, key)."""
        anomaly = None
        if elements is not None:
            prefix = snap[0] if snap else 0
            if prefix and not elements.issuperset(r.seen[:prefix]):
                missing = [i for i in range(prefix) if r.seen[i] not in elements]
                r.violations += 1
                if r.violations == 1:
                    lost = [r.seen[i] for i in missing]
                    first_t = r.seen_at[missing[0]]
                    if len(lost) == 1:
                        what, pronoun = f"element {plain(lost[0])!r}", "it"
                    else:
                        lost = _sorted(set(lost))
                        what, pronoun = f"{len(lost)} elements ({_fmt(lost)})", "them"
                    anomaly = {
                        "type": "replica-lost-element",
                        "node": node,
                        "key": key,
                        "element": plain(lost[0]),
                        "elements": [plain(e) for e in lost[:100]],
                        "seen_at": first_t,
                        "missing_at": call_t,
                        "message": (
                            f"{node} lost {what} of key {key!r}: a read through {node} "
                            f"returned {pronoun} (first at {first_t / 1e9:.3f} s), and a later "
                            f"read through {node} (invoked at {call_t / 1e9:.3f} s) did not."
                        ),
                    }
            fresh = elements - r.seen_set
            if fresh:
                r.seen_set |= fresh
                r.seen.extend(fresh)
                r.seen_at.extend([ret_t] * len(fresh))
        elif grow_only_counter:
            before = snap[1] if snap else None
            if before is not None and v < before:
                r.violations += 1
                if r.violations == 1:
                    anomaly = {
                        "type": "replica-counter-decreased",
                        "node": node,
                        "key": key,
                        "value": v,
                        "previous": before,
                        "previous_at": r.best_at,
                        "message": (
                            f"{node}'s reads of grow-only counter {key!r} went backwards: "
                            f"{before} by {r.best_at / 1e9:.3f} s, then {v} in a read invoked "
                            f"at {call_t / 1e9:.3f} s."
                        ),
                    }
            if r.best is None or v > r.best:
                r.best, r.best_at = v, ret_t
        return anomaly

    # -- convergence --------------------------------------------------------------------------

    def _verdict(
        self,
        finals: dict[Any, list[_Final]],
        final_nodes: set[Any],
        context: CheckContext,
        first_final_time: int | None,
        anomalies: list[dict[str, Any]],
        monotonic_bad: int,
    ) -> CheckResult:
        details: dict[str, Any] = {"monotonic_violations": monotonic_bad}
        if context.final_from_index is None or not finals:
            details["keys"] = 0
            if monotonic_bad:
                return CheckResult(self.name, False, anomalies[0]["message"], anomalies, details)
            why = (
                "the history has no final reads (CheckContext.final_from_index)"
                if context.final_from_index is None
                else "no final read completed ok"
            )
            return CheckResult(
                self.name, "unknown", f"cannot judge convergence: {why}", anomalies, details
            )
        origin = context.healed_at if context.healed_at is not None else first_final_time
        details["measured_from"] = (
            "healed_at" if context.healed_at is not None else "start of the final reads"
        )
        nodes = sorted(n for n in final_nodes if n is not None)
        diverged: list[Any] = []
        undecided: list[tuple[Any, list[str]]] = []
        converged_at: dict[Any, int] = {}
        first_round_agreed = True
        per_key: dict[str, Any] = {}
        kinds: dict[Any, int] = {}
        for _, key in finals:
            kinds[key] = kinds.get(key, 0) + 1
        for (f, key), reads in finals.items():
            # "key 3"; "key 3 (read-counter)" when a set and a counter share the key
            label = f"key {key!r}" + (f" ({f})" if kinds[key] > 1 else "")
            last: dict[Any, _Final] = {}
            for f in reads:  # completion order: the last one per node stands
                last[f.node] = f
            missing = [n for n in nodes if n not in last]
            values = {f.value for f in last.values()}
            if len(values) > 1:
                diverged.append(label)
                if len(anomalies) < MAX_ANOMALIES:
                    anomalies.append(self._diverged(key, label, last))
                per_key[label] = {
                    str(n): _describe_value(f.value) for n, f in sorted(last.items(), key=str)
                }
                continue
            if missing:
                undecided.append((label, [str(n) for n in missing]))
                continue
            final = next(iter(values))
            when = 0
            for node in last:
                node_reads = [f for f in reads if f.node == node]
                i = len(node_reads)
                while i > 0 and node_reads[i - 1].value == final:
                    i -= 1
                if i > 0:
                    first_round_agreed = False
                when = max(when, node_reads[i].ret_time)
            converged_at[label] = when
        details["keys"] = len(finals)
        details["nodes"] = [str(n) for n in nodes]
        details["diverged_keys"] = diverged[:100]
        details["diverged_values"] = per_key
        details["undecided_keys"] = dict(undecided[:100])
        if converged_at:
            slowest = sorted(converged_at.items(), key=lambda kv: kv[1], reverse=True)
            seconds = max(0, slowest[0][1] - (origin or 0)) / 1e9
            details["time_to_converge_s"] = round(seconds, 3)
            details["first_round_agreed"] = first_round_agreed
            details["slowest_keys"] = [
                {"key": k, "converged_s": round(max(0, t - (origin or 0)) / 1e9, 3)}
                for k, t in slowest[:5]
            ]
            bound = "already in the first round of final reads" if first_round_agreed else ""
            details["summary"] = (
                f"{len(converged_at)} key(s) converged on every node ({len(nodes)}) within "
                f"{seconds:.3f} s of the {'heal' if context.healed_at is not None else 'final reads'}"
                + (f" ({bound})" if bound else "")
            )
        if diverged or monotonic_bad:
            # the summary leads with the failure: "converged within" beside a failed check
            # would read as a pass
            last = max((f.ret_time for reads in finals.values() for f in reads), default=0)
            after = max(0, last - (origin or 0)) / 1e9
            bad = []
            if diverged:
                bad.append(
                    f"{len(diverged)} of {len(finals)} key(s) did not converge: the nodes "
                    f"still disagreed at their last final reads, {after:.3f} s after the "
                    f"{'heal' if context.healed_at is not None else 'final reads began'}"
                )
            if monotonic_bad:
                bad.append(f"{monotonic_bad} read(s) lost elements their node had returned")
            details["summary"] = "; ".join(bad)
            parts = []
            if diverged:
                parts.append(f"{len(diverged)} key(s) did not converge")
            if monotonic_bad:
                parts.append(f"{monotonic_bad} read(s) lost what their node had returned")
            reason = f"{'; '.join(parts)}; first: {anomalies[0]['message']}"
            return CheckResult(self.name, False, reason, anomalies, details)
        if undecided:
            label, missing_nodes = undecided[0]
            return CheckResult(
                self.name,
                "unknown",
                f"{len(undecided)} key(s) have no final read through some node; first: "
                f"{label} through {', '.join(missing_nodes)}",
                anomalies,
                details,
            )
        return CheckResult(self.name, True, None, anomalies, details)

    @staticmethod
    def _diverged(key: Any, label: str, last: dict[Any, _Final]) -> dict[str, Any]:
        """The anomaly of a key whose nodes ended with different values: who has what."""
        by_node = sorted(last.items(), key=lambda kv: str(kv[0]))
        counts: dict[Hashable, int] = {}
        for _, f in by_node:
            counts[f.value] = counts.get(f.value, 0) + 1
        common = max(counts, key=lambda v: counts[v])
        odd = [n for n, f in by_node if f.value != common]
        extra: dict[str, Any] = {}
        if isinstance(common, frozenset):
            union: set[Any] = set()
            for _, f in by_node:
                union |= f.value  # type: ignore[arg-type]
            lacks = {
                str(n): _sorted(union - f.value)  # type: ignore[operator]
                for n, f in by_node
                if union - f.value  # type: ignore[operator]
            }
            parts = [f"{n} lacks {len(els)} ({_fmt(els)})" for n, els in sorted(lacks.items())]
            complete = [str(n) for n, f in by_node if str(n) not in lacks]
            if complete:
                parts.append(f"{', '.join(complete)} have all {len(union)}")
            message = f"{label} did not converge: " + "; ".join(parts) + "."
            values: dict[str, Any] = {str(n): len(f.value) for n, f in by_node}  # type: ignore[arg-type]
            extra["lacks"] = {n: [plain(e) for e in els[:100]] for n, els in lacks.items()}
            odd = [n for n, f in by_node if str(n) in lacks]
        else:
            values = {str(n): f.raw for n, f in by_node}
            message = (
                f"{label} did not converge: "
                + ", ".join(f"{n} reads {v}" for n, v in values.items())
                + "."
            )
        return {
            "type": "not-converged",
            "key": key,
            "node": odd[0] if odd else None,
            "nodes": odd,
            "values": values,
            "message": message,
            **extra,
        }
