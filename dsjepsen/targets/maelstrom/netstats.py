"""Network statistics counted as Maelstrom counts them (maelstrom.net.checker).

Maelstrom journals every message its network carries, once when it is sent and once when it
is received, and reports three classes: `:clients` (a client is the source or destination:
requests, their replies, and the harness's own `init` / `topology`), `:servers` (everything
else: node to node, and node to service and back) and `:all`; per class `send-count`,
`recv-count`, `msg-count` (distinct messages, one per send) and, for `:all` and `:servers`,
`msgs-per-op` = msg-count / client operations invoked (nemesis ops excluded), the figure
Gossip Glomers' challenges grade.

Here a message crosses two parties' logs: the relay beside each node logs what its node wrote
(`out`: a send) and what was delivered to it (`in`: a receive) in `nodes/<node>/messages.jsonl`;
the controller counts what it sent to nodes (client requests, service replies) and what it
received from them (client replies, service calls). The logs survive kills (a restarted relay
appends), so the counts cover the whole run. A send without a receive was dropped by a fault
(or still in flight at the end).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

CLIENT = re.compile(r"^c\d+$")
SERVICES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")


def involves_client(entry: Mapping[str, Any]) -> bool:
    """Maelstrom's rule: a message is a client message when its source or destination is a
    client (an id starting with c)."""
    return any(
        isinstance(x, str) and CLIENT.match(x) for x in (entry.get("src"), entry.get("dest"))
    )


def read_logs(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every entry of every node's message log, one at a time (a busy run logs millions of
    messages: they are counted, never held); unreadable lines skipped."""
    for path in sorted((run_dir / "nodes").glob("*/messages.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry


#: seconds around a fault window in which a lost datagram is still the fault's (in flight
#: when the partition began, or queued behind a paused node)
FAULT_MARGIN = 1.0
#: lost-datagram entries kept as examples
LOST_EXAMPLES = 10


def network_stats(
    entries: Iterable[dict[str, Any]],
    client_ops: int,
    controller: Mapping[str, Mapping[str, int]] | None = None,
    fault_windows: list[tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """{all, clients, servers: {send-count, recv-count, msg-count[, msgs-per-op]}} from the
    relays' logs and the controller's own counts (`controller`: {"clients": {"sent",
    "received"}, "services": {"sent", "received"}}), plus what the relays dropped, the
    malformed lines they saw per node, node exits, the service traffic (part of `servers`)
    on its own, and the datagrams between nodes that never arrived (`lost`): during a fault
    (`fault_windows`, wall-clock seconds) or outside every fault, which only an overloaded
    machine causes."""
    counts = {k: {"send-count": 0, "recv-count": 0} for k in ("clients", "servers")}
    services = {"send-count": 0, "recv-count": 0}
    dropped = 0
    malformed: dict[str, int] = {}
    exits: dict[str, list[Any]] = {}
    lost = {"during-faults": 0, "outside-faults": 0, "outside-examples": []}
    windows = [(a - FAULT_MARGIN, b + FAULT_MARGIN) for a, b in fault_windows or []]
    for e in entries:
        d = e.get("dir")
        if d == "lost":
            n = int(e.get("count") or 0)
            after, before = e.get("sent_after"), e.get("sent_before")
            during = any(
                isinstance(after, float | int) and isinstance(before, float | int)
                and after <= b and before >= a
                for a, b in windows
            )  # fmt: skip
            lost["during-faults" if during else "outside-faults"] += n
            if not during and len(lost["outside-examples"]) < LOST_EXAMPLES:
                lost["outside-examples"].append(
                    {"from": e.get("peer"), "to": e.get("node"), "count": n,
                     "sent_after": after, "sent_before": before}
                )  # fmt: skip
            continue
        if d == "malformed":
            node = str(e.get("node"))
            malformed[node] = malformed.get(node, 0) + 1
        elif d == "drop":
            dropped += 1
        elif d == "exit":
            exits.setdefault(str(e.get("node")), []).append(e.get("code"))
        elif d in ("in", "out"):
            field = "send-count" if d == "out" else "recv-count"
            counts["clients" if involves_client(e) else "servers"][field] += 1
            if e.get("src") in SERVICES or e.get("dest") in SERVICES:
                services[field] += 1
    controller = controller or {}
    for cls, key in (("clients", "clients"), ("servers", "services")):
        mine = controller.get(key) or {}
        counts[cls]["send-count"] += int(mine.get("sent", 0))
        counts[cls]["recv-count"] += int(mine.get("received", 0))
        if key == "services":
            services["send-count"] += int(mine.get("sent", 0))
            services["recv-count"] += int(mine.get("received", 0))
    all_ = {f: counts["clients"][f] + counts["servers"][f] for f in ("send-count", "recv-count")}
    out: dict[str, Any] = {"all": all_, **counts}
    for name, c in out.items():
        c["msg-count"] = c["send-count"]  # every send is a message of its own
        if name != "clients" and client_ops:
            c["msgs-per-op"] = round(c["msg-count"] / client_ops, 3)
    out["services"] = services
    out["client-ops"] = client_ops
    out["lost"] = lost
    out["dropped-by-relays"] = dropped
    out["malformed-by-node"] = malformed
    if exits:
        out["node-exits"] = exits
    return out


class Bare(str):
    """A word `edn` prints as it is: a quantile key like 0.95, or a keyword like :lost-write
    (written with its colon)."""

    __slots__ = ()


def edn(value: Any, indent: int = 0) -> str:
    """Maelstrom-style (EDN-ish) rendering of a results map, for the terminal."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = []
        for k, v in value.items():
            plain = isinstance(k, str) and not isinstance(k, Bare)
            key = f":{k}" if plain and re.match(r"^[a-z][\w?-]*$", k) else str(k)
            items.append(f"{key} {edn(v, indent + len(key) + 2)}")
        return "{" + f",\n{pad} ".join(items) + "}"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "nil"
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(edn(v) for v in value) + "]"
    return str(value)
