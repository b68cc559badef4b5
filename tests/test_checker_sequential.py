"""The sequential-consistency checker against a brute-force oracle, on textbook histories, and
through `dsjepsen check --consistency`.

The oracle tries every interleaving of the process orders (all keys together), placing each
indeterminate op anywhere after its process's previous op or dropping it; it shares no code
with the checker beyond `Model.prepare` and `Model.step`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.checkers.models import UNKNOWN, Model, get_model
from dsjepsen.checkers.sequential import SequentialChecker, check_sequential
from dsjepsen.cli import main
from dsjepsen.history import History, Op, write_jsonl
from dsjepsen.plugins import get


def sc_oracle(history: History, model: Model) -> bool:
    """Every interleaving of the process orders, indeterminate ops applied or dropped."""
    procs: dict[Any, list[tuple[Any, str, Any, Any, bool]]] = {}
    for o in history.operations():
        if o.type == "fail":
            continue
        det = o.ret is not None
        if not det and o.f in model.read_fs:
            continue
        value, output = model.prepare(o.f, o.value, o.output if det else UNKNOWN)
        procs.setdefault(o.process, []).append((o.key, o.f, value, output, det))
    lists = list(procs.values())

    def go(ptrs: tuple[int, ...], states: dict[Any, Any]) -> bool:
        if all(p == len(lst) for p, lst in zip(ptrs, lists, strict=True)):
            return True
        for i, lst in enumerate(lists):
            if ptrs[i] == len(lst):
                continue
            key, f, value, output, det = lst[ptrs[i]]
            nptrs = ptrs[:i] + (ptrs[i] + 1,) + ptrs[i + 1 :]
            ok, nxt = model.step(states.get(key, model.init()), f, value, output)
            if ok and go(nptrs, {**states, key: nxt}):
                return True
            if not det and go(nptrs, states):
                return True
        return False

    return go(tuple(0 for _ in lists), {})


def H(events: list[tuple[Any, str, str, Any, Any]]) -> History:
    """(process, type, f, value, key) events, in history order."""
    return History([Op(n, n, p, t, f, v, key=k) for n, (p, t, f, v, k) in enumerate(events)])


def done(p: Any, f: str, v: Any, k: Any, out: Any = None) -> list[tuple[Any, ...]]:
    """One op of process p, invoked and completed ok at once (no concurrency)."""
    return [(p, "invoke", f, v, k), (p, "ok", f, v if out is None else out, k)]


def generate(rng: random.Random, model_name: str) -> History:
    """A small random history: 2-3 processes of 1-3 ops over 1-2 keys and 1-2 values, reads
    returning any plausible value, the last op of a process sometimes info, fail or open."""
    nproc = rng.randint(2, 3)
    keys = ["x", "y"][: rng.randint(1, 2)]
    values = [1, 2][: rng.randint(1, 2)]
    plans: list[list[tuple[str, Any, Any, str]]] = []
    for _ in range(nproc):
        plan = []
        n = rng.randint(1, 3)
        for j in range(n):
            k = rng.choice(keys)
            if model_name == "kv":
                f = rng.choice(["get", "put", "append"])
                v = None if f == "get" else rng.choice(["a", "b"])
                out = rng.choice(["", "a", "b", "ab", "ba"]) if f == "get" else v
            else:
                fs = ["read", "write"] + (["cas"] if model_name == "cas-register" else [])
                f = rng.choice(fs)
                if f == "read":
                    v, out = None, rng.choice([None, *values])
                elif f == "write":
                    v = out = rng.choice(values)
                else:
                    v = out = [rng.choice([None, *values]), rng.choice(values)]
            typ = "ok"
            if j == n - 1:
                typ = rng.choice(["ok", "ok", "ok", "info", "fail", "open"])
            plan.append((f, v, out, typ, k))
        plans.append(plan)
    # interleave invocations and completions at random, each process in its own order
    events: list[tuple[Any, ...]] = []
    pos = [0] * nproc
    open_: list[bool] = [False] * nproc
    while True:
        live = [i for i in range(nproc) if pos[i] < len(plans[i])]
        if not live:
            break
        i = rng.choice(live)
        f, v, out, typ, k = plans[i][pos[i]]
        if not open_[i]:
            events.append((i, "invoke", f, v, k))
            open_[i] = True
            if typ == "open":
                pos[i] += 1
            continue
        events.append((i, typ, f, out if typ == "ok" else v, k))
        open_[i] = False
        pos[i] += 1
    return H(events)


MODELS = ["register", "cas-register", "kv"]


@pytest.mark.parametrize("model_name", MODELS)
def test_against_the_oracle(model_name: str) -> None:
    """Hundreds of generated histories per model, several keys among them: the checker's
    verdict equals the oracle's, with and without the linearizability shortcut."""
    rng = random.Random(14 + MODELS.index(model_name))
    model = get_model(model_name)
    counts = {"valid": 0, "invalid": 0, "graph": 0, "multi_key": 0}
    for _ in range(700):
        h = generate(rng, model_name)
        expected = sc_oracle(h, model)
        r = check_sequential(h, model_name)
        assert r.valid is expected, (h.ops, r.reason)
        raw = check_sequential(h, model_name, skip_linearizable=True)
        assert raw.valid is expected, (h.ops, raw.reason)
        if check_linearizable(h, model_name, explain=False).valid is True:
            assert expected  # linearizable implies sequentially consistent
        counts["valid" if expected else "invalid"] += 1
        counts["graph"] += raw.details.get("method") == "graph"
        counts["multi_key"] += raw.details["keys"] > 1
        if not expected:
            assert r.anomalies and r.reason
    assert counts["valid"] > 100 and counts["invalid"] > 100 and counts["multi_key"] > 100
    if model_name != "kv":
        assert counts["graph"] > 0


