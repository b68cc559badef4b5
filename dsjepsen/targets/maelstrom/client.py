"""The maelstrom client: dsjepsen ops as Maelstrom workload RPCs, replies as completions.

The op vocabulary is dsjepsen's, so the generic workloads run unchanged on Maelstrom nodes:

| f | request body | ok reply -> completion value |
|---|---|---|
| echo | `echo {echo}` | `echo_ok {echo}` -> the echoed payload |
| generate | `generate` | `generate_ok {id}` -> the id |
| broadcast | `broadcast {message}` | `broadcast_ok` |
| read-messages | `read` | `read_ok {messages}` -> the list |
| add (g-set) | `add {element}` | `add_ok` |
| read-set | `read` | `read_ok {value}` -> the list |
| increment | `add {delta}` | `add_ok` |
| read-counter | `read` | `read_ok {value}` -> the integer |
| read / write / cas (lin-kv) | `read {key}` / `write {key, value}` / `cas {key, from, to}` | `read_ok {value}` / `write_ok` / `cas_ok` |
| send / poll / assign / crash (kafka) | see kafka.py | |
| txn (txn-rw-register, txn-list-append) | `txn {txn}` | `txn_ok {txn}` -> the micro-ops with the reads filled |

Errors follow Maelstrom's table: definite codes (1, 10, 11, 12, 14, 20, 21, 22, 30) are `fail`,
indefinite ones (0, 13, any other) and timeouts `info`. One refinement: a lin-kv `read` answered
with 20 (key does not exist) is an `ok` read of nothing (None), which is what it observed. A
request that could not be sent at all (the node is down) is `fail`. Maelstrom's g-set, counter
and broadcast nodes hold one set or counter, so an op on any key but 0 (or none) is refused
(`fail`, saying to run with `--keys 1`).

A transaction's reply must be the request's micro-ops in order (same length, the same f and
key each, writes and appends with the value sent), reads filled with null (a key never
written, as Maelstrom's nodes answer it), a register's number or a list's numbers. Anything else is `info` with the reason: the node answered, but what it says it did
cannot be recorded as what it did, so it may or may not have happened. Maelstrom takes the
reply as it is, so a node that answers in another shape gets no verdict from dsjepsen where
Maelstrom might judge what it sent; such a node breaks the protocol either way.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from dsjepsen.history import Op
from dsjepsen.targets.base import Client
from dsjepsen.targets.contract_client import txn_answer_problem
from dsjepsen.targets.maelstrom.kafka import KAFKA_FS, KafkaSession
from dsjepsen.targets.maelstrom.net import Network

READ = "r"
DEFINITE = frozenset({1, 10, 11, 12, 14, 20, 21, 22, 30})
KEY_ABSENT = 20
#: the f values whose nodes hold one object (no key in the protocol)
SINGLE = frozenset(
    {"echo", "generate", "broadcast", "read-messages", "add", "read-set", "increment",
     "read-counter"}
)  # fmt: skip
TXN = "txn"
SPEAKS = SINGLE | {"read", "write", "cas", TXN} | KAFKA_FS
#: request type and the reply type it expects, per f
REQUEST = {
    "echo": ("echo", "echo_ok"),
    "generate": ("generate", "generate_ok"),
    "broadcast": ("broadcast", "broadcast_ok"),
    "read-messages": ("read", "read_ok"),
    "add": ("add", "add_ok"),
    "read-set": ("read", "read_ok"),
    "increment": ("add", "add_ok"),
    "read-counter": ("read", "read_ok"),
    "read": ("read", "read_ok"),
    "write": ("write", "write_ok"),
    "cas": ("cas", "cas_ok"),
    TXN: ("txn", "txn_ok"),
}


def body_for(op: Op) -> dict[str, Any]:
    """The request body for an op (without msg_id)."""
    kind = REQUEST[op.f][0]
    v = op.value
    if op.f == "echo":
        return {"type": kind, "echo": v}
    if op.f == "broadcast":
        return {"type": kind, "message": v}
    if op.f == "add":
        return {"type": kind, "element": v}
    if op.f == "increment":
        return {"type": kind, "delta": v}
    if op.f == "read":
        return {"type": kind, "key": op.key}
    if op.f == "write":
        return {"type": kind, "key": op.key, "value": v}
    if op.f == "cas":
        old, new = v
        return {"type": kind, "key": op.key, "from": old, "to": new}
    if op.f == TXN:
        return {"type": kind, "txn": [list(m) for m in v]}
    return {"type": kind}


def value_from(op: Op, body: dict[str, Any]) -> tuple[bool, Any]:
    """(well formed, completion value) of an ok reply."""
    f = op.f
    if f == "echo":
        return "echo" in body, body.get("echo")
    if f == "generate":
        return "id" in body, body.get("id")
    if f == "read-messages":
        return isinstance(body.get("messages"), list), body.get("messages")
    if f == "read-set":
        return isinstance(body.get("value"), list), body.get("value")
    if f == "read-counter":
        v = body.get("value")
        return isinstance(v, int) and not isinstance(v, bool), v
    if f == "read":
        return "value" in body, body.get("value")
    return True, op.value


def _number(x: Any) -> Any:
    """A whole float (a node whose JSON library writes 3 as 3.0) as the int it stands for,
    so that the checkers match it with the write of 3; anything else unchanged."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, list):
        return [_number(e) for e in x]
    return x


