"""The run's threads: one client worker per client process, and the nemesis as one more worker.

Both pull their next op from a seeded source (the workload, the fault schedule) and hand it to
the interpreter; neither records anything itself. Jepsen's process rule is kept: after an `info`
a client worker continues under a new process id (old id + number of workers), because the
process that saw an indeterminate op must never issue another.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from typing import TYPE_CHECKING, Any

from dsjepsen.faults import START, read_op
from dsjepsen.harness.interpreter import describe
from dsjepsen.history import NEMESIS, Op

if TYPE_CHECKING:
    from dsjepsen.harness.generator import RateLimiter
    from dsjepsen.harness.phases import RunContext

log = logging.getLogger("dsjepsen.runner")

#: how long the nemesis worker may take to finish a fault op in flight
NEMESIS_JOIN_TIMEOUT = 90.0


def close_client(client: Any) -> None:
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


class ClientWorker(threading.Thread):
    """One client process bound to one node."""

    def __init__(self, ctx: RunContext, index: int, node: str, limiter: RateLimiter):
        super().__init__(name=f"client-{index}", daemon=True)
        self.ctx = ctx
        self.process = index
        self.node = node
        self.limiter = limiter

    def run(self) -> None:
        ctx = self.ctx
        client = None
        try:
            while self.limiter.wait(ctx.stop_clients):
                if client is None:
                    try:
                        client = ctx.target.client(ctx.cluster, self.node)
                    except Exception as e:  # noqa: BLE001 - retry after a pause
                        log.warning("client for %s: %s", self.node, describe(e))
                        if ctx.stop_clients.wait(1.0):
                            break
                        continue
                with ctx.recorder.lock:  # same seed, same op sequence in the history
                    if ctx.stop_clients.is_set():
                        break
                    spec = ctx.workload.next_op_for(self.process)
                    inv = ctx.interpreter.invocation(
                        spec.f, spec.value, process=self.process, key=spec.key, node=self.node
                    )
                comp = ctx.interpreter.complete(inv, client.invoke)
                with ctx.recorder.lock:
                    ctx.workload.observe(comp)
                if comp.type == "info":
                    self.process += ctx.clients
                    close_client(client)
                    client = None
        except Exception as e:  # noqa: BLE001 - a dead worker is logged, the run goes on
            log.error("worker %s died: %s", self.name, describe(e))
            log.debug("%s", traceback.format_exc())
        finally:
            close_client(client)


class NemesisWorker(threading.Thread):
    """Every `interval` seconds, the schedule's next fault op; `finish()` ends the fault in
    progress with its own stop op, so every window in the history is closed."""

    def __init__(self, ctx: RunContext):
        super().__init__(name="nemesis", daemon=True)
        self.ctx = ctx
        self.stop_event = threading.Event()
        self.active: str | None = None  # the fault in effect now (progress line)
        self._pending_stop = False
        self._lock = threading.Lock()

    def run(self) -> None:
        ctx = self.ctx
        if not ctx.schedule.enabled:
            return
        while not self.stop_event.wait(ctx.config.nemesis_interval):
            try:
                # (no op at a tick of a window left out by --nemesis-skip)
                for op in ctx.schedule.next_ops():
                    self.perform(*op)
            except Exception as e:  # noqa: BLE001 - the schedule itself broke: stop faulting
                log.error("nemesis schedule failed, no more faults: %s", describe(e))
                return

    def perform(self, f: str, value: Any) -> Op:
        ctx = self.ctx
        with self._lock:
            self._pending_stop = read_op(f, value).phase == START
            ctx.healed = False

            def invoke(op: Op) -> Op:
                return ctx.nemesis.invoke(ctx.cluster, op)

            comp = ctx.interpreter.perform(f, value, invoke, process=NEMESIS)
            out = comp.value if isinstance(comp.value, dict) else {}
            fop = read_op(f, out or value)
            if fop.phase == START and comp.type != "fail":
                self.active = fop.fault
            elif fop.phase != START:
                self.active = None
            level = logging.WARNING if comp.type == "info" and comp.error else logging.INFO
            log.log(level, "nemesis %s %s: %s", f, comp.type, out.get("description") or comp.error)
            return comp

    def finish(self) -> None:
        """Stop the schedule; end the fault in progress (recorded). heal() follows anyway."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout=NEMESIS_JOIN_TIMEOUT)
        if self.is_alive():
            log.warning("nemesis op still running after %gs", NEMESIS_JOIN_TIMEOUT)
            return
        if not self._pending_stop:
            return
        try:
            for op in self.ctx.schedule.stop_ops():
                self.perform(*op)
        except Exception as e:  # noqa: BLE001 - heal() undoes it anyway
            log.warning("could not stop the last fault cleanly: %s", describe(e))
