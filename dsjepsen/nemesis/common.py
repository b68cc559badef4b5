"""Pieces every nemesis shares: honest completions and leader lookup.

A nemesis completion is the only record of what a fault did, and the runner's vacuous-run
check counts `ok` fault completions, so `ok` means "done, exactly as described"; `fail` means
nothing was done (with the reason); `info` means we tried and may have done part of it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target


def fault_name(op: Op, default: str) -> str:
    """The catalog name an op asks for (schedule ops carry it in value["fault"])."""
    if isinstance(op.value, dict) and isinstance(op.value.get("fault"), str):
        return op.value["fault"]
    return default


def complete(op: Op, type: str, value: dict[str, Any], error: Any = None) -> Op:
    return dataclasses.replace(op, type=type, value=value, error=error)


def done(op: Op, fault: str, nodes: list[str], description: str, **data: Any) -> Op:
    """The fault happened exactly as described."""
    return complete(op, "ok", {"fault": fault, "nodes": nodes, "description": description, **data})


def not_done(op: Op, fault: str, reason: str, **data: Any) -> Op:
    """Nothing was done; the reason says why."""
    return complete(
        op,
        "fail",
        {"fault": fault, "nodes": [], "description": f"not applied: {reason}", **data},
        error=reason,
    )


def maybe_done(op: Op, fault: str, nodes: list[str], tried: str, error: str, **data: Any) -> Op:
    """We tried and something went wrong part way: the fault may be partly in effect."""
    return complete(
        op,
        "info",
        {
            "fault": fault,
            "nodes": nodes,
            "description": f"tried to {tried}, outcome unknown: {error}",
            **data,
        },
        error=error,
    )


def process_nodes(target: Target, cluster: Cluster) -> list[str]:
    """The cluster's nodes where the target runs a process (`Target.process_nodes`), in the
    cluster's order; every node when the target names none of them or its answer fails (a
    target's answer must not stop a fault)."""
    try:
        mine = set(target.process_nodes(cluster))
    except Exception:  # noqa: BLE001
        mine = set()
    return [n for n in cluster.names if n in mine] or list(cluster.names)


#: the longest `observe_restart` watches a restarted target: a store that checks its files
#: at start has read them and stopped, or serves, well within this (a loaded 2-core machine
#: took more than 3 s to start a Python server)
OBSERVE_S = 20.0


def observe_restart(target: Target, cluster: Cluster, node: str) -> dict[str, Any]:
    """Whether the target just restarted on `node` came back: {"running", "serving"}, and if
    it has exited, its log's last lines ("log_tail"): what a store did about damage to its
    files (refused to start, crashed, carried on). Watched until it exits or serves (the
    target's `ready`, when it has one), at most OBSERVE_S; through the node's remote."""
    remote = cluster.remote(node)
    ready = getattr(target, "ready", None)
    deadline = time.monotonic() + OBSERVE_S
    while True:
        time.sleep(0.5)
        pid = target.pid(cluster, node)
        running = pid is not None and (
            remote.run(["test", "-d", f"/proc/{pid}"], timeout=30.0, check=False).exit == 0
        )
        try:
            serving = running and callable(ready) and bool(ready(cluster, cluster.node(node)))
        except Exception:  # noqa: BLE001 - a failed readiness probe is "not yet"
            serving = False
        if not running or serving or time.monotonic() > deadline:
            break
    seen: dict[str, Any] = {"running": running, "serving": serving}
    if not running:
        logs = target.log_files(cluster, node)
        if logs:
            res = remote.run(["tail", "-n", "4", "--", logs[0]], timeout=30.0, check=False)
            seen["log_tail"] = res.stdout.strip()[-800:]
    return seen


def restart_shown(after: dict[str, dict[str, Any]]) -> str:
    """`observe_restart`'s findings in words: "n1 runs; n2 exited (its last log line)"."""

    def last(text: str) -> str:
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1][-300:] if lines else "no log"

    def one(n: str, a: dict[str, Any]) -> str:
        if a["serving"]:
            return f"{n} serves"
        if a["running"]:
            return f"{n} runs, not serving after {OBSERVE_S:g} s"
        return f"{n} exited ({last(a.get('log_tail', ''))})"

    return "; ".join(one(n, a) for n, a in after.items())


def find_leader(target: Target, cluster: Cluster) -> tuple[str | None, str]:
    """(leader, "") when the target names a node of the cluster, else (None, reason)."""
    try:
        leader = target.leader(cluster)
    except Exception as e:  # a lookup that fails is "unknown", never fatal to the run
        return None, f"leader lookup failed: {e}"
    if leader is None:
        return None, f"{target.name} reported no leader"
    if leader not in cluster.names:
        return None, f"{target.name} reported leader {leader!r}, which is not a cluster node"
    return leader, ""
