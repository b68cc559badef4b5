"""The checker agrees with a brute-force oracle on thousands of small generated histories,
and every history generated from a sequential execution is judged linearizable."""

from __future__ import annotations

import random
from typing import Any

from checker_oracle import build_history, oracle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.checkers.models import get_model

SETTINGS = settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _op_strategy(model: str, unique: bool) -> st.SearchStrategy[dict[str, Any]]:
    vals = st.integers(0, 2)
    typ = st.sampled_from(["ok", "ok", "ok", "fail", "info"])
    if model == "cas-register":
        return st.one_of(
            st.builds(
                lambda o, t: {"f": "read", "value": None, "output": o, "type": t},
                st.one_of(st.none(), vals),
                typ,
            ),
            st.builds(lambda v, t: {"f": "write", "value": v, "output": v, "type": t}, vals, typ),
            st.builds(
                lambda a, b, t: {"f": "cas", "value": [a, b], "output": [a, b], "type": t},
                vals,
                vals,
                typ,
            ),
        )
    if model == "register":  # values made unique below when `unique`
        return st.one_of(
            st.builds(
                lambda o, t: {"f": "read", "value": None, "output": o, "type": t},
                st.one_of(st.none(), st.integers(0, 4)),
                typ,
            ),
            st.builds(lambda t: {"f": "write", "value": None, "output": None, "type": t}, typ),
        )
    if model == "kv":
        toks = st.sampled_from(["a", "b", "c"])
        return st.one_of(
            st.builds(
                lambda o, t: {"f": "get", "value": None, "output": o, "type": t},
                st.sampled_from(["", "a", "b", "ab", "ba", "abc", "ca", "c"]),
                typ,
            ),
            st.builds(lambda v, t: {"f": "append", "value": v, "output": v, "type": t}, toks, typ),
            st.builds(lambda v, t: {"f": "put", "value": v, "output": v, "type": t}, toks, typ),
        )
    if model == "queue":
        return st.one_of(
            st.builds(lambda v, t: {"f": "enqueue", "value": v, "output": v, "type": t}, vals, typ),
            st.builds(
                lambda o, t: {"f": "dequeue", "value": None, "output": o, "type": t},
                st.one_of(st.none(), vals),
                typ,
            ),
        )
    if model == "set":
        return st.one_of(
            st.builds(lambda v, t: {"f": "add", "value": v, "output": v, "type": t}, vals, typ),
            st.builds(
                lambda o, t: {"f": "read", "value": None, "output": sorted(o), "type": t},
                st.sets(vals, max_size=3),
                typ,
            ),
        )
    assert model == "mutex"
    return st.builds(
        lambda f, t: {"f": f, "value": None, "output": None, "type": t},
        st.sampled_from(["acquire", "release"]),
        typ,
    )


@st.composite
def histories(draw: Any, model: str, max_ops: int = 7, keys: int = 1) -> Any:
    specs = draw(st.lists(_op_strategy(model, False), min_size=1, max_size=max_ops))
    if model == "register":
        for n, s in enumerate(specs):
            if s["f"] == "write":
                s["value"] = s["output"] = n  # unique values: the zone fast path
    if model == "kv" and draw(st.booleans()):
        # unique append tokens, no puts: the append-order fast path
        for n, s in enumerate(specs):
            if s["f"] in ("append", "put"):
                s["f"] = "append"
                s["value"] = s["output"] = "abcdefgh"[n]
    if keys > 1:
        for s in specs:
            s["key"] = draw(st.integers(0, keys - 1))
    events = [(i, "call") for i in range(len(specs))]
    for i, s in enumerate(specs):
        if not (s["type"] == "info" and draw(st.booleans())):
            events.append((i, "ret"))
    # a random interleaving with each call before its return
    order = draw(st.permutations(events))
    pos = {e: n for n, e in enumerate(order)}
    fixed = []
    for e in order:
        i, what = e
        if what == "ret" and pos[(i, "call")] > pos[e]:
            continue
        fixed.append(e)
        if what == "call" and (i, "ret") in pos and pos[(i, "ret")] < pos[e]:
            fixed.append((i, "ret"))
    return build_history(specs, fixed)


def _agree(history: Any, model: str) -> None:
    m = get_model(model)
    ops = history.operations()
    expected = oracle(ops, m)
    got = check_linearizable(ops, m)
    assert got.valid == expected, (expected, got.reason, [o.to_dict() for o in history.ops])
    if got.valid is False:
        assert got.anomalies and got.anomalies[0]["message"]


@SETTINGS
@given(histories("cas-register"))
def test_cas_register_agrees_with_oracle(h: Any) -> None:
    _agree(h, "cas-register")


@SETTINGS
@given(histories("register", max_ops=8))
def test_unique_register_zones_agree_with_oracle(h: Any) -> None:
    _agree(h, "register")


@SETTINGS
@given(histories("kv"))
def test_kv_agrees_with_oracle(h: Any) -> None:
    _agree(h, "kv")


@settings(max_examples=300, deadline=None)
@given(histories("cas-register", max_ops=8, keys=2))
def test_partitioned_cas_register_agrees_with_oracle(h: Any) -> None:
    _agree(h, "cas-register")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["queue", "set", "mutex"]).flatmap(
        lambda m: st.tuples(st.just(m), histories(m))
    )
)
def test_other_models_agree_with_oracle(mh: Any) -> None:
    _agree(mh[1], mh[0])


@st.composite
def sequential_histories(draw: Any) -> Any:
    """Run random ops sequentially on the model, then widen each op into a random interval
    around its linearization point; fail ops never take effect, info ops may or may not."""
    model_name = draw(st.sampled_from(["cas-register", "kv", "queue", "set", "mutex"]))
    m = get_model(model_name)
    rng = random.Random(draw(st.integers(0, 2**32)))
    n = draw(st.integers(1, 12))
    state = m.init()
    specs, points = [], []
    for i in range(n):
        s = draw(_op_strategy(model_name, False))
        f, value = s["f"], s["value"]
        v, _ = m.prepare(f, value, None)
        # the output the model would give: try candidate outputs
        out = _output_for(m, state, f, v)
        typ = rng.choice(["ok", "ok", "ok", "fail", "info"])
        applies = typ == "ok" or (typ == "info" and rng.random() < 0.5)
        if out is _ILLEGAL:  # e.g. release of a free lock, cas on the wrong value
            if typ == "ok":
                typ = "fail"
            applies = False
        if applies:
            _, state = m.step(state, f, v, out)
        output = list(out) if isinstance(out, frozenset | tuple) else out
        specs.append({"f": f, "value": value, "output": output, "type": typ})
        points.append(10 * i + 5)
    times = []
    for i, p in enumerate(points):
        call = p - rng.randint(1, 25)
        ret = p + rng.randint(1, 25)
        times.append((call, i, "call"))
        if not (specs[i]["type"] == "info" and rng.random() < 0.5):
            times.append((ret, i, "ret"))
    times.sort()
    return model_name, build_history(specs, [(i, w) for _t, i, w in times])


_ILLEGAL = object()


def _output_for(m: Any, state: Any, f: str, value: Any) -> Any:
    if f in ("read", "get"):
        return state if m.name != "set" else frozenset(state)
    if f == "dequeue":
        return state[0] if state else None
    ok, _ = m.step(state, f, value, value)
    return value if ok else _ILLEGAL


@settings(max_examples=1000, deadline=None)
@given(sequential_histories())
def test_sequential_executions_are_linearizable(mh: Any) -> None:
    model_name, h = mh
    got = check_linearizable(h, model_name)
    assert got.valid is True, (got.reason, [o.to_dict() for o in h.ops])