def generate_cross(rng: random.Random) -> History:
    """Store-buffer shaped histories, where the non-local failures live: each process writes
    one key then reads another (values repeat, so the graph pass is often blind), sometimes
    one more op; ops of different processes overlap at random."""
    nproc = rng.randint(2, 3)
    plans = []
    for i in range(nproc):
        mine, other = ("x", "y") if i % 2 == 0 else ("y", "x")
        plan = [("write", rng.choice([1, 2]), mine), ("read", rng.choice([None, 1, 2]), other)]
        if rng.random() < 0.4:
            plan.append(rng.choice([("write", rng.choice([1, 2]), other), ("read", 1, mine)]))
        plans.append(plan)
    events: list[tuple[Any, ...]] = []
    pos, open_ = [0] * nproc, [False] * nproc
    while any(pos[i] < len(plans[i]) for i in range(nproc)):
        i = rng.choice([i for i in range(nproc) if pos[i] < len(plans[i])])
        f, v, k = plans[i][pos[i]]
        if not open_[i]:
            events.append((i, "invoke", f, v if f == "write" else None, k))
        else:
            events.append((i, "ok", f, v, k))
            pos[i] += 1
        open_[i] = not open_[i]
    return H(events)


def test_non_local_cases_against_the_oracle() -> None:
    """Histories where every key passes alone but the whole does not: the whole-history
    search (or the graph pass) must catch each one."""
    rng = random.Random(7)
    model = get_model("register")
    non_local = 0
    methods: dict[str, int] = {}
    for _ in range(500):
        h = generate_cross(rng)
        expected = sc_oracle(h, model)
        r = check_sequential(h, "register")
        assert r.valid is expected, (h.ops, r.reason)
        per_key_ok = all(v["valid"] is True for v in r.details.get("per_key", {}).values())
        if not expected and r.details["method"] != "graph" and per_key_ok:
            non_local += 1
            assert r.details["scope"] == "whole-history"
        methods[r.details["method"]] = methods.get(r.details["method"], 0) + 1
    assert non_local >= 10, methods


