"""Issue 29: the lock checkers on hand-written histories whose verdict is known by construction.

Valid ones must stay valid (holds one after another; an info acquire or release, which makes a
hold uncertain; a holder whose lease ran out before the next grant; an overlap the fence
absorbed); invalid ones must be found and explained (two holders at once, naming both and the
fault in effect; interleaved writes and a stale token accepted at the resource; tokens out of
real-time order).
"""

from __future__ import annotations

from typing import Any

from dsjepsen.checkers.base import CheckContext
from dsjepsen.checkers.lock import FencingChecker, MutexChecker, ResourceChecker, holds
from dsjepsen.history import NEMESIS, History, Op

MS = 1_000_000
LEASE = 2000


class H:
    """A history under construction: ops at explicit times in ms."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, t_ms: float, process: Any, typ: str, f: str, value: Any = None, **kw: Any) -> Op:
        o = Op(
            len(self.ops),
            int(t_ms * MS),
            process,
            typ,
            f,
            value,
            None,
            kw.get("node"),
            kw.get("error"),
        )
        self.ops.append(o)
        return o

    def acquire(
        self, t0: float, t1: float, p: int, token: int | None, typ: str = "ok", lease: Any = LEASE
    ) -> None:
        self.op(t0, p, "invoke", "acquire", {"lease-ms": lease} if lease else {})
        out = {"lease-ms": lease, "holder": f"h{p}-{t0:g}", "token": token}
        self.op(t1, p, typ, "acquire", out)

    def release(self, t0: float, t1: float, p: int, typ: str = "ok") -> None:
        self.op(t0, p, "invoke", "release", None)
        self.op(t1, p, typ, "release", {})

    def write(self, t0: float, t1: float, p: int, value: int, typ: str = "ok") -> None:
        self.op(t0, p, "invoke", "write", {"value": value})
        self.op(t1, p, typ, "write", {"value": value})

    def resource(
        self, t: float, writes: list[tuple[str, int | None, int, bool]], fencing: bool
    ) -> None:
        recs = [
            {"seq": i, "hold": h, "token": tok, "value": v, "accepted": acc}
            for i, (h, tok, v, acc) in enumerate(writes)
        ]
        self.op(t, 0, "invoke", "read-resource", None)
        self.op(t + 1, 0, "ok", "read-resource", {"fencing": fencing, "writes": recs})

    def pause(self, t0: float, t1: float, node: str) -> None:
        d = f"paused the process on {node}"
        self.op(t0, NEMESIS, "invoke", "start-pause", None)
        self.op(t0 + 1, NEMESIS, "ok", "start-pause", {"nodes": [node], "description": d})
        self.op(t1, NEMESIS, "invoke", "stop-pause", None)
        self.op(
            t1 + 1, NEMESIS, "ok", "stop-pause", {"nodes": [node], "description": f"resumed {node}"}
        )

    def history(self) -> History:
        self.ops.sort(key=lambda o: o.time)
        ops = [
            Op(i, o.time, o.process, o.type, o.f, o.value, o.key, o.node, o.error)
            for i, o in enumerate(self.ops)
        ]
        return History(ops, "lock.jsonl")


def check(checker: Any, h: H, lease: int | None = LEASE) -> Any:
    return checker.check(h.history(), CheckContext(extra={"lease_ms": lease} if lease else {}))


def sequential_holds() -> H:
    """Three processes taking turns: each acquires after the previous one released."""
    h = H()
    t = 0.0
    for i, p in enumerate([1, 2, 3, 1, 2]):
        h.acquire(t, t + 5, p, token=10 * (i + 1))
        h.write(t + 6, t + 8, p, i)
        h.release(t + 9, t + 12, p)
        t += 15
    return h


def test_sequential_holds_are_valid_for_all_three() -> None:
    h = sequential_holds()
    h.resource(
        200,
        [(f"h{p}-{15 * i:g}", 10 * (i + 1), i, True) for i, p in enumerate([1, 2, 3, 1, 2])],
        False,
    )
    assert check(MutexChecker(), h).valid is True
    assert check(ResourceChecker(), h).valid is True
    assert check(FencingChecker(), h).valid is True


def test_a_hold_is_certain_only_from_acquire_completion_to_release_invocation() -> None:
    h = H()
    h.acquire(0, 10, 1, 5)
    h.release(50, 400, 1)  # the release's answer came late: the holder stopped believing at 50
    h.acquire(60, 70, 2, 6)  # granted after the release arrived
    h.release(80, 90, 2)
    got = holds(h.history(), LEASE)
    assert [(x.start // MS, x.end // MS) for x in got] == [(10, 50), (70, 80)]
    assert check(MutexChecker(), h).valid is True


def test_info_acquire_and_info_release_never_cause_an_alarm() -> None:
    h = H()
    # p1's acquire timed out: maybe granted, but p1 never acts on it
    h.acquire(0, 1000, 1, None, typ="info")
    h.acquire(10, 20, 2, 7)
    h.write(21, 22, 2, 1)
    h.release(30, 1500, 2, typ="info")  # unknown whether it released: p2 stopped believing at 30
    h.acquire(40, 50, 3, 8)
    h.release(60, 70, 3)
    assert check(MutexChecker(), h).valid is True
    assert check(FencingChecker(), h).valid is True


def test_a_lease_ends_a_hold_that_was_never_released() -> None:
    h = H()
    h.acquire(0, 10, 1, 1)
    h.write(20, 30, 1, 1, typ="info")  # p1 is gone; its lease runs out at 2000 ms
    h.acquire(2100, 2110, 2, 2)
    h.release(2200, 2210, 2)
    assert check(MutexChecker(), h).valid is True
    # the same history with the second grant inside the first lease, after p1's last write:
    # p1 certainly held only until it sent its last write, so still no certain overlap
    h2 = H()
    h2.acquire(0, 10, 1, 1)
    h2.write(20, 30, 1, 1, typ="info")
    h2.acquire(500, 510, 2, 2)
    h2.release(600, 610, 2)
    assert check(MutexChecker(), h2).valid is True


def test_two_holders_at_once_are_found_and_explained_with_the_fault() -> None:
    h = H()
    h.pause(5, 3000, "n2")
    h.acquire(0, 10, 1, 3)
    h.write(100, 110, 1, 1)
    h.acquire(200, 210, 2, 4)  # granted while p1 still held it
    h.write(220, 230, 2, 2)
    h.release(300, 310, 2)
    h.release(400, 410, 1)
    r = check(MutexChecker(), h)
    assert r.valid is False
    a = r.anomalies[0]
    assert a["type"] == "two-holders"
    assert [x["process"] for x in a["holds"]] == [1, 2]
    assert [x["token"] for x in a["holds"]] == [3, 4]
    assert "process 1" in a["message"] and "process 2" in a["message"]
    assert "paused the process on n2" in a["message"]
    assert "token 3" in a["message"] and "token 4" in a["message"]


def test_without_a_lease_the_mutex_holds_until_release_as_jepsen_models_it() -> None:
    h = H()
    h.acquire(0, 10, 1, None, lease=None)
    h.acquire(3000, 3010, 2, None, lease=None)  # p1 never released: two holders
    h.release(3100, 3110, 2)
    h.release(3200, 3210, 1)
    assert check(MutexChecker(), h, lease=None).valid is False
    # with a 2000 ms lease (the run's, from the context) p1's hold ended at 2000 ms
    assert check(MutexChecker(), h).valid is True


def test_an_overlap_the_fence_absorbed_is_listed_not_judged() -> None:
    h = H()
    h.op(-5, 0, "invoke", "configure-resource", {"fencing": True})
    h.op(-4, 0, "ok", "configure-resource", {"fencing": True})
    h.acquire(0, 10, 1, 3)
    h.acquire(200, 210, 2, 4)
    h.write(220, 230, 2, 1)
    h.write(240, 250, 1, 2, typ="fail")  # fenced off
    h.release(300, 310, 2)
    h.release(400, 410, 1)
    h.resource(500, [("h2-200", 4, 1, True), ("h1-0", 3, 2, False)], True)
    r = check(MutexChecker(), h)
    assert r.valid is True
    assert len(r.details["absorbed_by_fencing"]) == 1
    assert check(ResourceChecker(), h).valid is True
    # without tokens the fence cannot act: the same overlap is a violation
    h2 = H()
    h2.acquire(0, 10, 1, None)
    h2.acquire(200, 210, 2, None)
    h2.release(300, 310, 2)
    h2.release(400, 410, 1)
    h2.resource(500, [], True)
    assert check(MutexChecker(), h2).valid is False


def test_resource_interleaving_and_stale_token_are_found() -> None:
    h = H()
    h.acquire(0, 10, 1, None)
    h.write(20, 30, 1, 1)
    h.acquire(40, 50, 2, None)
    h.write(60, 70, 2, 2)
    h.write(80, 90, 1, 3)
    h.resource(200, [("a", None, 1, True), ("b", None, 2, True), ("a", None, 3, True)], False)
    r = check(ResourceChecker(), h)
    assert r.valid is False
    assert r.details["errors"]["interleaved"] == 1
    assert "hold a" in r.anomalies[0]["message"] and "hold b" in r.anomalies[0]["message"]
    h2 = H()
    h2.resource(10, [("a", 3, 1, True), ("b", 4, 2, True), ("c", 3, 3, True)], False)
    r2 = check(ResourceChecker(), h2)
    assert r2.valid is False and r2.details["errors"]["stale-token-accepted"] == 1
    # rejected writes are the fence working: not an interleaving
    h3 = H()
    h3.resource(10, [("a", 3, 1, True), ("b", 4, 2, True), ("a", 3, 3, False)], True)
    assert check(ResourceChecker(), h3).valid is True


def test_tokens_must_grow_with_real_time() -> None:
    h = H()
    h.acquire(0, 10, 1, 9)
    h.release(20, 30, 1)
    h.acquire(40, 50, 2, 5)  # invoked after p1's acquire completed, smaller token
    h.release(60, 70, 2)
    r = check(FencingChecker(), h)
    assert r.valid is False
    assert "token 5" in r.anomalies[0]["message"] and "token 9" in r.anomalies[0]["message"]
    # concurrent acquires may get tokens in either order
    h2 = H()
    h2.acquire(0, 50, 1, 9)
    h2.acquire(10, 40, 2, 5)
    assert check(FencingChecker(), h2).valid is True
    # but never the same token for two holds
    h3 = H()
    h3.acquire(0, 50, 1, 9)
    h3.acquire(10, 40, 2, 9)
    assert check(FencingChecker(), h3).valid is False


def test_a_superseded_holders_late_write_is_found_even_at_its_first_write() -> None:
    h = H()
    h.pause(5, 3000, "n2")
    h.acquire(0, 10, 1, None)
    h.write(20, 2020, 1, 1, typ="info")  # sent while p1 held it; stuck in a paused node
    h.acquire(2100, 2110, 2, None)  # p1's lease was over: the lock was rightly granted again
    h.write(2120, 2130, 2, 2)
    h.release(2140, 2150, 2)
    # the resource saw p2's write first, then p1's late one
    h.resource(4000, [("h2-2100", None, 2, True), ("h1-0", None, 1, True)], False)
    assert check(MutexChecker(), h).valid is True  # no two certain holds overlapped
    r = check(ResourceChecker(), h)
    assert r.valid is False and r.details["errors"]["superseded-holder-write"] == 1
    message = r.anomalies[0]["message"]
    assert "value 1 of hold h1-0" in message and "paused the process on n2" in message
    # with tokens and a fence the late write is rejected: valid
    h2 = H()
    h2.acquire(0, 10, 1, 3)
    h2.write(20, 2020, 1, 1, typ="info")
    h2.acquire(2100, 2110, 2, 4)
    h2.write(2120, 2130, 2, 2)
    h2.resource(4000, [("h2-2100", 4, 2, True), ("h1-0", 3, 1, False)], True)
    assert check(ResourceChecker(), h2).valid is True


def test_dsjepsen_check_infers_the_lock_checkers_and_exits_1_on_a_violation(tmp_path) -> None:
    import subprocess
    import sys

    from dsjepsen.history import write_jsonl

    h = H()
    h.op(-5, 0, "invoke", "configure-resource", {"fencing": False})
    h.op(-4, 0, "ok", "configure-resource", {"fencing": False})
    h.acquire(0, 10, 1, 3)
    h.acquire(200, 210, 2, 4)  # inside p1's hold
    h.release(300, 310, 2)
    h.release(400, 410, 1)
    h.resource(500, [], False)
    path = tmp_path / "lock.jsonl"
    write_jsonl(h.history().ops, path)
    proc = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "INVALID (lock-mutex)" in proc.stdout
    assert "checkers: lock-mutex, lock-resource, lock-fencing" in proc.stdout
