"""The lock workload's checkers: mutual exclusion, the fenced resource's own view, and the
fencing tokens' order (issue 29; docs/locks.md).

A lock history has Jepsen's `acquire` / `release` ops per process, `write` ops (a holder's
guarded writes to the fenced resource, each with the hold's token), the setup op
`configure-resource` {"fencing"} and a final `read-resource` whose value is the resource's
record of every write in arrival order. Three questions, one checker each:

- **lock-mutex**: did two holds overlap in real time? A hold is conservative on purpose, so
  that nothing but a real double grant is reported: it certainly covers the span from the
  acquire's ok completion (the holder knew it held) to the earliest of its release's
  invocation (it stopped believing), its last op while holding (a process that ended with an
  info never released), and the acquire's invocation plus the lease (the lock granted at or
  after the invocation, so it promised at least that long; a lease ends the hold without a
  release). An acquire that ended fail or info holds nothing: an info acquire may have been
  granted, but its process never acts on it, so no overlap is ever made of one. Two such
  certain holds of different processes that overlap are two holders at once. With the
  resource fencing and both holds carrying tokens, the overlap is the lease's known limit and
  the fence's job: it is listed (`absorbed`), and the resource's view judges.
- **lock-resource**: what the resource accepted, in arrival order: no accepted token may be
  older than one accepted before it (`stale-token-accepted`); no write of a hold may land
  after a write of a hold that began (its acquire invoked) after the first one's acquire had
  completed: the first holder was superseded, by the lock's own real-time order, whatever it
  believed (`superseded-holder-write`: the paused holder's late write, which only a fence
  stops); and no hold's writes may land after another hold's and then again (`interleaved`).
- **lock-fencing**: the tokens the lock handed out grow with real time: an acquire that
  completed before another was invoked has the smaller token, and no two holds share one.

Each violation names the two holds (process, token, their spans in seconds since the test
began) and the faults in effect meanwhile, from the history's fault records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.result import CheckResult
from dsjepsen.faults import FaultWindow, windows
from dsjepsen.history import NEMESIS, History, Operation

ACQUIRE, RELEASE, WRITE = "acquire", "release", "write"
READ_RESOURCE, CONFIGURE = "read-resource", "configure-resource"
#: violations listed per checker (all are counted)
MAX_LISTED = 50
NS = 1_000_000_000


def _t(ns: int) -> str:
    return f"t+{ns / NS:.3f}s"


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


@dataclass
class Hold:
    """One ok acquire and what its process did while it believed it held the lock."""

    holder: str
    process: Any
    token: int | None
    acquire: Operation
    lease_ms: int | None
    start: int  # ns: the acquire's ok completion
    end: int = 0  # ns: the certain end (see the module docstring)
    ended_by: str = ""
    writes: list[Operation] = field(default_factory=list)
    release: Operation | None = None

    def describe(self) -> str:
        token = f"token {self.token}" if self.token is not None else "no token"
        bound = self.acquire.bound_node
        node = f", bound to {bound}" if bound else ""
        return (
            f"process {self.process} (hold {self.holder}, {token}{node}) held it from "
            f"{_t(self.start)} to {_t(self.end)} ({self.ended_by})"
        )


def _lease(o: Operation, default: int | None) -> int | None:
    v = o.value if isinstance(o.value, dict) else {}
    return _int(v.get("lease-ms")) or default


def holds(history: History, lease_ms: int | None = None) -> list[Hold]:
    """Every hold of the history with its certain span (empty spans included: a holder whose
    acquire answered after its lease was over never certainly held)."""
    by_process: dict[Any, list[Operation]] = defaultdict(list)
    for o in history.operations():
        if o.f in (ACQUIRE, RELEASE, WRITE):
            by_process[o.process].append(o)
    out: list[Hold] = []
    for process, ops in by_process.items():
        current: Hold | None = None
        for o in sorted(ops, key=lambda o: o.call):
            if o.f == ACQUIRE:
                if current is not None:
                    _close(current, None)
                    current = None
                if o.type == "ok" and o.complete is not None:
                    out_v = o.output if isinstance(o.output, dict) else {}
                    current = Hold(
                        holder=str(out_v.get("holder") or f"p{process}-{o.id}"),
                        process=process,
                        token=_int(out_v.get("token")),
                        acquire=o,
                        lease_ms=_lease(o, lease_ms),
                        start=o.complete.time,
                    )
                    out.append(current)
            elif current is not None and o.f == WRITE:
                current.writes.append(o)
            elif current is not None and o.f == RELEASE:
                current.release = o
                _close(current, o)
                current = None
        if current is not None:
            _close(current, None)
    return out


def _close(h: Hold, release: Operation | None) -> None:
    if release is not None:
        end, why = release.invoke.time, "until its release was sent"
    else:
        last = max([h.start, *(w.invoke.time for w in h.writes)])
        end, why = last, "until its last write was sent; it never released"
    if h.lease_ms is not None:
        lease_end = h.acquire.invoke.time + h.lease_ms * 1_000_000
        if lease_end < end:
            end, why = lease_end, f"until its {h.lease_ms} ms lease, counted from the acquire"
    h.end, h.ended_by = end, why


def _faults_between(faults: list[FaultWindow], start: int, end: int) -> list[str]:
    """The faults that acted at some moment of [start, end] (ns)."""
    return [w.description for w in faults if not w.failed and w.start <= end and w.end >= start]


def _on_node(faults: list[FaultWindow], node: str | None, start: int, end: int) -> str:
    """ ", its node n2 then under: <fault>" for the faults that hit the node itself in [start,
    end] (a paused node pauses the holders bound to it), or ""."""
    if not node:
        return ""
    hit = [
        w.description
        for w in faults
        if not w.failed and node in w.nodes and w.start <= end and w.end >= start
    ]
    return f"; its node {node} was then under: {'; '.join(hit)}" if hit else ""


def _during(active: list[str]) -> str:
    return "during " + "; ".join(active) if active else "with no fault active"


def _fault_windows(history: History) -> list[FaultWindow]:
    try:
        return windows(history.ops)[0]
    except Exception:  # noqa: BLE001 - bad nemesis records must not hide a verdict
        return []


def resource_read(history: History) -> dict[str, Any] | None:
    """The resource's record from the fullest ok `read-resource` ({"fencing", "writes"})."""
    best: dict[str, Any] | None = None
    for o in history.operations():
        if o.f == READ_RESOURCE and o.type == "ok" and isinstance(o.output, dict):
            writes = o.output.get("writes")
            if isinstance(writes, list) and (best is None or len(writes) > len(best["writes"])):
                best = o.output
    return best