def _readable(x: Any) -> bool:
    """What a read may return: null (never written), a register's number, a list's numbers."""
    if isinstance(x, list):
        return all(_readable(e) and not isinstance(e, list) for e in x)
    return x is None or (isinstance(x, int | float) and not isinstance(x, bool))


def txn_from(sent: Any, got: Any) -> tuple[str | None, list[list[Any]] | None]:
    """(None, the completed micro-ops) when `got`, a txn_ok's `txn`, completes the
    transaction `sent` (the contract client's rule: the micro-ops sent, in order, the same f
    and key, writes unchanged); else (what is wrong with it, None). Keys and written values
    are the ones sent; reads carry what the node returned, whole numbers as ints."""
    problem = txn_answer_problem(sent, got)
    if problem is not None:
        return problem, None
    out: list[list[Any]] = []
    for i, ((f, k, v), mop) in enumerate(zip(sent, got, strict=True)):
        value = _number(mop[2]) if f == READ else v
        if not _readable(value):
            return f"micro-op {i} read {str(mop[2])[:40]}: not null, a number or a list", None
        out.append([f, k, value])
    return None, out


class MaelstromClient(Client):
    """One Maelstrom client (c1, c2, ...) bound to one node."""

    def __init__(
        self,
        net: Network,
        node: str,
        client_id: str,
        timeout: float,
    ) -> None:
        self.net = net
        self.node = node
        self.id = client_id
        self.timeout = timeout
        self.kafka = KafkaSession(lambda body: net.rpc(node, client_id, body, timeout))

    def invoke(self, op: Op) -> Op:
        if op.f in KAFKA_FS:
            return self._kafka(op)
        if op.f not in REQUEST:
            return replace(op, type="fail", error=f"the maelstrom client does not speak {op.f!r}")
        if op.f in SINGLE and op.key not in (None, 0):
            return replace(
                op,
                type="fail",
                error="Maelstrom nodes hold one set / counter: run with --keys 1",
            )
        reply, why, sent = self.net.rpc(self.node, self.id, body_for(op), self.timeout)
        if reply is None:
            return replace(op, type="info" if sent else "fail", error=why or "no reply")
        kind = reply.get("type")
        if kind == "error":
            code = reply.get("code")
            text = reply.get("text")
            error = {"code": code, "text": text} if text is not None else {"code": code}
            if op.f == "read" and code == KEY_ABSENT:
                return replace(op, type="ok", value=None)
            definite = isinstance(code, int) and code in DEFINITE
            return replace(op, type="fail" if definite else "info", error=error)
        expected = REQUEST[op.f][1]
        if kind != expected:
            return replace(op, type="info", error=f"expected {expected}, got {kind!r}")
        if op.f == TXN:
            problem, mops = txn_from(op.value, reply.get("txn"))
            if problem is not None:
                return replace(op, type="info", error=f"malformed txn_ok: {problem}")
            return replace(op, type="ok", value=mops)
        ok, value = value_from(op, reply)
        if not ok:
            return replace(op, type="info", error=f"malformed {kind}: {str(reply)[:200]}")
        return replace(op, type="ok", value=value)

    def _kafka(self, op: Op) -> Op:
        """Maelstrom's kafka client (kafka.py): this client's offsets live in self.kafka."""
        if op.f == "crash":
            return replace(op, type="info", error="crashed: a fresh client takes over")
        if op.f == "send":
            typ, value, err = self.kafka.send(op.key, op.value)
        elif op.f == "poll":
            typ, value, err = self.kafka.poll()
        else:
            typ, value, err = self.kafka.assign(op.value)
        return replace(op, type=typ, value=value, error=err)


class ClientIds:
    """c1, c2, ...: a fresh id per client, as Maelstrom names its clients."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            self.n += 1
            return f"c{self.n}"
