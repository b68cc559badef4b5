"""LockClient: the harness side of the lock workload, for any target whose lock it can ask for.

One client is one process of the history (a worker makes a new one after an `info`), so the
client is where a holder's belief lives: which hold it has (`holder`, named by the process and
the acquire's position in the history), the fencing token the lock gave with it, and until
when the lease lasts by its own clock. A subclass says how to ask the lock (`try_acquire`,
`try_release`); the guarded writes and the final read go to the fenced resource
(`targets/fenced`), the same for every lock.

The ops (`workloads/lock.py` has the vocabulary):

- `acquire` {"lease-ms"}: ok with {"lease-ms", "holder", "token"} (token null when the lock
  gives none); fail when the lock is held or the service said it did not grant; info when the
  answer never came (it may have granted: the process then never issues another op).
- `write` {"value"}: the guarded write, sent with the hold's token, only while the client
  believes it holds the lock: the lease is counted from the moment the acquire was sent, which
  is never later than the moment the lock granted it, so a holder never believes longer than
  the lock promised (while clocks agree). Past that it is `fail` without being sent. ok with
  {"value", "holder", "token"} when the resource accepted it; fail when the resource fenced it
  off (a stale token); info when its answer never came.
- `release` null: the client stops believing when it sends it, whatever the answer.
- `read-resource` null: every write the resource recorded, at the end of the run;
- `configure-resource` {"fencing"}: the workload's setup op, before any write.

Jepsen's honesty rule throughout: fail only when the op certainly did not take effect.
"""

from __future__ import annotations

import http.client
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from dsjepsen.history import Op
from dsjepsen.targets.base import Client
from dsjepsen.targets.clients import HttpJson, NotSent, completed, describe, served_by

ACQUIRE, RELEASE, WRITE, READ_RESOURCE = "acquire", "release", "write", "read-resource"
CONFIGURE = "configure-resource"
#: the op fs every lock client speaks
LOCK_FS = frozenset({ACQUIRE, RELEASE, WRITE, READ_RESOURCE, CONFIGURE})


@dataclass(frozen=True)
class Answer:
    """What the lock service said: `type` is ok / fail / info as Jepsen means them."""

    type: str
    token: int | None = None
    error: Any = None
    node: str | None = None
    #: seconds from the acquire's sending that the lock promises, when it says less than the
    #: lease (Redlock's validity: the lease less the time taking it took and the clock drift)
    valid_for: float | None = None


@dataclass
class Hold:
    holder: str
    token: int | None
    #: time.monotonic() past which the holder no longer believes it holds the lock
    deadline: float


class LockClient(Client):
    """A holder of one lock at a time, bound to one node; writes to the fenced resource."""

    def __init__(
        self,
        writes_to: tuple[str, int],
        timeout: float,
        node: str | None = None,
        direct: tuple[str, int] | None = None,
    ):
        """`writes_to`: where the guarded writes go (the resource, or the agent on this
        client's node that passes them on); `direct`: the resource itself, for the setup op
        and the final read (default: `writes_to`)."""
        self.timeout = timeout
        self.node = node
        self.writes = HttpJson(writes_to[0], writes_to[1], timeout)
        self.resource = HttpJson(*(direct or writes_to), timeout)
        self.hold: Hold | None = None

    @abstractmethod
    def try_acquire(self, holder: str, lease_ms: int) -> Answer:
        """Ask the lock for a lease of lease_ms for `holder`."""

    @abstractmethod
    def try_release(self, holder: str, token: int | None) -> Answer:
        """Give the lease of `holder` back."""

    def close_lock(self) -> None:  # noqa: B027 - a lock without connections of its own
        """Release the lock service's connections."""

    def close(self) -> None:
        self.writes.close()
        self.resource.close()
        self.close_lock()

    def invoke(self, op: Op) -> Op:
        if op.f == ACQUIRE:
            return self._acquire(op)
        if op.f == WRITE:
            return self._write(op)
        if op.f == RELEASE:
            return self._release(op)
        if op.f == READ_RESOURCE:
            return self._read_resource(op)
        if op.f == CONFIGURE:
            return self._configure(op)
        return completed(op, "fail", error=f"unsupported operation {op.f!r}")

    def _acquire(self, op: Op) -> Op:
        value = op.value if isinstance(op.value, dict) else {}
        lease_ms = value.get("lease-ms")
        if not isinstance(lease_ms, int) or isinstance(lease_ms, bool) or lease_ms <= 0:
            return completed(op, "fail", error=f"acquire needs {{lease-ms: int}}, got {op.value!r}")
        if self.hold is not None:
            return completed(op, "fail", error=f"already holding as {self.hold.holder}")
        holder = f"p{op.process}-i{op.index}"
        sent = time.monotonic()
        answer = self.try_acquire(holder, lease_ms)
        out = {"lease-ms": lease_ms, "holder": holder, "token": answer.token}
        comp = completed(op, answer.type, value=out, error=answer.error)
        if answer.type == "ok":
            valid = lease_ms / 1000.0
            if answer.valid_for is not None:
                valid = min(valid, answer.valid_for)
            self.hold = Hold(holder, answer.token, sent + valid)
        return _served(comp, answer.node)

    def _write(self, op: Op) -> Op:
        value = op.value.get("value") if isinstance(op.value, dict) else op.value
        hold = self.hold
        if hold is None:
            return completed(op, "fail", error="not holding the lock: not sent")
        out = {"value": value, "holder": hold.holder, "token": hold.token}
        if time.monotonic() >= hold.deadline:
            return completed(
                op, "fail", value=out, error="lease over by the client's clock: not sent"
            )
        body = {"client": op.process, "hold": hold.holder, "token": hold.token, "value": value}
        try:
            status, payload = self.writes.request("POST", "/write", body)
        except NotSent as e:
            return completed(op, "fail", value=out, error=f"resource: not sent: {e}")
        except TimeoutError:
            return completed(op, "info", value=out, error="resource: timeout")
        except (OSError, http.client.HTTPException) as e:
            return completed(
                op, "info", value=out, error=f"resource: connection lost: {describe(e)}"
            )
        if status == 200:
            return completed(op, "ok", value=out)
        if status == 409:
            error = payload.get("error") if isinstance(payload, dict) else payload
            return completed(op, "fail", value=out, error=f"fenced: {error}")
        if status in (400, 503):  # refused before anything was recorded (503: the agent
            # could not connect to the resource)
            return completed(op, "fail", value=out, error=f"resource: {status} {payload}")
        return completed(op, "info", value=out, error=f"resource: unexpected {status} {payload}")

    def _release(self, op: Op) -> Op:
        hold = self.hold
        if hold is None:
            return completed(op, "fail", error="not holding the lock: not sent")
        # the holder stops believing now, whatever the lock answers
        self.hold = None
        answer = self.try_release(hold.holder, hold.token)
        out = {"holder": hold.holder, "token": hold.token}
        return _served(completed(op, answer.type, value=out, error=answer.error), answer.node)

    def _configure(self, op: Op) -> Op:
        try:
            status, payload = self.resource.request("POST", "/configure", op.value)
        except NotSent as e:
            return completed(op, "fail", error=f"resource: not sent: {e}")
        except (OSError, http.client.HTTPException) as e:
            return completed(op, "info", error=f"resource: {describe(e)}")
        if status == 200:
            return completed(op, "ok")
        return completed(op, "fail", error=f"resource: {status} {payload}")

    def _read_resource(self, op: Op) -> Op:
        try:
            status, payload = self.resource.request("GET", "/writes")
        except (OSError, http.client.HTTPException, NotSent) as e:
            return completed(op, "fail", error=f"resource: {describe(e)}")
        if status != 200 or not isinstance(payload, dict) or "writes" not in payload:
            return completed(
                op, "fail", error=f"resource: unexpected {status} {str(payload)[:200]}"
            )
        return completed(op, "ok", value=payload)


