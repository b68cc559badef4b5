"""set-full, counter and convergence on hand-built histories (one anomaly each, with the message
a reader sees) and on generated ones: the counter checker against a brute-force oracle that
enumerates every subset of the indeterminate increments, set-full against a direct transcription
of Jepsen's per-read, per-element reducer."""

from __future__ import annotations

import random
from typing import Any

from crdt_histories import MS, Builder, counter_oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsjepsen.checkers.base import CheckContext
from dsjepsen.checkers.convergence import ConvergenceChecker
from dsjepsen.checkers.counter import CounterChecker, SubsetSums
from dsjepsen.checkers.set_full import SetFullChecker, analyse_key, collect
from dsjepsen.history import History, Op

# -- set-full -----------------------------------------------------------------------------------


def test_every_ok_add_in_the_final_reads_is_valid_and_stable() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    b.op(1, "add", 0, 2, node="n2")
    b.op(0, "read-set", 0, out=[1, 2])
    final = b.index
    b.op(2, "read-set", 0, out=[2, 1], node="n1")
    b.op(3, "read-set", 0, out=[1, 2], node="n2")
    r = SetFullChecker().check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is True, r.reason
    assert r.details["outcomes"]["stable"] == 2 and r.details["lost_count"] == 0


def test_an_ok_add_missing_from_every_final_read_is_lost_naming_element_key_and_node() -> None:
    b = Builder()
    b.op(0, "add", 7, 41, node="n3")
    b.op(0, "add", 7, 42, node="n1")
    final = b.index
    b.op(1, "read-set", 7, out=[42], node="n1")
    b.op(2, "read-set", 7, out=[42], node="n3")
    r = SetFullChecker().check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is False
    [a] = r.anomalies
    assert a["type"] == "lost" and a["element"] == 41 and a["key"] == 7 and a["node"] == "n3"
    assert "element 41 of key 7 was lost" in a["message"]
    assert "through n3 completed ok" in a["message"] and "no read ever returned it" in a["message"]
    assert "lost by n3" in a["message"]


def test_a_lost_add_acknowledged_by_another_node_is_blamed_on_the_node_that_acknowledged_it() -> (
    None
):
    """A Redis client bound to n2 sent its add to the primary its Sentinel named, n1, which
    acknowledged it (the completion names n1) and later, demoted, dropped it; a client bound
    to n4 had read it from n1 meanwhile. The loss is n1's, not n4's."""
    b = Builder()
    b.invoke(0, "add", 3, 489, "n2")
    b.complete(0, "ok", "add", 3, 489, "n1")
    b.op(1, "read-set", 3, out=[489], node="n4")
    final = b.index
    b.op(2, "read-set", 3, out=[], node="n4")
    b.op(3, "read-set", 3, out=[], node="n1")
    r = SetFullChecker().check(b.history(), CheckContext(final_from_index=final))
    [a] = r.anomalies
    assert a["type"] == "lost" and a["node"] == "n1" and a["add"]["acked_by"] == "n1"
    assert "its add through n2, acknowledged by n1, completed ok" in a["message"]
    assert "last returned at" in a["message"] and "through n4" in a["message"]
    assert a["message"].endswith("lost by n1.")


def test_an_element_seen_then_gone_from_every_final_read_names_the_replica_that_had_it() -> None:
    b = Builder()
    b.op(0, "add", 0, 5, node="n2")
    b.op(1, "read-set", 0, out=[5], node="n2")  # n2 returned it ...
    final = b.index
    b.op(2, "read-set", 0, out=[], node="n1")  # ... and then nobody has it
    b.op(3, "read-set", 0, out=[], node="n2")
    r = SetFullChecker().check(b.history(), CheckContext(final_from_index=final))
    [a] = r.anomalies
    assert a["type"] == "lost" and a["node"] == "n2"
    assert "last returned at" in a["message"] and "through n2" in a["message"]
    assert "absent from the final reads of every node (n1, n2)" in a["message"]