def test_graph_pass_is_never_wrong_and_how_often_it_decides() -> None:
    """A cycle is a proof: every history the graph pass calls invalid is invalid (oracle)."""
    rng = random.Random(99)
    model = get_model("register")
    invalid = by_graph = 0
    for _ in range(600):
        h = generate(rng, "register")
        r = check_sequential(h, "register", skip_linearizable=True)
        expected = sc_oracle(h, model)
        if r.details.get("method") == "graph":
            assert expected is False
            by_graph += 1
        invalid += not expected
    assert invalid > 0 and by_graph > 0


def generate_kv_unique(rng: random.Random) -> History:
    """One key of get / put / append, each put or append writing its own token, 2-3 processes
    of 1-3 ops; each get returns a plausible value (a put's token or nothing, then tokens in
    some order), so the kv edges of the graph pass apply and are sometimes wrong to apply."""
    nproc = rng.randint(2, 3)
    tokens = iter("abcdefghij")
    plans = []
    for _ in range(nproc):
        plan = []
        n = rng.randint(1, 3)
        for j in range(n):
            f = rng.choice(["get", "get", "append", "append", "put"])
            v = None if f == "get" else next(tokens)
            typ = rng.choice(["ok", "ok", "ok", "info", "fail"]) if j == n - 1 else "ok"
            plan.append([f, v, None, typ])
        plans.append(plan)
    written = [(f, v) for plan in plans for f, v, _o, _t in plan if v is not None]
    for plan in plans:
        for op in plan:
            if op[0] == "get":
                start = [v for f, v in written if f == "put"][: rng.randint(0, 1)]
                rest = [v for f, v in written if f == "append"]
                rng.shuffle(rest)
                op[2] = "".join(start + rest[: rng.randint(0, len(rest))])
    events: list[tuple[Any, ...]] = []
    pos, open_ = [0] * nproc, [False] * nproc
    while any(pos[i] < len(plans[i]) for i in range(nproc)):
        i = rng.choice([i for i in range(nproc) if pos[i] < len(plans[i])])
        f, v, out, typ = plans[i][pos[i]]
        if not open_[i]:
            events.append((i, "invoke", f, v, "k"))
        else:
            events.append((i, typ, f, out if (f == "get" and typ == "ok") else v, "k"))
            pos[i] += 1
        open_[i] = not open_[i]
    return H(events)


def test_kv_graph_pass_is_never_wrong() -> None:
    """The get / put / append edges (kv keys) are each a necessary condition: every history
    the graph pass calls invalid is invalid for the oracle, and it decides some on its own."""
    rng = random.Random(2026)
    model = get_model("kv")
    invalid = by_graph = 0
    for _ in range(800):
        h = generate_kv_unique(rng)
        r = check_sequential(h, "kv", skip_linearizable=True)
        expected = sc_oracle(h, model)
        assert r.valid is expected, (h.ops, r.reason)
        if r.details.get("method") == "graph":
            by_graph += 1
        invalid += not expected
    assert invalid > 100 and by_graph > 50, (invalid, by_graph)


# ---------------------------------------------------------------------------------------------
# Textbook histories


def test_sequential_but_not_linearizable() -> None:
    """p0 writes 1 and returns; later p1 reads nil: stale in real time, fine sequentially."""
    h = H(done(0, "write", 1, "x") + done(1, "read", None, "x", None))
    assert check_linearizable(h, "register").valid is False
    r = check_sequential(h, "register")
    assert r.valid is True and r.details["scope"] == "whole-history"
    assert r.details["consistency"] == "sequential"


def store_buffer() -> History:
    return H(
        done(0, "write", 1, "x")
        + done(1, "write", 1, "y")
        + done(0, "read", None, "y")
        + done(1, "read", None, "x")
    )