def fencing_on(history: History) -> bool | None:
    """Whether the resource fenced: as its own record says, else the setup op; None: unknown."""
    read = resource_read(history)
    if read is not None and isinstance(read.get("fencing"), bool):
        return read["fencing"]
    for o in history.operations():
        if o.f == CONFIGURE and o.type == "ok" and isinstance(o.value, dict):
            f = o.value.get("fencing")
            return f if isinstance(f, bool) else None
    return None


def lock_checkers(history: History) -> list[str]:
    """The checkers `dsjepsen check` runs on a history of the lock workload (it has the
    resource's setup or final op beside its acquires): all three. A lock history without
    them (Jepsen's acquire / release) is Knossos's mutex, for the linearizable checker."""
    fs = {op.f for op in history.ops if op.process != NEMESIS}
    if ACQUIRE in fs and fs & {READ_RESOURCE, CONFIGURE}:
        return [MutexChecker.name, ResourceChecker.name, FencingChecker.name]
    return []


class MutexChecker(Checker):
    """No two certain holds of different processes overlap in real time."""

    name: ClassVar[str] = "lock-mutex"
    description: ClassVar[str] = (
        "mutual exclusion: no two clients certainly held the lock at the same moment"
    )
    needs: ClassVar[tuple[frozenset[str], ...]] = (frozenset({ACQUIRE}),)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        lease = _int(context.extra.get("lease_ms"))
        all_holds = holds(history, lease)
        certain = sorted((h for h in all_holds if h.end > h.start), key=lambda h: h.start)
        fencing = bool(fencing_on(history))
        faults = _fault_windows(history)
        overlaps: list[tuple[Hold, Hold]] = []
        active: list[Hold] = []
        for h in certain:
            active = [a for a in active if a.end > h.start]
            overlaps += [(a, h) for a in active if a.process != h.process]
            active.append(h)
        violations, absorbed = [], []
        for a, b in overlaps:
            fenced = fencing and a.token is not None and b.token is not None
            (absorbed if fenced else violations).append(self._anomaly(a, b, faults, fenced))
        details: dict[str, Any] = {
            "holds": len(all_holds),
            "certain_holds": len(certain),
            "overlaps": len(overlaps),
            "fencing": fencing,
            "absorbed_by_fencing": absorbed[:MAX_LISTED],
            "lease_ms": lease,
        }
        if violations:
            n = len(violations)
            return CheckResult(
                self.name,
                False,
                f"{n} pair{'s' if n > 1 else ''} of holds overlapped: two holders at once",
                violations[:MAX_LISTED],
                details,
            )
        if not certain:
            return CheckResult(
                self.name, "unknown", "no acquire certainly held the lock", [], details
            )
        return CheckResult(self.name, True, None, [], details)

    def _anomaly(self, a: Hold, b: Hold, faults: list[FaultWindow], fenced: bool) -> dict[str, Any]:
        start, end = b.start, min(a.end, b.end)
        active = _faults_between(faults, a.acquire.invoke.time, end)
        tail = (
            "; the resource fenced with their tokens, so the older holder's later writes were "
            "refused (see lock-resource)"
            if fenced
            else ""
        )
        return {
            "type": "two-holders",
            "message": (
                f"two holders for {(end - start) / 1e6:.0f} ms from {_t(start)}: "
                f"{a.describe()}; {b.describe()}; {_during(active)}{tail}"
            ),
            "op_id": b.acquire.id,
            "index": b.acquire.complete.index if b.acquire.complete else None,
            "holds": [_hold_dict(a), _hold_dict(b)],
            "overlap": [start, end],
            "faults": active,
        }


