"""The replicated state machine: a map from string keys to JSON values.

Commands are applied in log order on every node; the result of a command (for cas: whether it
matched; for a transaction: what its reads returned) is decided here, at apply time, so that
every replica reaches the same verdict. A transaction (`{"op": "txn", "txn": [[f, k, v], ...]}`,
Elle's micro-ops: `r`, `w`, `append`) is one command: all its micro-ops apply at one point of
the log, which is what makes the store's transactions strict serializable.
"""

from __future__ import annotations

from typing import Any

from .lease import Leases

ABSENT = object()
#: Elle's micro-op names: read, write (rw-register), append (list-append)
READ, WRITE, APPEND = "r", "w", "append"
MICRO_OPS = (READ, WRITE, APPEND)


def validate_txn(txn: Any) -> list[list[Any]]:
    """The micro-ops of a transaction's request body, or ValueError naming what is wrong
    (the server answers it with 400 before anything is proposed)."""
    if not isinstance(txn, list) or not txn:
        raise ValueError("txn must be a non-empty list of [f, key, value] micro-ops")
    out = []
    for i, mop in enumerate(txn):
        if not isinstance(mop, list) or len(mop) != 3 or mop[0] not in MICRO_OPS:
            raise ValueError(f"micro-op {i}: expected [f, key, value] with f one of {MICRO_OPS}")
        if isinstance(mop[1], list | dict):
            raise ValueError(f"micro-op {i}: a key is a string or a number")
        out.append(list(mop))
    return out


class KV:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.leases = Leases()

    def get(self, key: str) -> Any:
        return self.data.get(key, ABSENT)

    def apply(self, cmd: dict[str, Any], index: int = 0) -> tuple[str, Any]:
        """Apply one command, the log's entry `index`; returns (outcome, current value):
        outcome is "ok", "mismatch" (cas saw another value, a lease someone else holds) or
        "absent" (cas on a missing key)."""
        op = cmd.get("op")
        if op in ("lock-grant", "lock-release"):
            return self.leases.apply(cmd, index)
        if op == "put":
            self.data[cmd["key"]] = cmd["value"]
            return "ok", cmd["value"]
        if op == "cas":
            cur = self.data.get(cmd["key"], ABSENT)
            if cur is ABSENT:
                return "absent", None
            if cur != cmd["from"]:
                return "mismatch", cur
            self.data[cmd["key"]] = cmd["to"]
            return "ok", cmd["to"]
        if op == "txn":
            return self.apply_txn(cmd["txn"], cmd.get("reads"))
        return "ok", None  # noop (a new leader's first entry) and unknown commands

    def apply_txn(self, txn: list[list[Any]], reads: list[Any] | None = None) -> tuple[str, Any]:
        """Apply one transaction atomically; returns ("ok", the micro-ops with reads filled) or
        ("invalid", why) when an append meets a value that is not a list (then nothing of it
        applies). `reads`, when given, are values read before the command reached the log (the
        txn-stale-snapshot bug): they are returned as they are, and only the writes apply."""
        staged: dict[str, Any] = {}
        out = []
        for i, (f, k, v) in enumerate(txn):
            key = str(k)
            cur = staged[key] if key in staged else self.data.get(key, ABSENT)
            if f == READ:
                if reads is not None:
                    value = reads[i]
                else:
                    value = None if cur is ABSENT else (list(cur) if isinstance(cur, list) else cur)
                out.append([f, k, value])
                continue
            if f == APPEND:
                if cur is not ABSENT and not isinstance(cur, list):
                    return "invalid", f"append to key {k}, which holds {type(cur).__name__}"
                staged[key] = [*(() if cur is ABSENT else cur), v]
            else:
                staged[key] = v
            out.append([f, k, v])
        self.data.update(staged)
        return "ok", out
