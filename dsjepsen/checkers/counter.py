"""counter: every read of a counter within Jepsen's bounds, every final read a sum that the
increments can make (Maelstrom's rule).

Ops: `increment` (value = an integer delta, negative for a decrement) and `read-counter`
(value = the count, on ok); Jepsen's spelling (`add` / `read`) is accepted when a history has
neither of ours. Keys are independent; a key never incremented counts from 0.

## Bounds on a read (derived for deltas of either sign)

A read r returns the sum of the deltas applied when it was served: some set A of increments
with D <= A <= P, where

- D (definitely applied) = the `ok` increments that completed before r was invoked;
- P (possibly applied) = D plus every increment invoked before r completed whose outcome is
  `ok`, `info` or unknown (a `fail` certainly never happened; an increment invoked after r
  completed cannot be in it).

The smallest sum over such A adds to D every possibly applied negative delta, the largest
every possibly applied positive one:

    lower = sum(d in D, d > 0) + sum(d in P, d < 0)
    upper = sum(d in P, d > 0) + sum(d in D, d < 0)

With only positive deltas this is exactly Jepsen's counter checker (lower: ok adds completed
before the read began; upper: adds invoked before it ended, `info` included).

Which increments count as definitely applied depends on the store: for a linearizable
counter, every ok increment (`lower="global"`, Jepsen's rule). A CRDT replica only promises to
have applied the increments acknowledged *through itself* (an update is applied at the
replica that takes it, then gossiped), so the CRDT workloads use `lower="node"`: D holds only
the ok increments through the read's own node. Without the argument the checker follows
`CheckContext.consistency` ("linearizable" -> global, anything else -> node). The upper bound
is the same in both modes.

## Final reads (Maelstrom's rule)

After faults are healed and the run stops incrementing, every increment is over, so each
node's last final read of a counter (from `CheckContext.final_from_index` on; the run repeats
them in rounds until the nodes agree, and earlier rounds may still be catching up) must equal
exactly the sum of the `ok` deltas plus the sum of *some subset* of the indeterminate (`info`
or never completed) deltas: each of those either happened or did not. The achievable sums are computed by subset-sum over the
indeterminate deltas (a bitset over the range [sum of negatives, sum of positives]; when that
range is too wide, a capped set of sums, and past the cap only the range, said so in
`details`). Any other value is invalid: over-counting (a merge that adds), or increments lost
or not yet propagated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.set_full import paused_gc
from dsjepsen.history import NEMESIS, History

INCREMENT = "increment"
READ_COUNTER = "read-counter"
JEPSEN_ADD = "add"
JEPSEN_READ = "read"
MAX_ANOMALIES = 100
#: widest range of sums the bitset covers (bits); wider ranges use a capped set of sums
MAX_BITSET_WIDTH = 4_000_000
#: most distinct sums kept when the range is too wide for a bitset
MAX_SUMS = 200_000
#: indeterminate deltas listed in a message
SHOWN_DELTAS = 8
LOWER_MODES = ("global", "node")


def counter_vocabulary(history: History) -> tuple[str, str]:
    """(increment f, read f): ours, or Jepsen's (add / read) when no op uses ours."""
    for op in history.ops:
        if op.f in (INCREMENT, READ_COUNTER):
            return INCREMENT, READ_COUNTER
    return JEPSEN_ADD, JEPSEN_READ


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class SubsetSums:
    """The sums of every subset of some integer deltas, with a membership test."""

    def __init__(self, deltas: list[int]):
        self.deltas = [d for d in deltas if d]
        self.low = sum(d for d in self.deltas if d < 0)
        self.high = sum(d for d in self.deltas if d > 0)
        self.exact = True
        self._bits: int | None = None
        self._sums: set[int] | None = None
        if self.high - self.low <= MAX_BITSET_WIDTH:
            bits = 1 << -self.low  # bit (s - low) is set when the sum s is reachable
            for d in self.deltas:
                bits |= (bits << d) if d > 0 else (bits >> -d)
            self._bits = bits
            return
        sums = {0}
        for d in self.deltas:
            sums |= {s + d for s in sums}
            if len(sums) > MAX_SUMS:
                self.exact = False  # only the range is known
                self._sums = None
                return
        self._sums = sums

    def __contains__(self, value: int) -> bool:
        if not self.low <= value <= self.high:
            return False
        if self._bits is not None:
            return bool((self._bits >> (value - self.low)) & 1)
        if self._sums is not None:
            return value in self._sums
        return True  # not exact: anything in the range

    def describe(self, limit: int = 12) -> str:
        if self._bits is not None and self.high - self.low < 64:
            sums = [s for s in range(self.low, self.high + 1) if s in self]
            if len(sums) <= limit:
                return "{" + ", ".join(map(str, sums)) + "}"
        return f"sums between {self.low} and {self.high}"