def test_store_buffer_is_a_cycle_explained_in_words() -> None:
    r = check_sequential(store_buffer(), "register")
    assert r.valid is False and r.details["method"] == "graph"
    msg = r.anomalies[0]["message"]
    assert "p0 wrote x=1, then read y=nil" in msg
    assert "p1 wrote y=1, then read x=nil" in msg
    assert "cycle" in msg


def test_per_key_but_not_whole_history() -> None:
    """The store buffer with a third write of x=1 (p2): values of x are no longer unique, so
    the graph pass cannot tell which write a read saw and finds no cycle; each key alone is
    sequentially consistent; the whole-history search finds no order."""
    h = H(
        done(0, "write", 1, "x")
        + done(1, "write", 1, "y")
        + done(0, "read", None, "y")
        + done(1, "read", None, "x")
        + done(2, "write", 1, "x")
    )
    r = check_sequential(h, "register")
    assert r.valid is False
    assert r.details["method"] == "search" and r.details["scope"] == "whole-history"
    assert all(v["valid"] is True for v in r.details["per_key"].values())
    a = r.anomalies[0]
    assert a["prefix"] and a["process_orders"] and "not all together" in a["message"]
    assert sc_oracle(h, get_model("register")) is False


def test_per_key_violation_is_explained_like_linearizability() -> None:
    """A cas that no order can satisfy: the op that cannot be placed, the prefix, the
    processes' orders."""
    h = H(done(0, "write", 1, "x") + done(0, "cas", [2, 3], "x") + done(1, "read", None, "x", 3))
    r = check_sequential(h, "cas-register")
    assert r.valid is False and r.details["scope"] == "per-key"
    a = r.anomalies[0]
    assert "cannot be placed" in a["message"] or "could only hold" in a["message"]
    assert set(a["process_orders"]) == {"0", "1"} and a["prefix"]


def test_info_may_take_effect_later_or_never() -> None:
    h1 = H(
        [(0, "invoke", "write", 1, "x"), (0, "info", "write", 1, "x")]
        + done(1, "read", None, "x", 1)
        + done(1, "read", None, "x", None)
    )
    # read 1 then nil: the info write would have to happen and then un-happen
    assert check_sequential(h1, "register").valid is False
    h2 = H(
        [(0, "invoke", "write", 1, "x"), (0, "info", "write", 1, "x")]
        + done(1, "read", None, "x", None)
        + done(1, "read", None, "x", 1)
    )
    assert check_sequential(h2, "register").valid is True
    h3 = H(
        [(0, "invoke", "write", 1, "x"), (0, "fail", "write", 1, "x")]
        + done(1, "read", None, "x", 1)
    )
    assert check_sequential(h3, "register").valid is False  # a failed write never happened


def test_per_key_orders_merge_into_a_whole_history_order() -> None:
    """Two keys, no linearizable shortcut: the orders found for x and for y, with the process
    orders, leave no cycle, so they merge into one order of everything (no whole search)."""
    h = H(done(0, "write", 1, "x") + done(1, "read", None, "x") + done(0, "write", 1, "y"))
    r = check_sequential(h, "register", max_states=1)
    assert r.valid is True and r.details["scope"] == "whole-history"
    assert r.details["method"] == "per-key orders merged"


def test_whole_history_that_does_not_fit_is_unknown_per_key() -> None:
    """p0 reads y=1 then writes x=1; p1 writes x=2 then y=1. The order found for x (by
    invocation: x=1, x=2) crosses the one forced on y (write before read) through the process
    orders, so the per-key orders do not merge; with a state bound too small for the whole
    search the verdict is unknown with the scope per key (or valid with accept_per_key)."""
    h = H(
        done(0, "read", None, "y", 1)
        + done(0, "write", 1, "x")
        + done(1, "write", 2, "x")
        + done(1, "write", 1, "y")
    )
    assert check_sequential(h, "register").valid is True  # the whole search finds B, A
    r = check_sequential(h, "register", max_states=2)
    assert r.valid == "unknown" and r.details["scope"] == "per-key"
    assert "per key" in (r.reason or "")
    r2 = check_sequential(h, "register", max_states=2, accept_per_key=True)
    assert r2.valid is True and r2.details["scope"] == "per-key"


