"""The interpreter: the one code path by which any op (a client op, a fault op, a final read)
enters the history.

An op is recorded as an invocation before it is performed and as a completion after, whatever
performs it. Jepsen's honesty rule is applied here once for everyone: a performer that raises,
or returns something that is not an ok / fail / info completion, leaves the op `info` (it may
have taken effect), never `ok`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsjepsen.errors import HarnessError
from dsjepsen.harness.recorder import Recorder
from dsjepsen.history import Op

#: performs one invocation and returns its completion (a Client's invoke, a nemesis's)
Performer = Callable[[Op], Op]


def describe(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class Interpreter:
    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def invocation(
        self, f: str, value: Any, *, process: Any, key: Any = None, node: str | None = None
    ) -> Op:
        """Record an invocation (it is in the history before anything is attempted)."""
        return self.recorder.record(Op(0, 0, process, "invoke", f, value, key=key, node=node))

    def complete(self, inv: Op, perform: Performer) -> Op:
        """Perform a recorded invocation and record its completion."""
        try:
            res = perform(inv)
            if not isinstance(res, Op) or res.type not in ("ok", "fail", "info"):
                raise HarnessError(f"returned {res!r}, not an ok/fail/info completion")
            typ, value, err = res.type, res.value, res.error
            # the node that answered, when the client learnt it (a request forwarded to the
            # leader, redirected to a primary): the completion records it, the invocation
            # keeps the node the client was bound to (Operation.node / bound_node)
            node = res.node if isinstance(res.node, str) and res.node else inv.node
        except Exception as e:  # noqa: BLE001 - whatever happened, the op may have taken effect
            typ, value, err, node = "info", inv.value, describe(e), inv.node
        return self.recorder.record(
            Op(0, 0, inv.process, typ, inv.f, value, key=inv.key, node=node, error=err)
        )

    def perform(
        self,
        f: str,
        value: Any,
        perform: Performer,
        *,
        process: Any,
        key: Any = None,
        node: str | None = None,
    ) -> Op:
        """Record the invocation, perform it, record the completion; returns the completion."""
        return self.complete(
            self.invocation(f, value, process=process, key=key, node=node), perform
        )
