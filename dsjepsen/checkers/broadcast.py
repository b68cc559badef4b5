"""broadcast: Maelstrom's broadcast check, on the set checkers.

Every acknowledged broadcast message must be in every node's final read. The history's
`broadcast` / `read-messages` ops are the g-set's `add` / `read-set` under other names (a
broadcast system is a grow-only set of messages), so this checker renames them and asks
set-full (nothing lost, nothing phantom, stale windows, and Maelstrom's stable latencies, which
the result repeats at its top level as Maelstrom's does) and
convergence (every node's final read the same) for their verdicts, unchanged.
"""

from __future__ import annotations

from dataclasses import replace

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.result import CheckResult, compose
from dsjepsen.checkers.set_full import ADD, READ_SET, SetFullChecker
from dsjepsen.history import History

BROADCAST, READ_MESSAGES = "broadcast", "read-messages"
RENAME = {BROADCAST: ADD, READ_MESSAGES: READ_SET}


def as_set_history(history: History) -> History:
    """The same history with broadcast ops as set ops on one set (key 0)."""
    ops = [
        replace(op, f=RENAME[op.f], key=0 if op.key is None else op.key) if op.f in RENAME else op
        for op in history.ops
    ]
    return History(ops, source=history.source, warnings=list(history.warnings))


class BroadcastChecker(Checker):
    name = "broadcast"
    needs = (frozenset({BROADCAST, READ_MESSAGES}),)
    description = (
        "every acknowledged broadcast message is in every node's final read (set-full and "
        "convergence over the broadcast messages)"
    )

    def check(self, history: History, context: CheckContext) -> CheckResult:
        as_set = as_set_history(history)
        results = [c.check(as_set, context) for c in (SetFullChecker(), ConvergenceChecker())]
        out = compose(self.name, results)
        # Maelstrom's broadcast results carry :stable-latencies at the workload's top level
        latencies = results[0].details.get("stable_latencies_ms")
        details = {**out.details, "stable_latencies_ms": latencies}
        return CheckResult(
            self.name, out.valid, reason=out.reason, anomalies=out.anomalies, details=details
        )
