"""availability: Maelstrom's `--availability` gate, as a checker.

`total` requires every client op of the run proper (final reads excluded) to succeed; a
fraction F requires ok / attempted >= F. Nemesis ops never count. Without a requirement it only
measures.
"""

from __future__ import annotations

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.errors import ConfigError
from dsjepsen.history import History


def parse_availability(text: str | None) -> float | None:
    """`total` -> 1.0, `0.99` -> 0.99, None -> None; anything else is a ConfigError."""
    if text is None:
        return None
    if str(text).strip().lower() == "total":
        return 1.0
    try:
        x = float(text)
    except ValueError:
        x = -1.0
    if not 0.0 <= x <= 1.0:
        raise ConfigError(f"--availability: expected total or a fraction 0..1, got {text!r}")
    return x


class AvailabilityChecker(Checker):
    name = "availability"
    description = "share of client ops that succeeded, against Maelstrom's --availability"

    def __init__(self, required: float | None = None) -> None:
        self.required = required

    def check(self, history: History, context: CheckContext) -> CheckResult:
        end = context.final_from_index
        ok = attempted = 0
        for o in history.operations():
            if end is not None and o.invoke.index >= end:
                continue
            attempted += 1
            ok += o.type == "ok"
        share = ok / attempted if attempted else None
        details = {"ok": ok, "attempted": attempted, "availability": share,
                   "required": self.required}  # fmt: skip
        if self.required is None or share is None:
            return CheckResult(self.name, True if share is not None else "unknown",
                               reason=None if share is not None else "no client ops",
                               details=details)  # fmt: skip
        if share + 1e-12 < self.required:
            return CheckResult(
                self.name,
                False,
                reason=f"availability {share:.4f} ({ok} of {attempted} ops ok) is below the "
                f"required {self.required:g}",
                details=details,
            )
        return CheckResult(self.name, True, details=details)