def test_without_final_reads_jepsens_rule_decides_lost() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    b.op(1, "read-set", 0, out=[1], node="n1")
    b.op(2, "read-set", 0, out=[], node="n2")  # began after it was known and last seen
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.valid is False and r.anomalies[0]["type"] == "lost"
    assert "through n2 that began at" in r.anomalies[0]["message"]
    # ... but a read concurrent with the last sighting does not make it lost
    b = Builder()
    b.op(0, "add", 0, 1)
    b.invoke(2, "read-set", 0, node="n2")
    b.op(1, "read-set", 0, out=[1])
    b.complete(2, "ok", "read-set", 0, [], node="n2")
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.valid is True and r.details["outcomes"]["stable"] == 1


def test_phantoms_never_added_or_whose_add_failed_are_invalid() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    b.op(0, "add", 0, 2, typ="fail")
    b.op(1, "read-set", 0, out=[1, 2, 99], node="n2")
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.valid is False
    msgs = sorted(a["message"] for a in r.anomalies if a["type"] == "phantom")
    assert len(msgs) == 2
    assert any("element 99, which was never added" in m for m in msgs)
    assert any("element 2, although its add through n1 failed" in m for m in msgs)


def test_duplicates_in_one_read_are_invalid() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    b.op(1, "read-set", 0, out=[1, 1])
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.valid is False and r.anomalies[0]["type"] == "duplicate"


def test_info_adds_may_or_may_not_appear_but_once_seen_must_stay() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    b.op(0, "add", 0, 2, typ="info")  # never seen: fine
    b.op(1, "add", 0, 3, typ="info")
    b.op(2, "read-set", 0, out=[1, 3])  # 3 is now known
    final = b.index
    b.op(3, "read-set", 0, out=[1])
    r = SetFullChecker().check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is False
    [a] = r.anomalies
    assert a["element"] == 3 and "was indeterminate" in a["message"]
    assert r.details["adds"] == {"ok": 1, "info": 2, "fail": 0}


def test_stale_reads_are_reported_with_their_window_but_valid() -> None:
    b = Builder()
    b.op(0, "add", 0, 1, node="n1")  # known at 2 ms
    b.t += 50 * MS
    b.op(1, "read-set", 0, out=[], node="n2")  # began at 53 ms and missed it: stale
    b.op(1, "read-set", 0, out=[1], node="n2")
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.valid is True
    assert r.details["stale_count"] == 1
    assert r.details["worst_stale"][0]["added_at"] == 1 * MS
    assert r.details["worst_stale"][0]["first_seen_at"] == 56 * MS
    worst = r.details["worst_stale"][0]
    assert worst["element"] == 1 and worst["stale_ms"] == 51.0 and worst["last_absent_node"] == "n2"


def test_jepsen_spelling_add_read_is_accepted() -> None:
    b = Builder()
    b.op(0, "add", None, 1, node=None)
    b.op(1, "read", None, out=[1], node=None)
    b.op(1, "read", None, out=[], node=None)
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.details["vocabulary"] == {"add": "add", "read": "read"}
    assert r.valid is False and "an unnamed node" in r.anomalies[0]["message"]


def test_partial_presence_in_final_reads_is_for_convergence_to_judge() -> None:
    b = Builder()
    b.op(0, "add", 0, 1, node="n1")
    b.op(0, "add", 0, 2, node="n2")
    final = b.index
    b.op(1, "read-set", 0, out=[1, 2], node="n1")
    b.op(2, "read-set", 0, out=[2], node="n2")
    ctx = CheckContext(final_from_index=final, healed_at=0)
    r = SetFullChecker().check(b.history(), ctx)
    assert r.valid is True and r.details["outcomes"]["partial"] == 1
    c = ConvergenceChecker().check(b.history(), ctx)
    assert c.valid is False
    [a] = c.anomalies
    assert a["type"] == "not-converged" and a["node"] == "n2"
    assert a["message"] == "key 0 did not converge: n2 lacks 1 (1); n1 have all 2."


def test_unknown_when_nothing_was_read() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    r = SetFullChecker().check(b.history(), CheckContext())
    assert r.valid == "unknown"