def _hold_dict(h: Hold) -> dict[str, Any]:
    return {
        "holder": h.holder,
        "process": h.process,
        "token": h.token,
        "node": h.acquire.node,
        "acquire_op": h.acquire.id,
        "start": h.start,
        "end": h.end,
        "ended_by": h.ended_by,
    }


class ResourceChecker(Checker):
    """The resource accepted no interleaved holders' writes and no token older than one it
    accepted before."""

    name: ClassVar[str] = "lock-resource"
    description: ClassVar[str] = (
        "the fenced resource's view: no write lands after a newer holder's, holders' writes "
        "never interleave, accepted tokens never go backwards"
    )
    needs: ClassVar[tuple[frozenset[str], ...]] = (frozenset({READ_RESOURCE}),)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        read = resource_read(history)
        if read is None:
            return CheckResult(self.name, "unknown", "no read of the resource completed ok")
        writes = sorted(
            (w for w in read["writes"] if isinstance(w, dict)), key=lambda w: w.get("seq", 0)
        )
        accepted = [w for w in writes if w.get("accepted")]
        ops = {
            _value_key(o.value): o
            for o in history.operations()
            if o.f == WRITE and isinstance(o.value, dict)
        }
        faults = _fault_windows(history)
        by_holder = {h.holder: h for h in holds(history, _int(context.extra.get("lease_ms")))}
        anomalies: list[dict[str, Any]] = []
        counts = {"stale-token-accepted": 0, "superseded-holder-write": 0, "interleaved": 0}
        last_of: dict[str, dict[str, Any]] = {}  # hold -> its latest accepted write
        previous: dict[str, Any] | None = None
        newest: dict[str, Any] | None = None  # the accepted write with the newest token
        latest: tuple[Hold, dict[str, Any]] | None = None  # the latest-begun hold that wrote
        for w in accepted:
            hold = str(w.get("hold"))
            mine = by_holder.get(hold)
            token = _int(w.get("token"))
            found: tuple[str, dict[str, Any]] | None = None
            if token is not None and newest is not None and token < newest["token"]:
                found = ("stale-token-accepted", self._stale(newest, w, ops, faults))
            elif (
                mine is not None
                and latest is not None
                and latest[0] is not mine
                and mine.start < latest[0].acquire.invoke.time
            ):
                found = (
                    "superseded-holder-write",
                    self._superseded(mine, latest[0], latest[1], w, ops, faults),
                )
            elif previous is not None and str(previous.get("hold")) != hold and hold in last_of:
                found = ("interleaved", self._interleaved(last_of[hold], previous, w, ops, faults))
            if found is not None:
                counts[found[0]] += 1
                if len(anomalies) < MAX_LISTED:
                    anomalies.append(found[1])
            if token is not None and (newest is None or token > newest["token"]):
                newest = w
            if mine is not None and (
                latest is None or mine.acquire.invoke.time > latest[0].acquire.invoke.time
            ):
                latest = (mine, w)
            last_of[hold] = w
            previous = w
        details = {
            "fencing": read.get("fencing"),
            "writes": len(writes),
            "accepted": len(accepted),
            "rejected": len(writes) - len(accepted),
            "holds_that_wrote": len(last_of),
            "errors": counts,
        }
        if anomalies:
            kinds = ", ".join(f"{k} ({n})" for k, n in counts.items() if n)
            return CheckResult(
                self.name, False, f"the resource accepted {kinds}", anomalies, details
            )
        if not accepted:
            return CheckResult(self.name, "unknown", "the resource accepted no write", [], details)
        return CheckResult(self.name, True, None, [], details)

    def _where(self, w: dict[str, Any], ops: dict[Any, Operation]) -> str:
        o = ops.get(_value_key({"value": w.get("value")}))
        token = f"token {w.get('token')}" if w.get("token") is not None else "no token"
        sent = f", sent {_t(o.invoke.time)} by process {o.process}" if o is not None else ""
        return f"value {w.get('value')} of hold {w.get('hold')} ({token}, arrival {w.get('seq')}{sent})"

    def _span_faults(
        self,
        first: dict[str, Any],
        last: dict[str, Any],
        ops: dict[Any, Operation],
        faults: list[FaultWindow],
    ) -> list[str]:
        a = ops.get(_value_key({"value": first.get("value")}))
        b = ops.get(_value_key({"value": last.get("value")}))
        if a is None or b is None:
            return []
        end = b.complete.time if b.complete is not None else b.invoke.time
        return _faults_between(faults, a.invoke.time, end)

    def _interleaved(
        self,
        before: dict[str, Any],
        other: dict[str, Any],
        w: dict[str, Any],
        ops: dict[Any, Operation],
        faults: list[FaultWindow],
    ) -> dict[str, Any]:
        active = self._span_faults(before, w, ops, faults)
        o = ops.get(_value_key({"value": w.get("value")}))
        return {
            "type": "interleaved",
            "message": (
                f"two holders' writes interleaved at the resource: {self._where(before, ops)}, "
                f"then {self._where(other, ops)}, then again {self._where(w, ops)}; "
                f"{_during(active)}"
            ),
            "op_id": o.id if o is not None else None,
            "writes": [before, other, w],
            "faults": active,
        }

    def _superseded(
        self,
        old: Hold,
        new: Hold,
        new_write: dict[str, Any],
        w: dict[str, Any],
        ops: dict[Any, Operation],
        faults: list[FaultWindow],
    ) -> dict[str, Any]:
        active = self._span_faults(new_write, w, ops, faults)
        o = ops.get(_value_key({"value": w.get("value")}))
        return {
            "type": "superseded-holder-write",
            "message": (
                f"a superseded holder's write landed after the next holder's: "
                f"{self._where(w, ops)} arrived after {self._where(new_write, ops)}; "
                f"{old.describe()}"
                f"{_on_node(faults, old.acquire.bound_node, old.end, new.start)}, and the lock "
                "was granted again after that: "
                f"{new.describe()}; {_during(active)}"
            ),
            "op_id": o.id if o is not None else None,
            "writes": [new_write, w],
            "holds": [_hold_dict(old), _hold_dict(new)],
            "faults": active,
        }

    def _stale(
        self,
        newest: dict[str, Any],
        w: dict[str, Any],
        ops: dict[Any, Operation],
        faults: list[FaultWindow],
    ) -> dict[str, Any]:
        active = self._span_faults(newest, w, ops, faults)
        o = ops.get(_value_key({"value": w.get("value")}))
        return {
            "type": "stale-token-accepted",
            "message": (
                f"a stale holder's write was accepted after a newer holder's: "
                f"{self._where(w, ops)} arrived after {self._where(newest, ops)}; "
                f"{_during(active)}"
            ),
            "op_id": o.id if o is not None else None,
            "writes": [newest, w],
            "faults": active,
        }


