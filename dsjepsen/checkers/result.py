"""CheckResult: the verdict every checker returns, composable and JSON-serialisable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Validity = bool | Literal["unknown"]


@dataclass
class CheckResult:
    """valid is True, False or "unknown" (with the reason in `reason`).

    `anomalies` lists what was found, each a JSON-able dict with at least `type` and a
    one-sentence `message`; `details` carries checker-specific data (counts, timings, memory,
    explanations) that reports draw from.
    """

    checker: str
    valid: Validity
    reason: str | None = None
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_validity(values: list[Validity]) -> Validity:
    """Jepsen's rule: any False makes the whole False; else any unknown makes it unknown."""
    if any(v is False for v in values):
        return False
    if any(v == "unknown" for v in values):
        return "unknown"
    return True


def compose(name: str, results: list[CheckResult]) -> CheckResult:
    """Combine several checkers' results into one."""
    valid = merge_validity([r.valid for r in results])
    reasons = [f"{r.checker}: {r.reason}" for r in results if r.reason and r.valid is not True]
    return CheckResult(
        checker=name,
        valid=valid,
        reason="; ".join(reasons) or None,
        anomalies=[a for r in results for a in r.anomalies],
        details={r.checker: r.to_dict() for r in results},
    )
