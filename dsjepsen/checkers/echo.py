"""echo: every ok echo returned exactly the payload it sent (Maelstrom's echo check)."""

from __future__ import annotations

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.history import History

ECHO = "echo"
MAX_ANOMALIES = 100


class EchoChecker(Checker):
    name = "echo"
    needs = (frozenset({ECHO}),)
    description = "every echo reply carries the payload that was sent (Maelstrom's echo)"

    def check(self, history: History, context: CheckContext) -> CheckResult:
        wrong = []
        ok = 0
        for o in history.operations():
            if o.f != ECHO or o.type != "ok":
                continue
            ok += 1
            if o.output != o.value:
                wrong.append(
                    {
                        "type": "wrong-echo",
                        "op": o.to_dict(),
                        "node": o.invoke.node,
                        "message": f"sent {o.value!r} through {o.invoke.node}, got {o.output!r}",
                    }
                )
        details = {"ok": ok, "wrong": len(wrong)}
        if wrong:
            return CheckResult(
                self.name, False, reason=f"{len(wrong)} echo(es) came back different",
                anomalies=wrong[:MAX_ANOMALIES], details=details,
            )  # fmt: skip
        return CheckResult(self.name, True, details=details)