def _value_key(v: Any) -> Any:
    x = v.get("value") if isinstance(v, dict) else v
    return repr(x)


class FencingChecker(Checker):
    """Tokens grow with real time: an acquire completed before another was invoked has the
    smaller token; no two holds share a token."""

    name: ClassVar[str] = "lock-fencing"
    description: ClassVar[str] = (
        "fencing tokens: each grant's token is larger than every token granted before it began"
    )
    needs: ClassVar[tuple[frozenset[str], ...]] = (frozenset({ACQUIRE}),)

    def check(self, history: History, context: CheckContext) -> CheckResult:
        hs = holds(history, _int(context.extra.get("lease_ms")))
        tokened = [h for h in hs if h.token is not None]
        faults = _fault_windows(history)
        anomalies: list[dict[str, Any]] = []
        count = 0
        by_completion = sorted(tokened, key=lambda h: h.start)
        best: Hold | None = None  # the largest token among acquires completed so far
        i = 0
        for h in sorted(tokened, key=lambda h: h.acquire.invoke.time):
            while i < len(by_completion) and by_completion[i].start < h.acquire.invoke.time:
                c = by_completion[i]
                if best is None or c.token > best.token:  # type: ignore[operator]
                    best = c
                i += 1
            if best is not None and best.token >= h.token:  # type: ignore[operator]
                count += 1
                if len(anomalies) < MAX_LISTED:
                    anomalies.append(self._anomaly(best, h, faults, "not larger than"))
        seen: dict[int, Hold] = {}
        for h in tokened:
            first = seen.setdefault(h.token, h)  # type: ignore[arg-type]
            if first is not h and first.holder != h.holder:
                concurrent = not (
                    first.start < h.acquire.invoke.time or h.start < first.acquire.invoke.time
                )
                if concurrent:  # the ordered case was counted above
                    count += 1
                    if len(anomalies) < MAX_LISTED:
                        anomalies.append(self._anomaly(first, h, faults, "the same as"))
        details = {"holds": len(hs), "with_token": len(tokened), "errors": count}
        if not tokened:
            details["note"] = "the lock handed out no fencing tokens: nothing to order"
        if anomalies:
            return CheckResult(
                self.name,
                False,
                f"{count} grant{'s' if count > 1 else ''} out of token order",
                anomalies,
                details,
            )
        return CheckResult(self.name, True, None, [], details)

    def _anomaly(self, a: Hold, b: Hold, faults: list[FaultWindow], how: str) -> dict[str, Any]:
        active = _faults_between(faults, a.acquire.invoke.time, b.start)
        return {
            "type": "token-order",
            "message": (
                f"token {b.token} of process {b.process} (acquire invoked "
                f"{_t(b.acquire.invoke.time)}) is {how} token {a.token} of process {a.process}, "
                f"whose acquire completed {_t(a.start)}; {_during(active)}"
            ),
            "op_id": b.acquire.id,
            "holds": [_hold_dict(a), _hold_dict(b)],
            "faults": active,
        }