def test_registered() -> None:
    assert get("checkers", "sequential") is SequentialChecker


# ---------------------------------------------------------------------------------------------
# The CLI


def _write(tmp_path: Path, name: str, h: History) -> str:
    path = tmp_path / name
    write_jsonl(h, path)
    return str(path)


def test_cli_consistency_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = _write(
        tmp_path, "stale.jsonl", H(done(0, "write", 1, "x") + done(1, "read", None, "x"))
    )
    sb = _write(tmp_path, "sb.jsonl", store_buffer())
    assert main(["check", stale]) == 1
    out = capsys.readouterr().out
    assert "consistency: linearizable" in out
    assert main(["check", stale, "--consistency", "sequential"]) == 0
    out = capsys.readouterr().out
    assert "VALID (sequential" in out and "scope: whole-history" in out
    assert main(["check", sb, "--consistency", "sequential"]) == 1
    out = capsys.readouterr().out
    assert "p0 wrote x=1, then read y=nil" in out
    assert main(["check", stale, "--consistency", "sequential", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["checker"] == "sequential"
    assert d["details"]["consistency"] == "sequential"
    assert d["details"]["scope"] == "whole-history"
    assert main(["check", stale, "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["details"]["consistency"] == "linearizable"


def test_cli_unknown_consistency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = _write(
        tmp_path, "stale.jsonl", H(done(0, "write", 1, "x") + done(1, "read", None, "x"))
    )
    assert main(["check", stale, "--consistency", "causal"]) == 254
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--consistency" in err[0] and "causal" in err[0]


@pytest.mark.parametrize("kind", ["per-key", "cycle"])
def test_minimize_cuts_a_sequential_violation_to_its_core(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """`check --consistency sequential --minimize`: the violation padded with 30 harmless ops
    comes back as a core of its few ops, invalid, and every single removal from it valid."""
    noise: list[tuple[Any, ...]] = []
    for i in range(10):
        noise += done(2, "write", 10 + i, "z") + done(3, "read", None, "z", 10 + i)
        noise += done(2, "write", 10 + i, "w")
    if kind == "per-key":  # a read of x=2 after x was 1 and never 2 again... on key x alone
        core = done(0, "write", 1, "x") + done(0, "write", 2, "x")
        core += done(1, "read", None, "x", 2) + done(1, "read", None, "x", 1)
    else:
        core = store_buffer_events()
    h = H(noise[:20] + core + noise[20:])
    path = _write(tmp_path, "h.jsonl", h)
    assert main(["check", path, "--consistency", "sequential", "--minimize", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    minimal = d["details"]["minimal"]
    assert minimal["one_minimal"] and len(minimal["ops"]) == 4, minimal
    ops = h.operations()
    kept = [ops[i] for i in minimal["op_ids"]]
    assert check_sequential(kept, "register").valid is False
    # each single removal valid, an op that read a value going with the only write of it
    # (checked from scratch: the minimizer's rule, not its word)
    from dsjepsen.checkers.minimize import read_sources

    sources = read_sources(kept)
    for gone in kept:
        keep = [o for o in kept if o is not gone]
        while True:
            ids = {o.id for o in keep}
            left = [o for o in keep if all(any(s in ids for s in g) for g in sources.get(o.id, ()))]
            if len(left) == len(keep):
                break
            keep = left
        assert not keep or check_sequential(keep, "register").valid is True, gone
    assert {o.key for o in kept} == ({"x"} if kind == "per-key" else {"x", "y"})


def store_buffer_events() -> list[tuple[Any, ...]]:
    return (
        done(0, "write", 1, "x")
        + done(1, "write", 1, "y")
        + done(0, "read", None, "y")
        + done(1, "read", None, "x")
    )
