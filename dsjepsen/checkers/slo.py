"""Service-level objectives as a verdict: `--slo 'p99<10ms,availability>0.99'`.

A nightly chaos job asks two questions: did the system stay correct, and did it stay usable.
The checkers answer the first; this answers the second from the same history, so that CI fails
on a latency or availability regression as it fails on an anomaly. An SLO is a comma-separated
list of terms, each `METRIC<LIMIT` or `METRIC>LIMIT`:

- latency percentiles `p50`, `p90`, `p95`, `p99`, `p999` and `max`, with a unit (`ms`, `s`,
  `us`), over the ok ops of the run proper; `read.p99<10ms` restricts a term to one f;
- `availability`: ok ops / completed ops of the run proper (a fraction, or a percentage
  with `%`);
- `throughput`: ok ops per second of the run proper.

The run proper is everything before the final reads (they run after healing and would flatter
both figures). A term that is not met makes the check invalid, with the measured figure.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.errors import ConfigError
from dsjepsen.history import NEMESIS, History, Op

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999, "max": 1.0}
UNITS_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001}
TERM = re.compile(
    r"^\s*(?:(?P<f>[A-Za-z][\w-]*)\.)?(?P<metric>[a-z0-9]+)\s*(?P<op><|>)\s*"
    r"(?P<value>[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(?P<unit>ms|s|us|%)?\s*$"
)


@dataclass(frozen=True)
class Term:
    """One objective: the metric (for one f, or all), `<` or `>`, the limit (ms for latency)."""

    metric: str
    op: str
    limit: float
    f: str | None
    text: str

    def met(self, measured: float) -> bool:
        return measured < self.limit if self.op == "<" else measured > self.limit


def parse_slo(spec: str) -> list[Term]:
    """The terms of an --slo spec; ConfigError naming the first term that is not one."""
    terms = []
    for raw in spec.split(","):
        if not raw.strip():
            continue
        m = TERM.match(raw)
        if m is None:
            raise ConfigError(
                f"--slo: {raw.strip()!r} is not METRIC<LIMIT or METRIC>LIMIT (e.g. p99<10ms, "
                "availability>0.99, throughput>500)"
            )
        metric, unit, value = m["metric"], m["unit"], float(m["value"])
        if metric in PERCENTILES:
            if unit not in UNITS_MS:
                raise ConfigError(f"--slo: {raw.strip()!r}: a latency needs a unit (ms, s, us)")
            value *= UNITS_MS[unit]
        elif metric == "availability":
            if unit == "%":
                value /= 100
            elif unit is not None or value > 1:
                raise ConfigError(f"--slo: {raw.strip()!r}: availability is a fraction or a %")
        elif metric == "throughput":
            if unit is not None:
                raise ConfigError(f"--slo: {raw.strip()!r}: throughput is ok ops per second")
        else:
            known = ", ".join([*PERCENTILES, "availability", "throughput"])
            raise ConfigError(f"--slo: unknown metric {metric!r} (known: {known})")
        terms.append(Term(metric, m["op"], value, m["f"], raw.strip()))
    if not terms:
        raise ConfigError("--slo: no objective given")
    return terms


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


class SloChecker(Checker):
    """The run's service-level objectives (not registered: the run adds it for --slo)."""

    name: ClassVar[str] = "slo"
    description: ClassVar[str] = "latency, availability and throughput objectives (--slo)"

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.terms = parse_slo(spec)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        until = context.final_from_index
        latencies: dict[str | None, list[float]] = defaultdict(list)
        done: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])  # ok, completed
        open_: dict[Any, Op] = {}
        first = last = None
        for op in history.ops:
            if op.process == NEMESIS:
                continue
            if op.type == "invoke":
                if until is None or op.index < until:
                    open_[op.process] = op
                    first = op.time if first is None else first
                continue
            inv = open_.pop(op.process, None)
            if inv is None:
                continue
            last = op.time
            for f in (None, inv.f):
                done[f][1] += 1
                if op.type == "ok":
                    done[f][0] += 1
                    latencies[f].append((op.time - inv.time) / 1e6)
        seconds = max(((last or 0) - (first or 0)) / 1e9, 1e-9)
        measured: dict[str, float] = {}
        failed: list[str] = []
        for t in self.terms:
            if t.metric in PERCENTILES:
                value = _quantile(sorted(latencies.get(t.f, [])), PERCENTILES[t.metric])
                shown = f"{value:.3g} ms"
            elif t.metric == "availability":
                ok, total = done.get(t.f, [0, 0])
                value = ok / total if total else 0.0
                shown = f"{value:.4f} ({ok} of {total} completed ops ok)"
            else:
                value = done.get(t.f, [0, 0])[0] / seconds
                shown = f"{value:.1f} ok ops/s"
            measured[t.text] = round(value, 6)
            if not t.met(value):
                failed.append(f"{t.text}: measured {shown}")
        reason = "SLO not met: " + "; ".join(failed) if failed else None
        return CheckResult(
            self.name,
            not failed,
            reason,
            [{"type": "slo", "message": m} for m in failed],
            {"slo": self.spec, "measured": measured, "failed": failed},
        )