def _jepsen_set_full(history: History, latencies: dict[Any, int] | None = None) -> dict[Any, str]:
    """Jepsen's set-full reducer, transcribed literally (every read updates every element);
    {element: outcome} for one key, without final reads. `latencies` receives each stable
    element's stable latency in ms, as Jepsen computes it."""
    elements: dict[Any, dict[str, Any]] = {}
    open_: dict[Any, Op] = {}
    for op in history.ops:
        if op.type == "invoke":
            open_[op.process] = op
            if op.f == "add":
                elements.setdefault(
                    op.value, {"known": None, "lp": None, "la": None, "known_t": 0, "la_t": 0}
                )
            continue
        inv = open_.pop(op.process)
        if op.f == "add" and op.type == "ok":
            e = elements[inv.value]
            if e["known"] is None:
                e["known"], e["known_t"] = op.index, op.time
        elif op.f == "read-set" and op.type == "ok":
            for v, e in elements.items():
                if v in op.value:
                    if e["known"] is None:
                        e["known"], e["known_t"] = op.index, op.time
                    if e["lp"] is None or e["lp"] < inv.index:
                        e["lp"] = inv.index
                elif e["la"] is None or e["la"] < inv.index:
                    e["la"], e["la_t"] = inv.index, inv.time
    out = {}
    for v, e in elements.items():
        la = -1 if e["la"] is None else e["la"]
        stable = e["lp"] is not None and la < e["lp"]
        lost = (
            e["known"] is not None
            and e["la"] is not None
            and (-1 if e["lp"] is None else e["lp"]) < e["la"]
            and e["known"] < e["la"]
        )
        out[v] = "stable" if stable else "lost" if lost else "never-read"
        if stable and latencies is not None:
            stable_time = 0 if e["la"] is None else e["la_t"] + 1
            latencies[v] = max(0, stable_time - e["known_t"]) // 1_000_000
    return out


