"""The replicated state machine: a map from string keys to JSON values.

Commands are applied in log order on every node; the result of a command (for cas: whether it
matched) is decided here, at apply time, so that every replica reaches the same verdict.
"""

from __future__ import annotations

from typing import Any

ABSENT = object()


class KV:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key, ABSENT)

    def apply(self, cmd: dict[str, Any]) -> tuple[str, Any]:
        """Apply one command; returns (outcome, current value): outcome is "ok", "mismatch"
        (cas saw another value) or "absent" (cas on a missing key)."""
        op = cmd.get("op")
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
        return "ok", None  # noop (a new leader's first entry) and unknown commands
