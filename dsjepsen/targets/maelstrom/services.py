"""Maelstrom's services, served by the controller: lin-kv, seq-kv, lww-kv and lin-tso.

A node reaches a service by sending an RPC to its name; the node's relay forwards it to the
controller over the same connection that carries client messages, and the reply comes back the
same way (so a paused or killed node loses its service calls with it, and the services live
where partitions never cut: on the controller). Semantics follow Maelstrom's doc/services.md:

- **lin-kv**: one linearizable map: `read` (error 20 when the key is absent), `write`, `cas`
  with `from` / `to` (error 20 absent, 22 mismatch; `create_if_not_exists: true` creates).
- **seq-kv**: sequentially consistent: every update is applied at the head of one total order
  of versions, and each caller (a node, by its id) may read any version between the last one
  it saw and the head (the head half the time), never going back. Stale reads and cas against
  an old version's value as a read are legal there; writes and cas always act on the head.
- **lww-kv**: last-writer-wins over `replicas` independent copies: each request goes to a random
  copy; writes carry a timestamp; copies merge (highest timestamp wins) only every
  `merge_interval` seconds, so reads are stale and concurrent writes are lost, as Maelstrom's
  intentionally pathological store is.
- **lin-tso**: `ts` returns the next integer of one strictly increasing sequence (`ts_ok`).

Unknown request types get error 10 (not supported); a request missing a field error 12
(malformed request). All four are thread-safe: one lock each.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from typing import Any

NOT_SUPPORTED, MALFORMED, KEY_ABSENT, PRECONDITION = 10, 12, 20, 22
NAMES = ("lin-kv", "seq-kv", "lww-kv", "lin-tso")


class ServiceError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


def _need(body: dict[str, Any], *fields: str) -> None:
    for f in fields:
        if f not in body:
            raise ServiceError(MALFORMED, f"{body.get('type')} needs {f!r}")


def _key(k: Any) -> Any:
    """JSON keys may be lists or objects; use a hashable stand-in."""
    try:
        hash(k)
        return k
    except TypeError:
        return repr(k)


class LinKv:
    """A single map behind one lock: every op takes effect atomically while served."""

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}
        self.lock = threading.Lock()

    def handle(self, src: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        with self.lock:
            if kind == "read":
                _need(body, "key")
                k = _key(body["key"])
                if k not in self.data:
                    raise ServiceError(KEY_ABSENT, "key does not exist")
                return {"type": "read_ok", "value": self.data[k]}
            if kind == "write":
                _need(body, "key", "value")
                self.data[_key(body["key"])] = body["value"]
                return {"type": "write_ok"}
            if kind == "cas":
                _need(body, "key", "from", "to")
                k = _key(body["key"])
                if k not in self.data:
                    if not body.get("create_if_not_exists"):
                        raise ServiceError(KEY_ABSENT, "key does not exist")
                elif self.data[k] != body["from"]:
                    raise ServiceError(
                        PRECONDITION, f"expected {body['from']!r}, but had {self.data[k]!r}"
                    )
                self.data[k] = body["to"]
                return {"type": "cas_ok"}
        raise ServiceError(NOT_SUPPORTED, f"unsupported request type {kind!r}")


class SeqKv:
    """A total order of versions; reads may observe any version from the caller's last seen
    one to the head."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.version = 0
        #: key -> [(version at which it was set, value)], in version order
        self.history: dict[Any, list[tuple[int, Any]]] = {}
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def _at(self, k: Any, version: int) -> tuple[bool, Any]:
        present, value = False, None
        for v, x in reversed(self.history.get(k, ())):
            if v <= version:
                return True, x
        return present, value

    def _set(self, src: str, k: Any, value: Any) -> None:
        self.version += 1
        self.history.setdefault(k, []).append((self.version, value))
        self.seen[src] = self.version

    def handle(self, src: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        with self.lock:
            if kind == "read":
                _need(body, "key")
                low = self.seen.get(src, 0)
                at = (
                    self.version if self.rng.random() < 0.5 else self.rng.randint(low, self.version)
                )
                self.seen[src] = at
                present, value = self._at(_key(body["key"]), at)
                if not present:
                    raise ServiceError(KEY_ABSENT, "key does not exist")
                return {"type": "read_ok", "value": value}
            if kind == "write":
                _need(body, "key", "value")
                self._set(src, _key(body["key"]), body["value"])
                return {"type": "write_ok"}
            if kind == "cas":
                _need(body, "key", "from", "to")
                k = _key(body["key"])
                present, value = self._at(k, self.version)
                if not present and not body.get("create_if_not_exists"):
                    self.seen[src] = self.version
                    raise ServiceError(KEY_ABSENT, "key does not exist")
                if present and value != body["from"]:
                    self.seen[src] = self.version
                    raise ServiceError(PRECONDITION, f"expected {body['from']!r}, had {value!r}")
                self._set(src, k, body["to"])
                return {"type": "cas_ok"}
        raise ServiceError(NOT_SUPPORTED, f"unsupported request type {kind!r}")


class LwwKv:
    """Independent replicas of (timestamp, value) per key, merged only now and then."""

    def __init__(
        self, replicas: int = 5, merge_interval: float = 0.5, rng: random.Random | None = None
    ) -> None:
        self.rng = rng or random.Random()
        self.replicas: list[dict[Any, tuple[tuple[int, int], Any]]] = [{} for _ in range(replicas)]
        self.merge_interval = merge_interval
        self.merged_at = time.monotonic()
        self.tick = itertools.count(1)
        self.lock = threading.Lock()

    def _merge(self) -> None:
        if time.monotonic() - self.merged_at < self.merge_interval:
            return
        self.merged_at = time.monotonic()
        best: dict[Any, tuple[tuple[int, int], Any]] = {}
        for r in self.replicas:
            for k, (ts, v) in r.items():
                if k not in best or ts > best[k][0]:
                    best[k] = (ts, v)
        for r in self.replicas:
            r.update(best)

    def handle(self, src: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        with self.lock:
            self._merge()
            r = self.rng.choice(self.replicas)
            stamp = (time.time_ns() // 1000, next(self.tick))
            if kind == "read":
                _need(body, "key")
                k = _key(body["key"])
                if k not in r:
                    raise ServiceError(KEY_ABSENT, "key does not exist")
                return {"type": "read_ok", "value": r[k][1]}
            if kind == "write":
                _need(body, "key", "value")
                r[_key(body["key"])] = (stamp, body["value"])
                return {"type": "write_ok"}
            if kind == "cas":
                _need(body, "key", "from", "to")
                k = _key(body["key"])
                if k not in r:
                    if not body.get("create_if_not_exists"):
                        raise ServiceError(KEY_ABSENT, "key does not exist")
                elif r[k][1] != body["from"]:
                    raise ServiceError(PRECONDITION, f"expected {body['from']!r}, had {r[k][1]!r}")
                r[k] = (stamp, body["to"])
                return {"type": "cas_ok"}
        raise ServiceError(NOT_SUPPORTED, f"unsupported request type {kind!r}")


class LinTso:
    def __init__(self) -> None:
        self.next = itertools.count(1)
        self.lock = threading.Lock()

    def handle(self, src: str, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("type") != "ts":
            raise ServiceError(NOT_SUPPORTED, f"unsupported request type {body.get('type')!r}")
        with self.lock:
            return {"type": "ts_ok", "ts": next(self.next)}


class Services:
    """Every service by name, and the reply envelope Maelstrom's protocol gives."""

    def __init__(self, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self.by_name: dict[str, Any] = {
            "lin-kv": LinKv(),
            "seq-kv": SeqKv(random.Random(rng.random())),
            "lww-kv": LwwKv(rng=random.Random(rng.random())),
            "lin-tso": LinTso(),
        }
        self.msg_ids = itertools.count(1)
        self.calls: dict[str, int] = dict.fromkeys(NAMES, 0)
        self.lock = threading.Lock()

    def handle(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """The reply message to a request (None when it has no msg_id to answer)."""
        name, src, body = msg.get("dest"), msg.get("src"), msg.get("body")
        if not isinstance(body, dict) or not isinstance(src, str) or name not in self.by_name:
            return None
        with self.lock:
            self.calls[str(name)] += 1
            reply_id = next(self.msg_ids)
        try:
            out = self.by_name[str(name)].handle(src, body)
        except ServiceError as e:
            out = {"type": "error", "code": e.code, "text": e.text}
        if "msg_id" not in body:
            return None
        out.update(msg_id=reply_id, in_reply_to=body["msg_id"])
        return {"src": name, "dest": src, "body": out}
