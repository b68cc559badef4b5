"""The kafka workload's client side: Maelstrom's kafka client, one per worker.

Maelstrom's kafka client (workload/kafka.clj) keeps, per client, the offset it will poll each
assigned key from, and speaks four RPCs:

| op (history) | RPCs | ok completion value |
|---|---|---|
| `send` key=k value=msg | `send {key, msg}` -> `send_ok {offset}` | `[offset, msg]` |
| `poll` | `poll {offsets}` -> `poll_ok {msgs: {k: [[offset, msg], ...]}}`, then `commit_offsets {offsets: {k: highest offset polled}}` -> `commit_offsets_ok` | the `msgs` map |
| `assign` value={keys, seek_to_beginning} | `list_committed_offsets {keys}` -> `list_committed_offsets_ok {offsets}` (none when seeking to the beginning) | the value, plus `committed` (what the node returned) and `offsets` (where polls start) |
| `crash` | none | always `info`: the worker starts a fresh client (fresh offsets), as Jepsen's crash op |

As in Maelstrom: after a poll, each key it returned is next polled from its highest offset + 1;
an assign keeps the offset of a key this client already had, else starts at the committed
offset the node returned, else 0. Every error reply is `info` (Maelstrom's kafka client lets
errors crash the op); a request that could not be sent at all is `fail`.

One deliberate difference: when a poll's `commit_offsets` fails, Maelstrom has already moved the
client's offsets past what it polled while the op is not ok, so the next ok poll looks like it
skipped offsets (a poll skip with no bug behind it). Here the offsets move only when the whole
op succeeds, so a failed commit can never raise a false alarm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: (reply body or None, why none, whether it was sent)
Rpc = Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str | None, bool]]
KAFKA_FS = frozenset({"send", "poll", "assign", "crash"})


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def valid_msgs(msgs: Any) -> bool:
    """A poll_ok's msgs: {key: [[offset, msg], ...]} with integer offsets."""
    if not isinstance(msgs, dict):
        return False
    for pairs in msgs.values():
        if not isinstance(pairs, list):
            return False
        for p in pairs:
            if not (isinstance(p, list) and len(p) == 2 and _is_int(p[0])):
                return False
    return True


class KafkaSession:
    """One client's kafka state (the offsets it polls from) and its four operations. Each
    method returns (type, completion value, error)."""

    def __init__(self, rpc: Rpc) -> None:
        self.rpc = rpc
        self.offsets: dict[str, int] = {}

    def _call(self, body: dict[str, Any], expect: str) -> tuple[dict[str, Any] | None, str, Any]:
        """(reply, type if it failed, error) of one RPC; reply is None when it failed."""
        reply, why, sent = self.rpc(body)
        if reply is None:
            return None, "info" if sent else "fail", why or "no reply"
        kind = reply.get("type")
        if kind == "error":
            code, text = reply.get("code"), reply.get("text")
            return (
                None,
                "info",
                {"code": code, "text": text} if text is not None else {"code": code},
            )
        if kind != expect:
            return None, "info", f"expected {expect}, got {kind!r}"
        return reply, "ok", None

    def send(self, key: Any, msg: Any) -> tuple[str, Any, Any]:
        reply, typ, err = self._call({"type": "send", "key": key, "msg": msg}, "send_ok")
        if reply is None:
            return typ, msg, err
        offset = reply.get("offset")
        if not _is_int(offset):
            return "info", msg, f"malformed send_ok: {str(reply)[:200]}"
        return "ok", [offset, msg], None

    def poll(self) -> tuple[str, Any, Any]:
        reply, typ, err = self._call({"type": "poll", "offsets": dict(self.offsets)}, "poll_ok")
        if reply is None:
            return typ, None, err
        msgs = reply.get("msgs", {})  # a node may leave out msgs when it has none
        if msgs is None:
            msgs = {}
        if not valid_msgs(msgs):
            return "info", None, f"malformed poll_ok: {str(reply)[:200]}"
        highest = {k: max(o for o, _ in pairs) for k, pairs in msgs.items() if pairs}
        if highest:
            # Maelstrom commits the highest offset polled per key (never below 0)
            commit = {k: max(0, o) for k, o in highest.items()}
            reply, typ, err = self._call(
                {"type": "commit_offsets", "offsets": commit}, "commit_offsets_ok"
            )
            if reply is None:
                return typ, msgs, err
        for k, pairs in msgs.items():
            nxt = highest[k] + 1 if pairs else 0
            self.offsets[k] = max(self.offsets.get(k, nxt), nxt)
        return "ok", msgs, None

    def assign(self, value: Any) -> tuple[str, Any, Any]:
        keys = list(value.get("keys") or []) if isinstance(value, dict) else list(value or [])
        if isinstance(value, dict) and value.get("seek_to_beginning"):
            self.offsets = dict.fromkeys(keys, 0)
            return "ok", {**value, "offsets": dict(self.offsets)}, None
        body = {"type": "list_committed_offsets", "keys": keys}
        reply, typ, err = self._call(body, "list_committed_offsets_ok")
        if reply is None:
            return typ, value, err
        committed = reply.get("offsets", {})
        if committed is None:
            committed = {}
        if not isinstance(committed, dict) or not all(_is_int(v) for v in committed.values()):
            return "info", value, f"malformed list_committed_offsets_ok: {str(reply)[:200]}"
        self.offsets = {
            k: self.offsets[k] if k in self.offsets else committed.get(k, 0) for k in keys
        }
        out = {"keys": keys, "committed": committed, "offsets": dict(self.offsets)}
        return "ok", out, None