@st.composite
def set_histories(draw: st.DrawFn) -> History:
    """Random concurrent adds and reads of one key by 3 processes; reads return random subsets
    of what was invoked so far (plus sometimes nothing), so every outcome occurs."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    b = Builder()
    open_: dict[int, tuple[str, Any]] = {}
    invoked: list[int] = []
    n = draw(st.integers(4, 30))
    next_el = 0
    for _ in range(n):
        p = rng.randrange(3)
        if p in open_:
            f, v = open_.pop(p)
            if f == "add":
                b.complete(p, rng.choice(["ok", "ok", "info", "fail"]), f, 0, v)
            else:
                out = [e for e in invoked if rng.random() < 0.7]
                b.complete(p, "ok", f, 0, out)
        elif rng.random() < 0.5:
            next_el += 1
            invoked.append(next_el)
            open_[p] = ("add", next_el)
            b.invoke(p, "add", 0, next_el)
        else:
            open_[p] = ("read-set", None)
            b.invoke(p, "read-set", 0)
    for p, (f, _) in list(open_.items()):
        b.complete(p, "ok" if f == "read-set" else "info", f, 0, [] if f == "read-set" else None)
    return b.history()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(set_histories())
def test_set_full_outcomes_match_jepsens_reducer(h: History) -> None:
    r = SetFullChecker().check(h, CheckContext())
    latencies: dict[Any, int] = {}
    expected = _jepsen_set_full(h, latencies)
    fails = {op.value for op in h.ops if op.f == "add" and op.type == "fail"}
    counts: dict[str, int] = {}
    notable: dict[Any, str] = {}
    for key, k in collect(h, "add", "read-set", None).items():
        ka = analyse_key(key, k)
        for outcome, n in ka.counts.items():
            counts[outcome] = counts.get(outcome, 0) + n
        notable.update((res.element, res.outcome) for res in ka.notable)
    judged = {e: o for e, o in expected.items() if not (e in fails and e not in seen(h))}
    for outcome in ("stable", "lost", "never-read"):
        assert counts.get(outcome, 0) == sum(1 for o in judged.values() if o == outcome)
    assert {e for e, o in judged.items() if o != "stable"} <= notable.keys()
    assert all(notable[e] == o for e, o in judged.items() if o != "stable")
    assert r.details["lost_count"] == counts.get("lost", 0)
    # Maelstrom's :stable-latencies: Jepsen's quantiles of every stable element's latency
    ms = sorted(latencies[e] for e, o in judged.items() if o == "stable")
    points = {"0": 0.0, "0.5": 0.5, "0.95": 0.95, "0.99": 0.99, "1": 1.0}
    want = {k: ms[min(len(ms) - 1, int(len(ms) * p))] for k, p in points.items()} if ms else {}
    assert r.details["stable_latencies_ms"] == want


def seen(h: History) -> set[Any]:
    return {e for op in h.ops if op.f == "read-set" and op.type == "ok" for e in op.value}


# -- counter ------------------------------------------------------------------------------------


def test_counter_reads_within_bounds_and_final_sum_are_valid() -> None:
    b = Builder()
    b.op(0, "increment", 0, 3)
    b.invoke(1, "increment", 0, 4, node="n2")
    b.op(2, "read-counter", 0, out=7, node="n1")  # 3 done, the 4 may have applied
    b.complete(1, "info", "increment", 0, 4, node="n2")
    final = b.index
    b.op(3, "read-counter", 0, out=3, node="n1")
    b.op(4, "read-counter", 0, out=3, node="n2")
    r = CounterChecker(lower="global").check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is True, r.reason
    assert r.details["keys"]["0"]["possible_final"] == [3, 7]


def test_over_count_is_above_the_upper_bound() -> None:
    b = Builder()
    b.op(0, "increment", 0, 2)
    b.op(1, "read-counter", 0, out=4, node="n2")
    r = CounterChecker(lower="global").check(b.history(), CheckContext())
    assert r.valid is False
    [a] = r.anomalies
    assert a["type"] == "out-of-bounds" and (a["lower"], a["upper"]) == (2, 2)
    assert (
        "a read of counter 0 through n2" in a["message"]
        and "above the upper bound 2" in (a["message"])
    )


def test_lower_bound_global_versus_per_node() -> None:
    """An increment through n1 that n2 has not seen yet: stale for a linearizable counter,
    fine for a CRDT replica (only its own acknowledged increments must show)."""
    b = Builder()
    b.op(0, "increment", 0, 5, node="n1")
    b.op(1, "read-counter", 0, out=0, node="n2")
    h = b.history()
    g = CounterChecker(lower="global").check(h, CheckContext())
    assert g.valid is False and "below the lower bound 5" in g.anomalies[0]["message"]
    assert CounterChecker(lower="node").check(h, CheckContext()).valid is True
    # without the argument the context decides
    assert CounterChecker().check(h, CheckContext()).valid is False
    assert CounterChecker().check(h, CheckContext(consistency="eventual")).valid is True
    b.op(0, "read-counter", 0, out=0, node="n1")  # its own node must show it
    r = CounterChecker(lower="node").check(b.history(), CheckContext())
    assert r.valid is False and "the ok increments through n1" in r.anomalies[0]["message"]


def test_signed_bounds() -> None:
    """ok +5 completed; a concurrent -3 may or may not have applied: the read is 2 or 5."""
    b = Builder()
    b.op(0, "increment", 0, 5)
    b.invoke(1, "increment", 0, -3)
    for out, ok in ((2, True), (5, True), (3, True), (1, False), (6, False)):
        b.op(2, "read-counter", 0, out=out)
        r = CounterChecker(lower="global").check(b.history(), CheckContext())
        assert (r.valid is True) == ok, (out, r.reason)
        b.ops = b.ops[:-2]
    # a completed ok decrement bounds the read from above
    b.complete(1, "ok", "increment", 0, -3)
    b.op(2, "read-counter", 0, out=5)
    r = CounterChecker(lower="global").check(b.history(), CheckContext())
    assert r.valid is False and r.anomalies[0]["upper"] == 2


def test_final_read_must_be_ok_sum_plus_a_subset_of_indeterminate_deltas() -> None:
    b = Builder()
    b.op(0, "increment", 0, 10)
    b.op(1, "increment", 0, 2, typ="info")
    b.op(2, "increment", 0, 4, typ="info")
    b.op(3, "increment", 0, 100, typ="fail")
    final = b.index
    b.op(4, "read-counter", 0, out=13)  # within [10, 16], but no subset of {2, 4} gives 3
    r = CounterChecker(lower="node").check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is False
    [a] = r.anomalies
    assert a["type"] == "final-read"
    assert a["message"] == (
        "the final read of counter 0 through n1 (completed at 0.010 s) returned 13, but the ok "
        "increments sum to 10 and the 2 indeterminate one(s) (+2, +4) can add only {0, 2, 4, 6}."
    )
    b.ops[-1].value = 16
    r = CounterChecker(lower="node").check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is True


def test_only_each_nodes_last_final_read_must_be_an_exact_sum() -> None:
    """The run reads in rounds until the nodes agree: an early round may still be behind (within
    bounds), only the last read through each node is held to the exact sum."""
    b = Builder()
    b.op(0, "increment", 0, 2, node="n1")
    b.op(0, "increment", 0, 3, node="n2")
    final = b.index
    b.op(1, "read-counter", 0, out=2, node="n1")  # round 1: n2's increment not here yet
    b.op(1, "read-counter", 0, out=5, node="n1")  # round 2: converged
    r = CounterChecker(lower="node").check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is True and r.details["judged_final_reads"] == 1
    b.op(1, "read-counter", 0, out=4, node="n1")  # but the last one must be exact
    r = CounterChecker(lower="node").check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is False and r.anomalies[0]["type"] == "final-read"


def test_jepsen_counter_spelling_add_read() -> None:
    b = Builder()
    b.op(0, "add", None, 1, node=None)
    b.op(1, "read", None, out=1, node=None)
    b.op(1, "read", None, out=3, node=None)
    r = CounterChecker().check(b.history(), CheckContext())
    assert r.details["vocabulary"] == {"increment": "add", "read": "read"}
    assert r.valid is False


def test_subset_sums_bitset_and_wide_fallback() -> None:
    s = SubsetSums([3, -2, 5])
    assert {v for v in range(-5, 10) if v in s} == {-2, 0, 1, 3, 5, 6, 8}
    wide = SubsetSums([10**9, -(10**9) + 1, 7])
    assert 10**9 + 7 in wide and 1 in wide and 2 not in wide
    assert wide.exact


@st.composite
def counter_histories(draw: st.DrawFn) -> tuple[History, int, bool]:
    """Tiny random concurrent histories of one counter over 2 nodes: increments of either sign
    ending ok / info / fail / never, reads returning values near the truth, then final reads."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    per_node = draw(st.booleans())
    b = Builder()
    open_: dict[int, tuple[str, int]] = {}
    applied = 0
    n_incs = 0
    procs = [0, 1, 2]
    for _ in range(draw(st.integers(3, 18))):
        slot = rng.randrange(3)
        p = procs[slot]
        node = "n1" if slot < 2 else "n2"
        if p in open_:
            f, v = open_.pop(p)
            if f == "increment":
                typ = rng.choice(["ok", "ok", "info", "fail"])
                if typ == "ok" or (typ == "info" and rng.random() < 0.5):
                    applied += v
                b.complete(p, typ, f, 0, v, node=node)
                if typ == "info":
                    procs[slot] += 3
            else:
                b.complete(p, "ok", f, 0, applied + rng.choice([0, 0, 1, -1, 3]), node=node)
        elif rng.random() < 0.5 and n_incs < 7:
            n_incs += 1
            v = rng.choice([-3, -1, 1, 2, 4])
            open_[p] = ("increment", v)
            b.invoke(p, "increment", 0, v, node=node)
        else:
            open_[p] = ("read-counter", 0)
            b.invoke(p, "read-counter", 0, node=node)
    for slot, p in enumerate(procs):
        if p in open_:
            f, v = open_.pop(p)
            node = "n1" if slot < 2 else "n2"
            if f == "read-counter":
                b.complete(p, "ok", f, 0, applied, node=node)
    final = b.index
    for node, p in (("n1", 100), ("n2", 101)):
        b.op(p, "read-counter", 0, out=applied + rng.choice([0, 0, 0, 1]), node=node)
    return b.history(), final, per_node


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(counter_histories())
def test_counter_checker_agrees_with_the_subset_oracle(case: tuple[History, int, bool]) -> None:
    h, final, per_node = case
    r = CounterChecker(lower="node" if per_node else "global").check(
        h, CheckContext(final_from_index=final)
    )
    assert (r.valid is True) == counter_oracle(h, per_node, final), (r.reason, h.ops)


