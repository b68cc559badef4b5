"""The harness side of the HTTP contract (docs/http-kv-contract.md): `HttpKvClient` for the
registers, `ContractClient` for the whole contract, registers plus the set and counter
endpoints that CRDT stores serve. Any server that speaks the contract can be tested with them.

A transaction (`txn`, Elle's micro-ops) is `ok` only with an answer that has the same micro-ops
in the same order, reads filled; `fail` when it certainly did not happen (nothing sent, 400,
409 aborted, 503); otherwise `info`, unless it only reads (then `fail`: it changed nothing).

The register fs (read, write, cas) follow Jepsen's honesty rule: `fail` only when the operation
certainly did not and will not happen (nothing was sent, or the server said so with 503 / 409 /
404 on cas), `info` whenever it may have happened (timeout, connection lost after sending, 504,
an unexpected answer). The set and counter fs follow the same rule: an update (`add`, `increment`) is `fail` only when it certainly did not happen
(nothing was sent; 400; 503), and `info` whenever it may have (timeout or connection lost
after sending, 504, 500, any unexpected answer). A read (`read-set`, `read-counter`) changes
nothing, so a read that got no usable answer is `fail`: it is as if it never ran, and the
worker keeps its process id (the choice Jepsen's etcd client makes, see docs/architecture.md).
"""

from __future__ import annotations

import http.client
import time
from typing import Any
from urllib.parse import quote

from dsjepsen.history import Op
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import HttpJson, NotSent, completed, describe, served_by

