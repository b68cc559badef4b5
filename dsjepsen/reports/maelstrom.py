"""The Maelstrom section of the report: the figures Maelstrom prints and Gossip Glomers grades.

For a run of a Maelstrom node (results.json has a `maelstrom` or `target` part with `net`):
the network statistics counted as Maelstrom counts them (sends, receives, messages per op, and
messages lost between nodes, inside faults or outside every fault), the broadcast's stable
latencies (Jepsen's quantiles), and the kafka checker's findings: every error type with its
count, and each kept finding with the ops that prove it (linked to the timeline), including the
ones that do not fail the run (committed offsets going back).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dsjepsen.reports.rundata import RunData


@dataclass
class Finding:
    type: str
    key: str
    message: str
    ops: list[dict[str, Any]]
    fatal: bool


@dataclass
class MaelstromView:
    net: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lost: dict[str, Any] = field(default_factory=dict)
    stable: dict[str, Any] = field(default_factory=dict)
    kafka_counts: list[tuple[str, int, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    untrustworthy: str | None = None


def view(run: RunData) -> MaelstromView | None:
    """The section's data, or None when the run is not a Maelstrom one."""
    results = run.results or {}
    part = results.get("maelstrom") or results.get("target") or {}
    checks = results.get("checks") or {}
    net = part.get("net") if isinstance(part, dict) else None
    kafka = checks.get("kafka") if isinstance(checks, dict) else None
    stable = None
    for name, check in checks.items() if isinstance(checks, dict) else ():
        det = check.get("details") if isinstance(check, dict) else None
        # a broadcast's, or any set checker's in a Maelstrom run (a crdt-kv g-set run's are
        # the Replicas section's stale windows, not a Maelstrom figure)
        maelstrom_run = isinstance(net, dict) or name == "broadcast"
        if maelstrom_run and isinstance(det, dict) and det.get("stable_latencies_ms"):
            stable = det["stable_latencies_ms"]
            break
    if not isinstance(net, dict) and not kafka and not stable:
        return None
    v = MaelstromView()
    if isinstance(net, dict):
        v.net = [(k, net[k]) for k in ("all", "clients", "servers") if isinstance(net.get(k), dict)]
        lost = net.get("lost")
        if isinstance(lost, dict) and (lost.get("during-faults") or lost.get("outside-faults")):
            v.lost = lost
    if isinstance(part, dict):
        v.untrustworthy = part.get("untrustworthy")
    if stable:
        v.stable = stable
    if isinstance(kafka, dict):
        det = kafka.get("details") or {}
        what = det.get("what") or {}
        counts = det.get("counts") or {}
        v.kafka_counts = [(t, n, str(what.get(t, ""))) for t, n in counts.items()]
        info = det.get("info") or {}
        for a in [*(kafka.get("anomalies") or []), *(x for xs in info.values() for x in xs)]:
            if isinstance(a, dict):
                v.findings.append(
                    Finding(
                        str(a.get("type")),
                        str(a.get("key")),
                        str(a.get("message")),
                        [o for o in a.get("ops") or [] if isinstance(o, dict)],
                        a.get("type") in (det.get("error_types") or []),
                    )
                )
    return v