@dataclass
class _Key:
    """Running sums of one key during the sweep."""

    poss_pos: int = 0  # positive deltas of increments invoked so far that may apply
    poss_neg: int = 0
    def_pos: dict[Any, int] = field(default_factory=dict)  # scope -> ok positives so far
    def_neg: dict[Any, int] = field(default_factory=dict)
    ok_sum: int = 0
    indeterminate: list[int] = field(default_factory=list)
    reads: int = 0
    final_reads: int = 0
    violations: int = 0


def _signed(d: int) -> str:
    return f"{d:+d}"


class CounterChecker(Checker):
    name = "counter"
    needs = (frozenset({INCREMENT, READ_COUNTER}), frozenset({JEPSEN_ADD, JEPSEN_READ}))
    description = (
        "counters: every read within Jepsen's bounds (signed deltas), every final read the ok "
        "sum plus a subset of the indeterminate deltas (Maelstrom's rule)"
    )

    def __init__(self, lower: str | None = None):
        if lower is not None and lower not in LOWER_MODES:
            raise ValueError(f"lower must be one of {LOWER_MODES}, not {lower!r}")
        self.lower = lower

    def check(self, history: History, context: CheckContext | None = None) -> CheckResult:
        with paused_gc():
            return self._check(history, context or CheckContext())

    def _check(self, history: History, context: CheckContext) -> CheckResult:
        lower = self.lower or ("global" if context.consistency == "linearizable" else "node")
        per_node = lower == "node"
        inc_f, read_f = counter_vocabulary(history)
        ops = history.ops
        final_from = context.final_from_index
        # Pass 1: every invocation's completion (type, position), per process.
        completion: dict[int, tuple[str, int]] = {}
        pending: dict[Any, int] = {}
        for pos, op in enumerate(ops):
            if op.process == NEMESIS or (op.f != inc_f and op.f != read_f):
                continue
            if op.type == "invoke":
                pending[op.process] = pos
            else:
                ipos = pending.pop(op.process, None)
                if ipos is not None:
                    completion[ipos] = (op.type, pos)
        # Pass 2: sweep in history order, keeping the sums each read's bounds need.
        keys: dict[Any, _Key] = {}
        open_: dict[Any, int] = {}
        snapshots: dict[int, tuple[int, int]] = {}  # read invoke position -> (def +, def -)
        anomalies: list[dict[str, Any]] = []
        violations = 0
        malformed = 0
        finals: list[tuple[Any, Any, int, int]] = []  # key, node, value, ret time
        for pos, op in enumerate(ops):
            if op.process == NEMESIS or (op.f != inc_f and op.f != read_f):
                continue
            if op.type == "invoke":
                open_[op.process] = pos
                k = keys.get(op.key)
                if k is None:
                    k = keys[op.key] = _Key()
                typ = completion.get(pos, ("info", -1))[0]
                if op.f == inc_f:
                    if typ == "fail":
                        continue
                    d = op.value
                    if not _is_int(d):
                        malformed += 1
                        continue
                    if d > 0:
                        k.poss_pos += d
                    else:
                        k.poss_neg += d
                    if typ != "ok":
                        k.indeterminate.append(d)
                elif typ == "ok":
                    scope = op.node if per_node else None
                    snapshots[pos] = (k.def_pos.get(scope, 0), k.def_neg.get(scope, 0))
                continue
            ipos = open_.pop(op.process, None)
            if ipos is None or op.type != "ok":
                continue
            inv = ops[ipos]
            k = keys[inv.key]
            node = inv.node or op.node
            if inv.f == inc_f:
                d = inv.value
                if not _is_int(d):
                    continue
                scope = node if per_node else None
                if d > 0:
                    k.def_pos[scope] = k.def_pos.get(scope, 0) + d
                else:
                    k.def_neg[scope] = k.def_neg.get(scope, 0) + d
                k.ok_sum += d
                continue
            snap = snapshots.pop(ipos, None)
            if snap is None:
                continue
            def_pos, def_neg = snap
            v = op.value
            k.reads += 1
            if not _is_int(v):
                malformed += 1
                continue
            lo = def_pos + k.poss_neg
            hi = k.poss_pos + def_neg
            if final_from is not None and inv.index >= final_from:
                k.final_reads += 1
                finals.append((inv.key, node, v, op.time))
            if lo <= v <= hi:
                continue
            violations += 1
            k.violations += 1
            if len(anomalies) < MAX_ANOMALIES:
                signed = k.poss_neg != 0
                anomalies.append(
                    self._bounds_anomaly(inv.key, node, v, lo, hi, inv.time, op.time, lower, signed)
                )
        # Final reads: the ok sum plus a subset of the indeterminate deltas.
        reach: dict[Any, SubsetSums] = {}
        final_bad = 0
        last: dict[tuple[Any, Any], tuple[Any, Any, int, int]] = {}
        for fr in finals:  # completion order: each node's last final read of each key
            last[(fr[0], fr[1])] = fr
        for key, node, v, ret_t in last.values():
            k = keys[key]
            sums = reach.get(key)
            if sums is None:
                sums = reach[key] = SubsetSums(k.indeterminate)
            if v - k.ok_sum in sums:
                continue
            final_bad += 1
            k.violations += 1
            if len(anomalies) < MAX_ANOMALIES:
                anomalies.append(self._final_anomaly(key, node, v, k, sums, ret_t))
        details: dict[str, Any] = {
            "vocabulary": {"increment": inc_f, "read": read_f},
            "lower_bound": lower,
            "reads": sum(k.reads for k in keys.values()),
            "out_of_bounds": violations,
            "final_reads": len(finals),
            "judged_final_reads": len(last),
            "bad_final_reads": final_bad,
            "malformed": malformed,
            "keys": {
                str(key): {
                    "ok_sum": k.ok_sum,
                    "indeterminate": len(k.indeterminate),
                    "possible_final": (
                        [k.ok_sum + reach[key].low, k.ok_sum + reach[key].high]
                        if key in reach
                        else None
                    ),
                    "exact": reach[key].exact if key in reach else None,
                    "reads": k.reads,
                    "final_reads": k.final_reads,
                    "violations": k.violations,
                }
                for key, k in list(keys.items())[:100]
            },
        }
        if violations or final_bad:
            parts = []
            if violations:
                parts.append(f"{violations} read(s) out of bounds")
            if final_bad:
                parts.append(f"{final_bad} final read(s) no set of increments can explain")
            reason = f"{'; '.join(parts)}; first: {anomalies[0]['message']}"
            return CheckResult(self.name, False, reason, anomalies, details)
        if malformed:
            return CheckResult(
                self.name,
                "unknown",
                f"{malformed} op(s) with a non-integer delta or read value",
                anomalies,
                details,
            )
        if details["reads"] == 0:
            return CheckResult(self.name, "unknown", "no read completed ok", anomalies, details)
        return CheckResult(self.name, True, None, anomalies, details)

    @staticmethod
    def _bounds_anomaly(
        key: Any,
        node: str | None,
        v: int,
        lo: int,
        hi: int,
        call_t: int,
        ret_t: int,
        lower: str,
        signed: bool,
    ) -> dict[str, Any]:
        through = f" through {node}" if node else ""
        when = f"invoked at {call_t / 1e9:.3f} s, completed at {ret_t / 1e9:.3f} s"
        scope = f" through {node}" if lower == "node" and node else ""
        if v > hi:
            why = (
                f"above the upper bound {hi} (every increment that may have been applied by its end"
            )
            why += f", and the ok decrements{scope} completed before it began)" if signed else ")"
        else:
            why = f"below the lower bound {lo} (the ok increments{scope} completed before it began"
            why += ", and every decrement that may have been applied by its end)" if signed else ")"
        return {
            "type": "out-of-bounds",
            "key": key,
            "node": node,
            "value": v,
            "lower": lo,
            "upper": hi,
            "call_time": call_t,
            "ret_time": ret_t,
            "message": f"a read of counter {key!r}{through} ({when}) returned {v}, {why}.",
        }

    @staticmethod
    def _final_anomaly(
        key: Any, node: str | None, v: int, k: _Key, sums: SubsetSums, ret_t: int
    ) -> dict[str, Any]:
        through = f" through {node}" if node else ""
        n = len(sums.deltas)
        if n == 0:
            why = f"the ok increments sum to {k.ok_sum} and none was indeterminate"
        else:
            shown = ", ".join(_signed(d) for d in sums.deltas[:SHOWN_DELTAS])
            more = ", ..." if n > SHOWN_DELTAS else ""
            why = (
                f"the ok increments sum to {k.ok_sum} and the {n} indeterminate one(s) "
                f"({shown}{more}) can add only {sums.describe()}"
            )
        return {
            "type": "final-read",
            "key": key,
            "node": node,
            "value": v,
            "ok_sum": k.ok_sum,
            "indeterminate": sums.deltas[:100],
            "ret_time": ret_t,
            "message": (
                f"the final read of counter {key!r}{through} (completed at {ret_t / 1e9:.3f} s) "
                f"returned {v}, but {why}."
            ),
        }