#: the f values of the set and counter endpoints, and what each one does
CONTRACT_FS: dict[str, str] = {
    "add": "POST /set/{key} {element}: add one element to a grow-only set",
    "read-set": "GET /set/{key}: every element of the set",
    "increment": "POST /counter/{key} {delta}: add a delta (negative: a decrement)",
    "read-counter": "GET /counter/{key}: the counter's value",
    "txn": "POST /txn {txn}: one transaction of Elle's micro-ops, its reads filled in the answer",
}
#: the set and counter fs (CRDT stores serve these and nothing else of the contract)
CRDT_FS = frozenset({"add", "read-set", "increment", "read-counter"})
#: register fs served by HttpKvClient
REGISTER_FS = frozenset({"read", "write", "cas"})
READS = frozenset({"read-set", "read-counter"})
#: the key setup writes and reads back; workloads use integer keys, so it never meets theirs
SETUP_KEY = "dsjepsen-setup"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class HttpKvClient(Client):
    """One keep-alive connection to one node (see clients.HttpJson); speaks REGISTER_FS."""

    def __init__(self, host: str, port: int, timeout: float = 2.0, node: str | None = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.node = node
        self.http = HttpJson(host, port, timeout)

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on this client's connection (HttpJson.request)."""
        return self.http.request(method, path, body)

    def invoke(self, op: Op) -> Op:
        key = str(op.key)
        if op.f == "read":
            method, path, body = "GET", f"/kv/{key}", None
        elif op.f == "write":
            method, path, body = "PUT", f"/kv/{key}", {"value": op.value}
        elif op.f == "cas":
            try:
                old, new = op.value
            except (TypeError, ValueError):
                return completed(
                    op, "fail", error=f"cas value must be [old, new], got {op.value!r}"
                )
            method, path, body = "POST", f"/kv/{key}/cas", {"from": old, "to": new}
        else:
            return completed(op, "fail", error=f"unsupported operation {op.f!r}")
        try:
            status, payload = self.request(method, path, body)
        except NotSent as e:
            return completed(op, "fail", error=f"not sent: {e}")
        except TimeoutError:
            return completed(op, "info", error="timeout")
        except (OSError, http.client.HTTPException) as e:
            return completed(op, "info", error=f"connection lost: {describe(e)}")
        return served_by(_register_completion(op, status, payload), payload)


def _register_completion(op: Op, status: int, payload: Any) -> Op:
    hint = payload.get("leader") if isinstance(payload, dict) else None
    if status == 503:
        return completed(op, "fail", error={"unavailable": True, "leader": hint})
    if op.f == "read":
        if status == 200 and isinstance(payload, dict) and "value" in payload:
            return completed(op, "ok", value=payload["value"])
        if status == 404:
            return completed(op, "ok", value=None)
    elif op.f == "write":
        if status == 200:
            return completed(op, "ok")
        if status == 400:
            return completed(op, "fail", error=f"rejected: {payload}")
    elif op.f == "cas":
        if status == 200:
            return completed(op, "ok")
        if status == 409:
            return completed(op, "fail", error="cas-mismatch")
        if status == 404:
            return completed(op, "fail", error="cas-absent")
        if status == 400:
            return completed(op, "fail", error=f"rejected: {payload}")
    if status == 504:
        return completed(op, "info", error="server timeout: outcome unknown")
    # Anything else (500, a read's 200 without a value...) may hide an applied write.
    return completed(op, "info", error=f"unexpected HTTP {status}: {payload}")


class ContractClient(HttpKvClient):
    """One keep-alive connection to one node; speaks REGISTER_FS and CONTRACT_FS."""

    speaks = REGISTER_FS | frozenset(CONTRACT_FS)

    def invoke(self, op: Op) -> Op:
        if op.f not in CONTRACT_FS:
            return super().invoke(op)
        if op.f == "txn":
            return self._txn(op)
        key = quote(str(op.key), safe="")
        if op.f == "add":
            method, path, body = "POST", f"/set/{key}", {"element": op.value}
        elif op.f == "read-set":
            method, path, body = "GET", f"/set/{key}", None
        elif op.f == "increment":
            if not _is_int(op.value):
                return completed(op, "fail", error=f"delta must be an integer, got {op.value!r}")
            method, path, body = "POST", f"/counter/{key}", {"delta": op.value}
        else:
            method, path, body = "GET", f"/counter/{key}", None
        is_read = op.f in READS
        try:
            status, payload = self.request(method, path, body)
        except NotSent as e:
            return completed(op, "fail", error=f"not sent: {e}")
        except TimeoutError:
            return completed(op, "fail" if is_read else "info", error="timeout")
        except (OSError, http.client.HTTPException) as e:
            return completed(
                op, "fail" if is_read else "info", error=f"connection lost: {describe(e)}"
            )
        return _complete(op, status, payload)

    def _txn(self, op: Op) -> Op:
        mops = op.value
        if not isinstance(mops, list) or not all(isinstance(m, list) and len(m) == 3 for m in mops):
            return completed(op, "fail", error=f"txn value must be [[f, k, v], ...], got {mops!r}")
        read_only = all(m[0] == "r" for m in mops)
        unknown = "fail" if read_only else "info"
        try:
            status, payload = self.request("POST", "/txn", {"txn": mops})
        except NotSent as e:
            return completed(op, "fail", error=f"not sent: {e}")
        except TimeoutError:
            return completed(op, unknown, error="timeout")
        except (OSError, http.client.HTTPException) as e:
            return completed(op, unknown, error=f"connection lost: {describe(e)}")
        if status == 200:
            done = payload.get("txn") if isinstance(payload, dict) else None
            problem = txn_answer_problem(mops, done)
            if problem is None:
                return served_by(completed(op, "ok", value=done), payload)
            return completed(op, unknown, error=f"malformed answer: {problem}")
        if status in (400, 409, 503):
            why = {400: "rejected", 409: "aborted", 503: "unavailable"}[status]
            return served_by(
                completed(op, "fail", error={why: True, "detail": _error_text(payload)}), payload
            )
        if status == 504:
            return completed(op, unknown, error="server timeout: outcome unknown")
        return completed(op, unknown, error=f"unexpected HTTP {status}: {payload}")


def txn_answer_problem(sent: list[Any], answer: Any) -> str | None:
    """Why a transaction's answer cannot be its completion (None: it can): it must be the
    micro-ops sent, in order, with the same f and key, and every write's value unchanged."""
    if not isinstance(answer, list) or len(answer) != len(sent):
        return f"expected {len(sent)} micro-ops, got {str(answer)[:200]}"
    for i, (m, a) in enumerate(zip(sent, answer, strict=True)):
        if not isinstance(a, list) or len(a) != 3 or a[0] != m[0] or a[1] != m[1]:
            return f"micro-op {i} is {str(a)[:100]}, sent {m}"
        if m[0] != "r" and a[2] != m[2]:
            return f"micro-op {i} writes {str(a[2])[:100]}, sent {m[2]}"
    return None


def _complete(op: Op, status: int, payload: Any) -> Op:
    if status == 503:
        return completed(op, "fail", error={"unavailable": True, "detail": _error_text(payload)})
    if status == 400:
        return completed(op, "fail", error=f"rejected: {_error_text(payload)}")
    if op.f == "read-set":
        if status == 404:
            return completed(op, "ok", value=[])
        elements = payload.get("elements") if isinstance(payload, dict) else None
        if status == 200 and isinstance(elements, list):
            return completed(op, "ok", value=elements)
        return completed(op, "fail", error=f"unexpected answer HTTP {status}: {payload}")
    if op.f == "read-counter":
        if status == 404:
            return completed(op, "ok", value=0)
        value = payload.get("value") if isinstance(payload, dict) else None
        if status == 200 and _is_int(value):
            return completed(op, "ok", value=value)
        return completed(op, "fail", error=f"unexpected answer HTTP {status}: {payload}")
    if status == 200:
        return completed(op, "ok")
    if status == 504:
        return completed(op, "info", error="server timeout: outcome unknown")
    # 500, 404 on an update, anything else: it may hide an applied update
    return completed(op, "info", error=f"unexpected HTTP {status}: {payload}")


def _error_text(payload: Any) -> Any:
    if isinstance(payload, dict) and "error" in payload:
        return payload["error"]
    return payload


def setup_round_trip(client: HttpKvClient, key: str = SETUP_KEY) -> str | None:
    """Does the server serve? None when it completed a write and then a read that shows it,
    through one of the contract's endpoint families (register, set, counter, txn: a store need only
    implement the ones its workloads use); otherwise one line saying what each family answered.
    Raises what the client raises when the node cannot be reached at all."""
    value = time.time_ns()
    path = quote(key, safe="")
    answers = []
    status, body = client.request("PUT", f"/kv/{path}", {"value": value})
    if status == 200:
        status, body = client.request("GET", f"/kv/{path}")
        if status == 200 and isinstance(body, dict) and body.get("value") == value:
            return None
    answers.append(f"register: {status} {body}")
    status, body = client.request("POST", f"/set/{path}", {"element": value})
    if status == 200:
        status, body = client.request("GET", f"/set/{path}")
        elements = body.get("elements") if isinstance(body, dict) else None
        if status == 200 and isinstance(elements, list) and value in elements:
            return None
    answers.append(f"set: {status} {body}")
    status, body = client.request("POST", f"/counter/{path}", {"delta": 1})
    if status == 200:
        status, body = client.request("GET", f"/counter/{path}")
        count = body.get("value") if isinstance(body, dict) else None
        if status == 200 and isinstance(count, int) and not isinstance(count, bool) and count >= 1:
            return None
    answers.append(f"counter: {status} {body}")
    for f in ("append", "w"):  # a list-append store, then an rw-register one
        status, body = client.request("POST", "/txn", {"txn": [[f, key, value]]})
        if status == 200:
            status, body = client.request("POST", "/txn", {"txn": [["r", key, None]]})
            done = body.get("txn") if isinstance(body, dict) else None
            read = done[0][2] if isinstance(done, list) and done and len(done[0]) == 3 else None
            if status == 200 and (read == value or (isinstance(read, list) and value in read)):
                return None
        answers.append(f"txn {f}: {status} {body}")
    return "; ".join(answers)
