"""What every client shares (the Client contract itself is `targets/base.py`).

Jepsen's rule for a completion is the whole point of a client: `fail` only when the operation
certainly did not happen and never will, `info` whenever it may have. These helpers keep the
rule in one place:

- `completed(op, type, ...)`: the completion of an invocation, as the interpreter expects it;
- `describe(exc)`: an exception as the one line a completion's `error` carries;
- `HttpJson`: one keep-alive HTTP/1.1 connection speaking JSON, which tells a request that
  certainly never left (`NotSent`: connecting failed, so `fail` is true) from one whose outcome
  is unknown (any error after sending: `info` for an update). It sends each request once:
  `http.client` never retries, and this connects explicitly before sending so that it never
  reconnects behind our back either;
- `check_no_retries(obj)`: refuse a client library object that retries by itself.

Why the last one: a library that retries a request after a timeout or a dropped connection
turns one op into several attempts. An update that timed out and was retried may be applied
twice, or be applied by the first attempt while the retry reports an error that the client
then records as `fail`: the history says "did not happen" about something that happened, and
the checker's verdict is wrong in either direction. Build library clients with their retries
switched off, and retry, if at all, as a new op (a new invocation in the history).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import select
import socket
from collections.abc import Mapping
from typing import Any

from dsjepsen.errors import ConfigError
from dsjepsen.history import Op

#: attribute names under which client libraries keep their retry settings (redis-py's
#: `retry` and `retry_on_timeout`, urllib3 / requests' `retries` and `max_retries`, pymongo's
#: `retryWrites` / `retryReads`, ...), searched by `retrying_settings`
RETRY_ATTRIBUTES = (
    "retry",
    "retries",
    "max_retries",
    "retry_on_timeout",
    "retry_on_error",
    "retry_writes",
    "retry_reads",
    "retryWrites",
    "retryReads",
)
#: where libraries keep the settings of the connections they make: searched one level down
_CONTAINERS = (
    "connection_pool",
    "connection_kwargs",
    "connection_pool_kw",
    "adapters",
    "_options",
    "options",
)


def completed(op: Op, type_: str, value: Any = dataclasses.MISSING, error: Any = None) -> Op:
    """The completion of invocation `op` with this type (`ok`, `fail`, `info`); the value is
    the invocation's unless given (a read's answer)."""
    if value is dataclasses.MISSING:
        return dataclasses.replace(op, type=type_, error=error)
    return dataclasses.replace(op, type=type_, value=value, error=error)


def served_by(completion: Op, payload: Any) -> Op:
    """The completion with the node that answered it, when the answer names one (the HTTP
    contract's optional `"node"` field: a follower that forwarded the request to the leader
    passes on the leader's answer, which names the leader). The report then blames the node
    that acknowledged a write, not the one the client happened to be bound to."""
    node = payload.get("node") if isinstance(payload, dict) else None
    if isinstance(node, str) and node and node != completion.node:
        return dataclasses.replace(completion, node=node)
    return completion


def describe(e: BaseException) -> str:
    """An exception as one line: its type, and its message when it has one."""
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class NotSent(Exception):
    """The request certainly never reached the server: the op did not happen."""


class HttpJson:
    """One keep-alive HTTP/1.1 connection to host:port, reopened after any error.

    `request` raises NotSent when the request certainly never left (connecting failed, or a
    kept-alive connection turned out closed before anything was written), and OSError /
    http.client.HTTPException (TimeoutError among them) when it was sent and the outcome is
    unknown. A reply is `(status, payload)` with the JSON body decoded (None when empty;
    `{"error": text}` when it is not JSON)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is not None and self._conn.sock is not None:
            # A kept-alive socket that is readable while idle was closed by the server (it
            # crashed or restarted): drop it now, while we still know nothing was sent.
            readable, _, _ = select.select([self._conn.sock], [], [], 0)
            if readable:
                self.close()
        if self._conn is None or self._conn.sock is None:
            self.close()
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError as e:  # refused, unreachable, connect timeout: nothing was sent
                conn.close()
                raise NotSent(describe(e)) from e
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return self._conn

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request, once; see the class docstring for what it raises."""
        conn = self._connection()
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except BaseException:
            self.close()  # a late answer must never be read as the next request's
            raise
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"error": raw[:200].decode("utf-8", "replace")}
        return resp.status, payload


def retrying_settings(obj: Any) -> list[str]:
    """The retry settings switched on in a client library object, as `name=value` strings
    (empty when none is found). Looks at the attributes of RETRY_ATTRIBUTES on the object and
    one level down, in the containers libraries keep connection settings in (a redis-py
    client's connection pool kwargs, a requests Session's adapters, a urllib3 PoolManager's
    pool keywords). A setting counts as on when it is true or a positive number, or an object
    (urllib3's or redis-py's `Retry`) whose count of retries is positive or unknown."""
    found: list[str] = []
    for where, holder in _holders(obj):
        for name in RETRY_ATTRIBUTES:
            value = _get(holder, name)
            if value is _ABSENT or value is None:
                continue
            if _on(value):
                found.append(f"{where}{name}={_shown(value)}")
    pool_kw = _get(obj, "connection_pool_kw")
    if isinstance(pool_kw, Mapping) and "retries" not in pool_kw:
        # a urllib3 PoolManager applies Retry.DEFAULT (3 retries) to every request it is not
        # told otherwise about
        found.append("connection_pool_kw.retries unset (urllib3 then retries 3 times)")
    return list(dict.fromkeys(found))


def check_no_retries(obj: Any, library: str = "") -> None:
    """Raise ConfigError when a client library object retries by itself (see the module
    docstring for why a retrying client breaks the fail / info rule). Call it in a Target's
    `client()` on the library object the client will use, so that a run is refused before
    its first op instead of recording a history that says less than it seems to."""
    found = retrying_settings(obj)
    if found:
        what = library or type(obj).__name__
        raise ConfigError(
            f"{what} retries requests by itself ({', '.join(found[:3])}): a retried update "
            "may apply twice or be recorded as fail though it happened; switch its retries "
            "off and let every attempt be an op of its own"
        )


_ABSENT = object()


def _get(holder: Any, name: str) -> Any:
    if isinstance(holder, Mapping):
        return holder.get(name, _ABSENT)
    try:
        return getattr(holder, name, _ABSENT)
    except Exception:  # noqa: BLE001 - a property that fails tells nothing
        return _ABSENT


def _holders(obj: Any) -> list[tuple[str, Any]]:
    """The object, and the containers of connection settings one level below it."""
    out: list[tuple[str, Any]] = [("", obj)]
    for name in _CONTAINERS:
        inner = _get(obj, name)
        if inner is _ABSENT or inner is None or callable(inner) and not isinstance(inner, Mapping):
            continue
        if name == "adapters" and isinstance(inner, Mapping):  # requests: prefix -> adapter
            out += [(f"adapters[{k!r}].", v) for k, v in inner.items()]
        else:
            out.append((f"{name}.", inner))
            nested = _get(inner, "connection_kwargs")
            if nested is not _ABSENT and isinstance(nested, Mapping):
                out.append((f"{name}.connection_kwargs.", nested))
    return out


def _on(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    if isinstance(value, list | tuple | set | frozenset):
        return bool(value)  # redis-py's retry_on_error: the errors it retries on
    count = _retry_count(value)
    return count is None or count > 0


def _retry_count(value: Any) -> int | None:
    """How many times a Retry-like object retries: urllib3's `total` (False: never) or its
    per-kind counts, redis-py's `_retries`; None when it does not say."""
    total = _get(value, "total")
    if total is not _ABSENT:  # urllib3.Retry
        if total is False:
            return 0
        kinds = [_get(value, k) for k in ("connect", "read", "status", "other")]
        counts = [c for c in (total, *kinds) if isinstance(c, int) and not isinstance(c, bool)]
        return max(counts, default=0)
    for name in ("_retries", "retries", "max_retries"):  # redis-py's Retry keeps _retries
        n = _get(value, name)
        if isinstance(n, int) and not isinstance(n, bool):
            return n
    return None


def _shown(value: Any) -> str:
    if isinstance(value, bool | int | float | str):
        return repr(value)
    count = _retry_count(value)
    return f"{type(value).__name__}({count if count is not None else '?'} retries)"
