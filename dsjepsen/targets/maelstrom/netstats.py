"""Network statistics as Maelstrom reports them, from the relays' message logs.

Every relay logs each message it carries (`out`: the node wrote it; `in`: delivered to the
node) in `nodes/<node>/messages.jsonl` of the run directory. Counted here, per class of
traffic (servers: node to node; clients: the harness's clients to nodes and back; services:
nodes to lin-kv & co. and back):

- send-count: messages sent (servers: written by a node to a peer; clients: requests delivered
  to nodes, replies written by nodes);
- recv-count: messages received (servers: delivered to a node from a peer, so send - recv is
  what the network lost or what was still in flight);
- msgs-per-op: server messages sent per client operation, Maelstrom's cost figure.

The logs survive kills (each restart appends), so the counts cover the whole run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SERVER = re.compile(r"^n\d+$")
CLIENT = re.compile(r"^c\d+$")
SERVICES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")


def _kind(name: Any) -> str:
    if isinstance(name, str):
        if SERVER.match(name):
            return "server"
        if CLIENT.match(name):
            return "client"
        if name in SERVICES:
            return "service"
    return "other"


def read_logs(run_dir: Path) -> list[dict[str, Any]]:
    """Every entry of every node's message log (unreadable lines skipped)."""
    out: list[dict[str, Any]] = []
    for path in sorted((run_dir / "nodes").glob("*/messages.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    out.append(entry)
    return out


def network_stats(entries: Iterable[dict[str, Any]], client_ops: int) -> dict[str, Any]:
    """{all, clients, servers, services: {send-count, recv-count, msg-count, msgs-per-op}},
    plus what the relays dropped and the malformed lines they saw, per node."""
    classes = {k: {"send-count": 0, "recv-count": 0} for k in ("clients", "servers", "services")}
    dropped = 0
    malformed: dict[str, int] = {}
    exits: dict[str, list[Any]] = {}
    for e in entries:
        d = e.get("dir")
        src, dest = _kind(e.get("src")), _kind(e.get("dest"))
        if d == "malformed":
            node = str(e.get("node"))
            malformed[node] = malformed.get(node, 0) + 1
            continue
        if d == "drop":
            dropped += 1
            continue
        if d == "exit":
            exits.setdefault(str(e.get("node")), []).append(e.get("code"))
            continue
        if d not in ("in", "out"):
            continue
        if src == "server" and dest == "server":
            if e.get("src") == e.get("dest"):
                continue  # a node's message to itself never crossed the network
            classes["servers"]["send-count" if d == "out" else "recv-count"] += 1
        elif "client" in (src, dest):
            # a client's request is delivered to a node ("in"), its reply leaves one ("out")
            classes["clients"]["send-count" if d == "in" else "recv-count"] += 1
        elif "service" in (src, dest):
            classes["services"]["send-count" if d == "out" else "recv-count"] += 1
    all_ = {
        "send-count": sum(c["send-count"] for c in classes.values()),
        "recv-count": sum(c["recv-count"] for c in classes.values()),
    }
    out: dict[str, Any] = {"all": all_, **classes}
    for c in out.values():
        c["msg-count"] = c["send-count"]
        c["msgs-per-op"] = round(c["send-count"] / client_ops, 3) if client_ops else None
    out["dropped-by-relays"] = dropped
    out["malformed-by-node"] = malformed
    if exits:
        out["node-exits"] = exits
    return out


def edn(value: Any, indent: int = 0) -> str:
    """Maelstrom-style (EDN-ish) rendering of a results map, for the terminal."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = []
        for k, v in value.items():
            key = f":{k}" if isinstance(k, str) and re.match(r"^[a-z][\w?-]*$", k) else str(k)
            items.append(f"{key} {edn(v, indent + len(key) + 2)}")
        return "{" + f",\n{pad} ".join(items) + "}"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "nil"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(edn(v) for v in value) + "]"
    return str(value)