# -- convergence --------------------------------------------------------------------------------


def test_convergence_time_is_measured_from_the_heal() -> None:
    b = Builder()
    b.nemesis("start-partition")  # nemesis ops are no client reads: ignored
    b.op(0, "add", 0, 1, node="n1")
    b.nemesis("stop-partition")
    healed = b.t
    final = b.index
    b.op(1, "read-set", 0, out=[1], node="n1")  # round 1: n2 is behind
    b.op(2, "read-set", 0, out=[], node="n2")
    b.t += 100 * MS
    b.op(1, "read-set", 0, out=[1], node="n1")  # round 2: agreement
    b.op(2, "read-set", 0, out=[1], node="n2")
    r = ConvergenceChecker().check(
        b.history(), CheckContext(final_from_index=final, healed_at=healed)
    )
    assert r.valid is True, r.reason
    assert r.details["time_to_converge_s"] == 0.108
    assert r.details["first_round_agreed"] is False
    assert (
        "1 key(s) converged on every node (2) within 0.108 s of the heal" in (r.details["summary"])
    )


def test_counters_that_disagree_are_named_per_node() -> None:
    b = Builder()
    b.op(0, "increment", 3, 1, node="n1")
    final = b.index
    b.op(1, "read-counter", 3, out=1, node="n1")
    b.op(2, "read-counter", 3, out=1, node="n2")
    b.op(3, "read-counter", 3, out=0, node="n3")
    r = ConvergenceChecker().check(b.history(), CheckContext(final_from_index=final))
    assert r.valid is False
    [a] = r.anomalies
    assert a["message"] == "key 3 did not converge: n1 reads 1, n2 reads 1, n3 reads 0."
    assert a["node"] == "n3" and a["values"] == {"n1": 1, "n2": 1, "n3": 0}
    # the summary (printed after a run) leads with the failure, never "converged within"
    assert r.details["summary"].startswith("1 of 1 key(s) did not converge")
    assert "converged on every node" not in r.details["summary"]


