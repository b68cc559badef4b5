"""Every model: legal and illegal steps, inference, and the sentences people read."""

from __future__ import annotations

import pytest

from dsjepsen.checkers.models import (
    ILLEGAL,
    UNKNOWN,
    available_models,
    get_model,
    infer_model,
)


def steps(name, state, f, value, output):
    m = get_model(name)
    value, output = m.prepare(f, value, output)
    ok, nxt = m.step(state, f, value, output)
    t = m.transition(f, value, output)(state)
    # the fast transition must agree with the public step
    assert (t is not ILLEGAL) == ok
    if ok:
        assert t == nxt
    return ok, nxt


@pytest.mark.parametrize(
    "name,state,f,value,output,ok,nxt",
    [
        ("register", None, "read", None, None, True, None),
        ("register", 1, "read", None, 2, False, None),
        ("register", 1, "write", 3, 3, True, 3),
        ("cas-register", 1, "cas", [1, 2], [1, 2], True, 2),
        ("cas-register", 3, "cas", [1, 2], [1, 2], False, None),
        ("cas-register", 1, "cas", [1, 2], UNKNOWN, True, 2),
        ("kv", None, "get", None, "", True, None),
        ("kv", None, "append", "ab", "ab", True, "ab"),
        ("kv", "ab", "append", "c", "c", True, "abc"),
        ("kv", "ab", "get", None, "a", False, None),
        ("kv", "ab", "put", "z", "z", True, "z"),
        ("kv", 1, "cas", [1, 5], [1, 5], True, 5),
        ("set", frozenset(), "add", 1, 1, True, frozenset({1})),
        ("set", frozenset({1}), "read", None, [1], True, frozenset({1})),
        ("set", frozenset({1}), "read", None, [1, 2], False, None),
        ("queue", (), "enqueue", 1, 1, True, (1,)),
        ("queue", (1, 2), "dequeue", None, 1, True, (2,)),
        ("queue", (1, 2), "dequeue", None, 2, False, None),
        ("queue", (), "dequeue", None, None, True, ()),
        ("queue", (), "dequeue", None, UNKNOWN, False, None),
        (
            "unordered-queue",
            (frozenset(), 0, 0),
            "enqueue",
            1,
            1,
            True,
            (frozenset({(1, 1)}), 1, 0),
        ),
        (
            "unordered-queue",
            (frozenset({(1, 1), (2, 1)}), 2, 0),
            "dequeue",
            None,
            2,
            True,
            (frozenset({(1, 1)}), 1, 0),
        ),
        ("unordered-queue", (frozenset({(1, 1)}), 1, 0), "dequeue", None, 2, False, None),
        ("unordered-queue", (frozenset(), 0, 0), "dequeue", None, None, True, (frozenset(), 0, 0)),
        ("unordered-queue", (frozenset({(1, 1)}), 1, 0), "dequeue", None, None, False, None),
        # an indeterminate dequeue owes one element of the bag, not yet named
        (
            "unordered-queue",
            (frozenset({(1, 1)}), 1, 0),
            "dequeue",
            None,
            UNKNOWN,
            True,
            (frozenset({(1, 1)}), 1, 1),
        ),
        ("unordered-queue", (frozenset({(1, 1)}), 1, 1), "dequeue", None, UNKNOWN, False, None),
        ("unordered-queue", (frozenset({(1, 1)}), 1, 1), "dequeue", None, 1, False, None),
        (
            "unordered-queue",
            (frozenset({(1, 1)}), 1, 1),
            "dequeue",
            None,
            None,
            True,
            (frozenset(), 0, 0),
        ),
        ("mutex", False, "acquire", None, None, True, True),
        ("mutex", True, "acquire", None, None, False, None),
        ("mutex", True, "release", None, None, True, False),
        ("mutex", False, "release", None, None, False, None),
    ],
)
def test_steps(name, state, f, value, output, ok, nxt):
    got_ok, got_next = steps(name, state, f, value, output)
    assert got_ok == ok
    if ok:
        assert got_next == nxt


def test_states_are_hashable_and_described():
    for name in available_models():
        m = get_model(name)
        hash(m.init())
        assert isinstance(m.describe_state(m.init()), str)


def test_register_sentence():
    m = get_model("cas-register")
    assert m.explain("read", None, 3, [1, 4]) == (
        "read returned 3, but the register could only hold 1 or 4 at that point"
    )


@pytest.mark.parametrize(
    "fs,name",
    [
        ({"read", "write"}, "register"),
        ({"read", "write", "cas"}, "cas-register"),
        ({"get", "put", "append"}, "kv"),
        ({"add", "read"}, "set"),
        ({"enqueue", "dequeue"}, "queue"),
        ({"acquire", "release"}, "mutex"),
    ],
)
def test_infer(fs, name):
    assert infer_model(fs).name == name


def test_unordered_queue_is_chosen_by_name_only():
    """Its ops are the FIFO queue's: inference keeps the FIFO (stronger) reading."""
    assert get_model("unordered-queue").fs == get_model("queue").fs
    assert infer_model({"enqueue"}).name == "queue"


def test_infer_rejects_unknown_fs():
    with pytest.raises(ValueError, match="--model"):
        infer_model({"frobnicate"})


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model"):
        get_model("nope")