def _served(comp: Op, node: str | None) -> Op:
    return served_by(comp, {"node": node})


class ContractLockClient(LockClient):
    """The lease lock of the HTTP contract (`POST /lock/acquire`, `POST /lock/release`, served
    by raft-kv; docs/locks.md), one lock named "lock"."""

    LOCK = "lock"

    def __init__(
        self,
        host: str,
        port: int,
        writes_to: tuple[str, int],
        timeout: float = 2.0,
        node: str | None = None,
        direct: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(writes_to, timeout, node, direct)
        self.http = HttpJson(host, port, timeout)

    def close_lock(self) -> None:
        self.http.close()

    def _ask(self, path: str, body: dict[str, Any]) -> tuple[int, Any] | Answer:
        try:
            return self.http.request("POST", path, body)
        except NotSent as e:
            return Answer("fail", error=f"not sent: {e}")
        except TimeoutError:
            return Answer("info", error="timeout")
        except (OSError, http.client.HTTPException) as e:
            return Answer("info", error=f"connection lost: {describe(e)}")

    def try_acquire(self, holder: str, lease_ms: int) -> Answer:
        got = self._ask(
            "/lock/acquire", {"lock": self.LOCK, "holder": holder, "lease-ms": lease_ms}
        )
        if isinstance(got, Answer):
            return got
        status, payload = got
        node = payload.get("node") if isinstance(payload, dict) else None
        if status == 200 and isinstance(payload, dict):
            token = payload.get("token")
            token = token if isinstance(token, int) and not isinstance(token, bool) else None
            return Answer("ok", token=token, node=node)
        return _refusal(status, payload, node)

    def try_release(self, holder: str, token: int | None) -> Answer:
        got = self._ask("/lock/release", {"lock": self.LOCK, "holder": holder, "token": token})
        if isinstance(got, Answer):
            return got
        status, payload = got
        node = payload.get("node") if isinstance(payload, dict) else None
        if status == 200:
            return Answer("ok", node=node)
        return _refusal(status, payload, node)


def _refusal(status: int, payload: Any, node: str | None) -> Answer:
    """A lock answer other than 200: fail when it certainly did not take effect (409 held or
    not the holder, 400, 503 not leader), info otherwise (504 and anything unexpected)."""
    error = payload.get("error") if isinstance(payload, dict) else payload
    if status == 409:
        holder = payload.get("holder") if isinstance(payload, dict) else None
        return Answer("fail", error={"refused": error, "holder": holder}, node=node)
    if status in (400, 503):
        return Answer("fail", error={"status": status, "error": error}, node=node)
    return Answer("info", error={"status": status, "error": error}, node=node)
