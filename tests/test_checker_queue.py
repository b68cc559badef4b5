"""The unordered queue (Knossos's `unordered-queue`) beside the FIFO one: hand-written histories
with known verdicts, both checkers against a brute-force oracle that states the model directly
(an indeterminate dequeue removes any one element), and `dsjepsen check --model` on a Knossos
EDN history."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checker_oracle import any_element_queue, oracle_successors

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.checkers.models import ILLEGAL, UNKNOWN, get_model
from dsjepsen.checkers.sequential import check_sequential
from dsjepsen.history import History, Op

UQ = "unordered-queue"


def H(events: list[tuple[Any, str, str, Any]]) -> History:
    """(process, type, f, value) events, in history order (one key)."""
    return History([Op(n, n, p, t, f, v) for n, (p, t, f, v) in enumerate(events)])


def seq(*ops: tuple[str, Any, str]) -> History:
    """Ops one after the other by one process, so that real time and process order agree:
    (f, value or output, type)."""
    events: list[tuple[Any, str, str, Any]] = []
    for f, v, t in ops:
        events.append((0, "invoke", f, v if f == "enqueue" else None))
        events.append((0, t, f, v))
    return H(events)


def verdicts(h: History) -> tuple[Any, Any, Any]:
    """(unordered linearizable, unordered sequential, FIFO linearizable)."""
    return (
        check_linearizable(h, UQ).valid,
        check_sequential(h, UQ, skip_linearizable=True).valid,
        check_linearizable(h, "queue").valid,
    )


def test_any_dequeue_order_is_valid_for_unordered_only() -> None:
    h = seq(("enqueue", 1, "ok"), ("enqueue", 2, "ok"), ("dequeue", 2, "ok"), ("dequeue", 1, "ok"))
    assert verdicts(h) == (True, True, False)


def test_dequeue_of_a_value_never_enqueued_is_invalid() -> None:
    h = seq(("enqueue", 1, "ok"), ("dequeue", 3, "ok"))
    assert verdicts(h) == (False, False, False)
    r = check_linearizable(h, UQ)
    assert r.anomalies[0]["message"] == (
        "dequeue returned 3, but the queue could only hold {1} at that point"
    )


def test_one_enqueue_cannot_be_dequeued_twice() -> None:
    h = seq(("enqueue", 1, "ok"), ("dequeue", 1, "ok"), ("dequeue", 1, "ok"))
    assert verdicts(h) == (False, False, False)
    # ... but two enqueues of the same value can
    h2 = seq(("enqueue", 1, "ok"), ("enqueue", 1, "ok"), ("dequeue", 1, "ok"), ("dequeue", 1, "ok"))
    assert verdicts(h2) == (True, True, True)


def test_nil_means_empty() -> None:
    assert verdicts(seq(("dequeue", None, "ok"))) == (True, True, True)
    h = seq(("enqueue", 1, "ok"), ("dequeue", None, "ok"))
    assert verdicts(h)[:2] == (False, False)
    msg = check_linearizable(h, UQ).anomalies[0]["message"]
    assert msg == "dequeue returned nil (empty), but the queue could only hold {1} at that point"


def test_failed_ops_never_happened() -> None:
    h = seq(("enqueue", 1, "fail"), ("dequeue", 1, "ok"))
    assert verdicts(h) == (False, False, False)


def test_an_indeterminate_dequeue_may_have_emptied_the_queue() -> None:
    """Why an info dequeue cannot just be dropped: it may be what made a later dequeue see the
    queue empty. Without it the same history is invalid."""
    events = [
        (0, "invoke", "enqueue", 1),
        (0, "ok", "enqueue", 1),
        (1, "invoke", "dequeue", None),
        (1, "info", "dequeue", None),
        (0, "invoke", "dequeue", None),
        (0, "ok", "dequeue", None),
    ]
    assert verdicts(H(events)) == (True, True, True)
    without = [e for e in events if e[0] != 1]
    assert verdicts(H(without)) == (False, False, False)


def test_an_indeterminate_dequeue_takes_an_element_enqueued_after_its_call() -> None:
    """The info dequeue is called while only 1 is queued, but 1 is dequeued later and the queue
    is then seen empty: the info dequeue must have taken 2, after 2 was enqueued (it never
    returned, so it may take effect that late). FIFO: it would have taken 1, the head, first."""
    h = H(
        [
            (0, "invoke", "enqueue", 1),
            (0, "ok", "enqueue", 1),
            (1, "invoke", "dequeue", None),  # never completes
            (0, "invoke", "enqueue", 2),
            (0, "ok", "enqueue", 2),
            (0, "invoke", "dequeue", None),
            (0, "ok", "dequeue", 1),
            (0, "invoke", "dequeue", None),
            (0, "ok", "dequeue", None),
        ]
    )
    assert verdicts(h)[:2] == (True, True)
    # one indeterminate dequeue takes one element, not two
    h2 = H(
        [
            (0, "invoke", "enqueue", 1),
            (0, "ok", "enqueue", 1),
            (1, "invoke", "dequeue", None),
            (0, "invoke", "enqueue", 2),
            (0, "ok", "enqueue", 2),
            (0, "invoke", "dequeue", None),
            (0, "ok", "dequeue", None),
        ]
    )
    assert verdicts(h2)[:2] == (False, False)


def test_an_indeterminate_dequeue_cannot_act_before_its_call() -> None:
    h = H(
        [
            (0, "invoke", "enqueue", 1),
            (0, "ok", "enqueue", 1),
            (2, "invoke", "dequeue", None),
            (2, "ok", "dequeue", None),
            (1, "invoke", "dequeue", None),  # called after the empty dequeue returned
        ]
    )
    assert check_linearizable(h, UQ).valid is False
    # sequential consistency ignores real time between processes: 1's dequeue may come first
    assert check_sequential(h, UQ, skip_linearizable=True).valid is True


def test_states_read_as_people_say_them() -> None:
    m = get_model(UQ)
    s = m.init()
    assert m.describe_state(s) == "empty"
    for v in (1, 1, 2):
        s = m.transition("enqueue", v, v)(s)
    assert m.describe_state(s) == "{1 1 2}"
    s = m.transition("dequeue", None, UNKNOWN)(s)
    assert m.describe_state(s) == "{1 1 2} less 1 element taken by an indeterminate dequeue"
    s = m.transition("dequeue", None, 1)(s)
    assert m.describe_state(s) == "{1 2} less 1 element taken by an indeterminate dequeue"
    # a second indeterminate dequeue owes the last element: the queue is empty then, and a
    # third cannot take effect
    s = m.transition("dequeue", None, UNKNOWN)(s)
    assert m.describe_state(s) == "empty"
    assert m.transition("dequeue", None, UNKNOWN)(s) is ILLEGAL
    assert m.transition("dequeue", None, None)(s) == m.init()
    assert m.transition("dequeue", None, 2)(s) is ILLEGAL


# ---------------------------------------------------------------------------------------------
# Against the oracle


def _random_history(rng: random.Random, procs: int, n: int, from_run: bool) -> History:
    """n ops over `procs` processes, randomly interleaved (a process is never reused after an
    info op, as in Jepsen). With `from_run`, outputs come from running the any-element queue
    at the invocation (often valid); otherwise they are drawn at random (often invalid)."""
    events: list[tuple[Any, str, str, Any]] = []
    open_: dict[int, tuple[str, Any]] = {}
    held: list[int] = []
    next_pid = procs
    free = list(range(procs))
    invoked = 0
    while invoked < n or open_:
        start = invoked < n and free and (not open_ or rng.random() < 0.5)
        if start:
            p = free.pop(rng.randrange(len(free)))
            f = rng.choice(["enqueue", "enqueue", "dequeue"])
            v = rng.randrange(3) if f == "enqueue" else None
            if from_run and f == "enqueue":
                held.append(v)
            if f == "dequeue":
                if from_run:
                    out = held.pop(rng.randrange(len(held))) if held else None
                else:
                    out = rng.choice([None, 0, 1, 2])
            else:
                out = v
            open_[p] = (f, out)
            events.append((p, "invoke", f, v))
            invoked += 1
            continue
        p = rng.choice(list(open_))
        f, out = open_.pop(p)
        typ = rng.choice(["ok", "ok", "ok", "fail", "info"])
        if typ == "info":
            if rng.random() < 0.5:
                events.append((p, "info", f, None))
            free.append(next_pid)  # the crashed process is replaced by a fresh one
            next_pid += 1
            continue
        if typ == "fail" and from_run and f == "enqueue" and out in held:
            held.remove(out)
        events.append((p, typ, f, out if typ == "ok" else None))
        free.append(p)
    return History([Op(i, i, p, t, f, v) for i, (p, t, f, v) in enumerate(events)])


@pytest.mark.parametrize("from_run", [True, False])
def test_checkers_agree_with_the_any_element_oracle(from_run: bool) -> None:
    """Linearizability and sequential consistency against the oracle on 400 histories each;
    both verdicts must occur, and so must histories with an indeterminate dequeue."""
    m = get_model(UQ)
    rng = random.Random(14 + from_run)
    seen: dict[tuple[str, bool], int] = {}
    info_dequeues = 0
    for _ in range(400):
        h = _random_history(rng, rng.randint(2, 3), rng.randint(2, 8), from_run)
        ops = h.operations()
        info_dequeues += any(o.f == "dequeue" and o.ret is None for o in ops)
        lin = oracle_successors(ops, m, any_element_queue, ())
        sc = oracle_successors(ops, m, any_element_queue, (), order="process")
        got_lin = check_linearizable(h, UQ).valid
        got_sc = check_sequential(h, UQ, skip_linearizable=True).valid
        dump = [o.to_dict() for o in h.ops]
        assert got_lin is lin, ("linearizable", dump)
        assert got_sc is sc, ("sequential", dump)
        seen[("lin", lin)] = seen.get(("lin", lin), 0) + 1
        seen[("sc", sc)] = seen.get(("sc", sc), 0) + 1
    assert all(seen.get((k, v), 0) > 5 for k in ("lin", "sc") for v in (True, False)), seen
    assert info_dequeues > 30


# ---------------------------------------------------------------------------------------------
# The CLI on a Knossos history

KNOSSOS = """\
{:process 0, :type :invoke, :f :enqueue, :value 1}
{:process 0, :type :ok, :f :enqueue, :value 1}
{:process 1, :type :invoke, :f :enqueue, :value 2}
{:process 1, :type :ok, :f :enqueue, :value 2}
{:process 0, :type :invoke, :f :dequeue, :value nil}
{:process 0, :type :ok, :f :dequeue, :value 2}
{:process 1, :type :invoke, :f :dequeue, :value nil}
{:process 1, :type :ok, :f :dequeue, :value 1}
"""


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_model_flag_on_a_knossos_history(tmp_path: Path) -> None:
    path = tmp_path / "queue.edn"
    path.write_text(KNOSSOS)
    r = _check(str(path), "--model", UQ, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["details"]["model"] == UQ
    # without --model the ops name the FIFO queue, and out-of-order dequeues break it
    r = _check(str(path), "--json")
    assert r.returncode == 1, r.stdout + r.stderr
    assert json.loads(r.stdout)["details"]["model"] == "queue"
    # a value never enqueued is invalid for the unordered queue too
    path.write_text(KNOSSOS.replace(":ok, :f :dequeue, :value 1}", ":ok, :f :dequeue, :value 7}"))
    r = _check(str(path), "--model", UQ)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "dequeue returned 7" in r.stdout