def test_a_replica_that_loses_an_element_it_returned_is_named() -> None:
    b = Builder()
    b.op(0, "add", 0, 17, node="n3")
    b.op(1, "read-set", 0, out=[17], node="n3")
    b.op(1, "read-set", 0, out=[], node="n3")
    r = ConvergenceChecker().check(b.history(), CheckContext(final_from_index=b.index))
    assert r.valid is False
    [a] = r.anomalies
    assert a["type"] == "replica-lost-element" and a["node"] == "n3" and a["element"] == 17
    assert a["message"].startswith("n3 lost element 17 of key 0: a read through n3 returned it")


def test_concurrent_reads_on_one_node_are_not_ordered() -> None:
    b = Builder()
    b.op(0, "add", 0, 17)
    b.invoke(2, "read-set", 0)
    b.op(1, "read-set", 0, out=[17])
    b.complete(2, "ok", "read-set", 0, [])  # began before the other completed: fine
    r = ConvergenceChecker().check(b.history(), CheckContext(final_from_index=b.index))
    assert r.details["monotonic_violations"] == 0


def test_grow_only_counter_must_not_decrease_on_a_node_but_pn_counter_may() -> None:
    b = Builder()
    b.op(0, "increment", 0, 2, node="n1")
    b.op(1, "read-counter", 0, out=2, node="n2")
    b.op(1, "read-counter", 0, out=1, node="n2")
    r = ConvergenceChecker().check(b.history(), CheckContext(final_from_index=b.index))
    assert r.valid is False and r.anomalies[0]["type"] == "replica-counter-decreased"
    assert "n2's reads of grow-only counter 0 went backwards: 2" in r.anomalies[0]["message"]
    b.op(0, "increment", 0, -1, node="n1")
    r = ConvergenceChecker().check(b.history(), CheckContext(final_from_index=b.index))
    assert r.details["monotonic_violations"] == 0


def test_convergence_unknown_without_final_reads_or_with_a_silent_node() -> None:
    b = Builder()
    b.op(0, "add", 0, 1)
    b.op(1, "read-set", 0, out=[1])
    assert ConvergenceChecker().check(b.history(), CheckContext()).valid == "unknown"
    final = b.index
    b.op(2, "read-set", 0, out=[1], node="n1")
    b.op(3, "read-set", 0, typ="fail", node="n2")
    r = ConvergenceChecker().check(b.history(), CheckContext(final_from_index=final))
    assert r.valid == "unknown" and "key 0 through n2" in (r.reason or "")
