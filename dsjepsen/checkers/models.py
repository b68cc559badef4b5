"""Sequential specifications that histories are checked against.

A model is a small pure class: an initial state, `step(state, f, value, output) -> (legal,
next_state)`, hashable states, and words for people (`describe_state`, `describe_op`,
`explain`). The checker partitions a history by `key` before it ever calls a model, so every
model describes ONE object (one register, one key's string, one set); a multi-key store is
checked as many independent single-key objects (P-compositionality).

`output` is what the completion reported (a read's value). For an indeterminate op (`info`,
or never completed) the checker passes `UNKNOWN`: the model must then allow any output, and
return the effect the op has IF it took effect (a cas that took effect succeeded). Ops whose f
is in `read_fs` have no effect on the state, so the checker drops indeterminate ones (they
constrain nothing).

Models are found by name through the `dsjepsen.models` entry-point group (dsjepsen.plugins),
built-ins included, so adding a model = one subclass plus one entry point. What the engine may
assume beyond `step` (the prunings and polynomial tests of linearizable.py and fastpath.py) a
model states in the hooks `register_roles` and `string_roles`; a new register-like model only
declares them and gets those optimizations, with no name test in the engine.

Values are compared as JSON compares them: `true` is not `1` (see `freeze`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, ClassVar

from dsjepsen import plugins
from dsjepsen.errors import ConfigError


class _Unknown:
    """The output of an op whose completion we never saw."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()

#: returned by a transition for an illegal step (a state can never be this object)
ILLEGAL: Any = object()


class _NotGiven:
    """No initial state was given (JSON null is a value a register may start with)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Any = _NotGiven()


class JsonBool:
    """A JSON boolean inside model states: equal only to itself.

    Python's `True == 1` (and equal hashes) would let a read of `true` match a write of `1` and
    make a non-linearizable history pass; JSON (and Jepsen's Clojure) tell them apart. `freeze`
    turns booleans into the two instances TRUE and FALSE, which compare unequal to every number.
    """

    __slots__ = ("value",)

    def __init__(self, value: bool):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return hash((JsonBool, self.value))

    def __repr__(self) -> str:
        return "true" if self.value else "false"

    def __reduce__(self) -> str:
        return "TRUE" if self.value else "FALSE"

    def __lt__(self, other: object) -> bool:
        # only for sorting mixed values in explanations; never a model comparison
        return repr(self) < repr(other)


TRUE = JsonBool(True)
FALSE = JsonBool(False)

_ATOMS = frozenset({int, str, float})


def freeze(value: Any) -> Hashable:
    """Make JSON-ish values hashable and typed as JSON types them: lists become tuples, dicts
    sorted item tuples, booleans TRUE / FALSE (never equal to 1 / 0)."""
    if value is None or type(value) in _ATOMS:
        return value
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        items = [(k, freeze(v)) for k, v in value.items()]
        try:
            return tuple(sorted(items))
        except TypeError:  # keys of several types (EDN maps): any canonical order will do
            return tuple(sorted(items, key=lambda kv: (type(kv[0]).__name__, repr(kv[0]))))
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    return value


def show(value: Any) -> str:
    """A value as a person reads it: nil for None, true / false, strings quoted, tuples as
    [a b]."""
    if value is None:
        return "nil"
    if value is True or value is False:
        return "true" if value else "false"
    if value is UNKNOWN:
        return "?"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + " ".join(show(v) for v in value) + "]"
    if isinstance(value, frozenset | set):
        return "#{" + " ".join(sorted(show(v) for v in value)) + "}"
    return str(value)


def _or_list(items: list[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]


class Model:
    """Base class. Subclasses set name, fs, read_fs and implement init and step."""

    name: ClassVar[str] = "model"
    description: ClassVar[str] = ""
    #: every f the model understands
    fs: ClassVar[frozenset[str]] = frozenset()
    #: fs that never change the state (an indeterminate one is dropped)
    read_fs: ClassVar[frozenset[str]] = frozenset()
    #: what the object is called in sentences ("the register could only hold ...")
    noun: ClassVar[str] = "object"
    verb: ClassVar[str] = "hold"
    #: among models whose fs cover a history's fs equally tightly, inference picks the lowest
    #: (a history of reads alone is a register's rather than a set's)
    inference_rank: ClassVar[int] = 100

    #: Register hook: f -> "read" | "write" | "cas", for a model whose state is nothing but the
    #: last value written, starting at `init()`. The engine then relies on exactly this, for
    #: values as `prepare` returns them: a "write" op sets the state to its value whatever it
    #: was; a "read" op is legal only in the state equal to its output and changes nothing; a
    #: "cas" op's value is (old, new), legal only in state old, and sets new. Equal values are
    #: indistinguishable. With that, pruning (d) of linearizable.py (indeterminate writes
    #: nobody can observe) is sound for a key whose every op has a role, and a key of reads and
    #: writes alone goes to the unique-value zone test (fastpath.register_zones). Empty: none.
    register_roles: ClassVar[Mapping[str, str]] = {}
    #: String hook: f -> "get" | "put" | "append", for a model whose state is a string (absent =
    #: empty) that "put" replaces with its value, "append" extends at the end with its value,
    #: and "get" returns whole as its output ("" when absent), values and outputs being the
    #: strings `prepare` returns. A key whose every op has a role goes to the epoch test
    #: (fastpath.kv_epochs). Empty: none.
    string_roles: ClassVar[Mapping[str, str]] = {}

    #: the state a check starts in when the user gave one (`starting_at`); None: `init()`
    _start: tuple[Hashable] | None = None

    def init(self) -> Hashable:
        """The model's own initial state: what an object holds before anything is done to it."""
        return None

    def start(self) -> Hashable:
        """The state every object starts in for this check: `init()`, unless the user said
        otherwise (Knossos's `(cas-register 0)`, `dsjepsen check --initial 0`). The engines
        start from this, never from `init()` directly."""
        return self.init() if self._start is None else self._start[0]

    def initial_state(self, value: Any) -> Hashable:
        """The state a user's initial value (JSON) stands for; ValueError when the model's
        objects cannot hold it. The default: the value itself, as `prepare` freezes values."""
        return freeze(value)

    def starting_at(self, value: Any) -> Model:
        """A copy of this model whose objects start in the state `value` names."""
        started = copy.copy(self)
        started._start = (self.initial_state(value),)
        return started

    @property
    def starts_at_init(self) -> bool:
        """True when the check starts where the model does (the fast paths assume it)."""
        return self._start is None or self._start[0] == self.init()

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        raise NotImplementedError

    def prepare(self, f: str, value: Any, output: Any) -> tuple[Any, Any]:
        """Normalise an op's value and output once, before the search (hashable, canonical)."""
        return freeze(value), (output if output is UNKNOWN else freeze(output))

    def transition(self, f: str, value: Any, output: Any) -> Callable[[Any], Any]:
        """A one-argument function state -> next state or ILLEGAL, for the search's hot loop.

        The default wraps `step`; models override it with tighter closures.
        """
        step = self.step

        def t(state: Any) -> Any:
            ok, nxt = step(state, f, value, output)
            return nxt if ok else ILLEGAL

        return t

    def describe_state(self, state: Any) -> str:
        return show(state)

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        if output is UNKNOWN or output == value or output is None:
            return f"{f} {show(value)}"
        return f"{f} {show(value)} -> {show(output)}"

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        """One sentence: why this op cannot take effect in any of these states."""
        held = _or_list(sorted({self.describe_state(s) for s in states}))
        return (
            f"{self.describe_op(f, value, output)} cannot be linearized: "
            f"the {self.noun} could only {self.verb} {held} at that point"
        )

    def __repr__(self) -> str:
        return f"<model {self.name}>"


class CasRegister(Model):
    """A single register: read, write, and compare-and-set with value [old, new]."""

    name = "cas-register"
    description = "one register: read, write, cas [old new]"
    fs = frozenset({"read", "write", "cas"})
    read_fs = frozenset({"read"})
    noun = "register"
    inference_rank = 1
    register_roles = {"read": "read", "write": "write", "cas": "cas"}

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f == "read":
            return (output is UNKNOWN or output == state), state
        if f == "write":
            return True, value
        if f == "cas":
            old, new = value
            return state == old, new
        raise ValueError(f"{self.name} model has no operation {f!r}")

    def transition(self, f: str, value: Any, output: Any) -> Callable[[Any], Any]:
        if f == "read":
            if output is UNKNOWN:
                return lambda s: s
            return lambda s: s if s == output else ILLEGAL
        if f == "write":
            return lambda s: value
        if f == "cas":
            old, new = value
            return lambda s: new if s == old else ILLEGAL
        return super().transition(f, value, output)

    def prepare(self, f: str, value: Any, output: Any) -> tuple[Any, Any]:
        value, output = super().prepare(f, value, output)
        if f == "read" and output is not UNKNOWN:
            # Jepsen's read invocations carry nil; the completion has the value read.
            return None, output
        if f == "cas" and (not isinstance(value, tuple) or len(value) != 2):
            raise ValueError(f"cas value must be [old, new], got {show(value)}")
        return value, output

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        if f == "read":
            return "read" if output is UNKNOWN else f"read {show(output)}"
        if f == "cas":
            return f"cas {show(value[0])} -> {show(value[1])}"
        return f"{f} {show(value)}"

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        held = _or_list(sorted({self.describe_state(s) for s in states}))
        if f == "read":
            return (
                f"read returned {show(output)}, but the {self.noun} could only hold "
                f"{held} at that point"
            )
        if f == "cas":
            return (
                f"cas from {show(value[0])} to {show(value[1])} succeeded, but the {self.noun} "
                f"could only hold {held} at that point"
            )
        return super().explain(f, value, output, states)


class Register(CasRegister):
    """A read/write register (no cas)."""

    name = "register"
    description = "one register: read, write"
    fs = frozenset({"read", "write"})
    inference_rank = 0
    register_roles = {"read": "read", "write": "write"}


class KV(CasRegister):
    """One key of a key-value store (the checker splits keys): get / put / append on strings
    (absent reads as "", as in Porcupine's kv model) and read / write / cas on any value."""

    name = "kv"
    description = "one key of a store: get / put / append on strings, read / write / cas"
    fs = frozenset({"get", "put", "append", "read", "write", "cas"})
    read_fs = frozenset({"get", "read"})
    noun = "key"
    inference_rank = 2
    string_roles = {"get": "get", "put": "put", "append": "append"}

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f == "get":
            return (output is UNKNOWN or output == (state or "")), state
        if f == "put":
            return True, value
        if f == "append":
            return True, (state or "") + value
        return super().step(state, f, value, output)

    def transition(self, f: str, value: Any, output: Any) -> Callable[[Any], Any]:
        if f == "get":
            if output is UNKNOWN:
                return lambda s: s
            if output == "":
                return lambda s: s if not s else ILLEGAL
            return lambda s: s if s == output else ILLEGAL
        if f == "put":
            return lambda s: value
        if f == "append":
            return lambda s: value if s is None else s + value
        return super().transition(f, value, output)

    def prepare(self, f: str, value: Any, output: Any) -> tuple[Any, Any]:
        if f in ("get", "put", "append"):
            value, output = Model.prepare(self, f, value, output)
            if f == "get":
                return None, ("" if output is None else output)
            if not isinstance(value, str):
                value = "" if value is None else str(value)
            return value, output
        return super().prepare(f, value, output)

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        if f == "get":
            return "get" if output is UNKNOWN else f"get {show(output)}"
        return super().describe_op(f, value, output)

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        if f == "get":
            held = _or_list(sorted({self.describe_state(s) for s in states}))
            return f"get returned {show(output)}, but the key could only hold {held} at that point"
        return super().explain(f, value, output, states)

    def describe_state(self, state: Any) -> str:
        return show("" if state is None else state)


def _json_list(model: Model, value: Any) -> list[Any]:
    """A user's initial value that must be a JSON list (a set's or a queue's elements)."""
    if not isinstance(value, list):
        raise ValueError(
            f"the {model.name} model starts from a list of elements such as [1, 2], "
            f"not {show(value)}"
        )
    return value


class SetModel(Model):
    """A grow-only set: add v, and read returning the whole set."""

    name = "set"
    description = "a grow-only set: add, read (the whole set)"
    fs = frozenset({"add", "read"})
    read_fs = frozenset({"read"})
    noun = "set"
    verb = "be"

    def init(self) -> Hashable:
        return frozenset()

    def initial_state(self, value: Any) -> Hashable:
        return frozenset(freeze(v) for v in _json_list(self, value))

    def prepare(self, f: str, value: Any, output: Any) -> tuple[Any, Any]:
        value, output = super().prepare(f, value, output)
        if f == "read" and output is not UNKNOWN:
            return None, frozenset(output or ())
        return value, output

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f == "add":
            return True, state | {value}
        if f == "read":
            return (output is UNKNOWN or output == state), state
        raise ValueError(f"set model has no operation {f!r}")

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        if f == "read":
            return "read" if output is UNKNOWN else f"read {show(output)}"
        return f"add {show(value)}"

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        held = _or_list(sorted({self.describe_state(s) for s in states}))
        return f"read returned {show(output)}, but the set could only be {held} at that point"


class FifoQueue(Model):
    """A FIFO queue: enqueue v; dequeue returns the head (nil when empty)."""

    name = "queue"
    description = "a FIFO queue: enqueue, dequeue"
    fs = frozenset({"enqueue", "dequeue"})
    noun = "queue"
    verb = "be"

    def init(self) -> Hashable:
        return ()

    def initial_state(self, value: Any) -> Hashable:
        return tuple(freeze(v) for v in _json_list(self, value))

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f == "enqueue":
            return True, state + (value,)
        if f == "dequeue":
            if output is UNKNOWN:
                # If it took effect it removed the head; an empty dequeue changes nothing,
                # which is the same as not taking effect, so it is not a legal effect here.
                return bool(state), state[1:]
            if output is None:
                return not state, state
            return bool(state) and state[0] == output, state[1:]
        raise ValueError(f"queue model has no operation {f!r}")

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        if f == "dequeue":
            return "dequeue" if output is UNKNOWN else f"dequeue -> {show(output)}"
        return f"enqueue {show(value)}"

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        held = _or_list(sorted({self.describe_state(s) for s in states}))
        if f == "dequeue":
            return (
                f"dequeue returned {show(output)}, but the queue could only be {held} at that point"
            )
        return super().explain(f, value, output, states)


def _bag_add(bag: frozenset[tuple[Any, int]], v: Any) -> frozenset[tuple[Any, int]]:
    """The multiset `bag` (a frozenset of (value, count) pairs) with one more `v`."""
    counts = dict(bag)
    counts[v] = counts.get(v, 0) + 1
    return frozenset(counts.items())


def _bag_remove(bag: frozenset[tuple[Any, int]], v: Any) -> frozenset[tuple[Any, int]] | None:
    """The multiset with one `v` fewer, or None when it holds no `v`."""
    counts = dict(bag)
    n = counts.get(v, 0)
    if not n:
        return None
    if n == 1:
        del counts[v]
    else:
        counts[v] = n - 1
    return frozenset(counts.items())


#: the unordered queue's empty state: no elements, none owed to indeterminate dequeues
_EMPTY_BAG: Any = (frozenset(), 0, 0)


class UnorderedQueue(Model):
    """Knossos's unordered queue: enqueue v adds v to a multiset; a dequeue that returned v
    removes one v (any copy, in any order); a dequeue that returned nil saw the queue empty.

    The indeterminate dequeue. An `info` dequeue that took effect removed SOME element, which
    one unknown: a set of successor states, where the engines want one. We keep the choice
    open instead of making it. A state is (bag, size, k): `bag` holds every element enqueued
    and not yet determinately dequeued since the queue was last seen empty, and k counts the
    indeterminate dequeues that took effect since then, each owing the removal of one element
    of the bag, not yet named. The queue really holds the bag less k of its elements, so:

    * enqueue v: v joins the bag;
    * dequeue -> v: legal iff v is in the bag and another element is left for each of the k
      owed removals (size - 1 >= k); removes one v;
    * dequeue -> nil: legal iff the owed removals take exactly the whole bag (size == k);
      the queue is then empty, as at the start;
    * indeterminate dequeue: legal iff there is an element to take (size > k), then k + 1
      (taking nothing from an empty queue is the same as not taking effect, which the engine
      tries anyway).

    Why this is exact (the checkers' verdict is the one the any-element model gives). Any order
    the any-element model accepts, this one accepts: the bag is always the real content plus
    the elements the k dequeues took, so each rule above holds whenever the real step is legal.
    Conversely, given an order this model accepts, move each indeterminate dequeue that took
    effect to just before the next nil dequeue (or to the end), and let it take one of the
    elements left in the bag there (size == k at a nil dequeue, size >= k at the end, so there
    are enough): in between, the real queue holds the whole bag, so every dequeue -> v still
    finds its v. Moving an indeterminate op later keeps every constraint of both checkers: it
    has no return, so real time only asks that it come after what returned before its call, and
    it is its process's last op (a process is never reused after `info`), so process order asks
    nothing more. Hence some valid order exists in one model iff one does in the other.

    An unordered queue cannot be told from a FIFO queue by its operations, so inference picks
    `queue` (FIFO, the stronger claim); choose this one with `--model unordered-queue`.
    """

    name = "unordered-queue"
    description = "a queue handing out its elements in any order: enqueue, dequeue (Knossos)"
    fs = frozenset({"enqueue", "dequeue"})
    noun = "queue"
    # same fs as the FIFO queue: inference must pick the FIFO one
    inference_rank = FifoQueue.inference_rank + 1

    def init(self) -> Hashable:
        return _EMPTY_BAG

    def initial_state(self, value: Any) -> Hashable:
        bag: frozenset[tuple[Any, int]] = frozenset()
        items = _json_list(self, value)
        for v in items:
            bag = _bag_add(bag, freeze(v))
        return (bag, len(items), 0)

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        nxt = self.transition(f, value, output)(state)
        return (nxt is not ILLEGAL), (state if nxt is ILLEGAL else nxt)

    def transition(self, f: str, value: Any, output: Any) -> Callable[[Any], Any]:
        if f == "enqueue":
            return lambda s: (_bag_add(s[0], value), s[1] + 1, s[2])
        if f != "dequeue":
            raise ValueError(f"{self.name} model has no operation {f!r}")
        if output is UNKNOWN:
            return lambda s: (s[0], s[1], s[2] + 1) if s[1] > s[2] else ILLEGAL
        if output is None:
            return lambda s: _EMPTY_BAG if s[1] == s[2] else ILLEGAL

        def dequeue(s: Any) -> Any:
            if s[1] - 1 < s[2]:
                return ILLEGAL
            bag = _bag_remove(s[0], output)
            return ILLEGAL if bag is None else (bag, s[1] - 1, s[2])

        return dequeue

    def describe_state(self, state: Any) -> str:
        bag, size, owed = state
        if size == owed:
            return "empty"
        items = sorted(show(v) for v, n in bag for _ in range(n))
        held = "{" + " ".join(items) + "}"
        if owed == 1:
            return f"{held} less 1 element taken by an indeterminate dequeue"
        if owed:
            return f"{held} less {owed} elements taken by indeterminate dequeues"
        return held

    describe_op = FifoQueue.describe_op  # the same operations, written the same way

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        held = _or_list(sorted({self.describe_state(s) for s in states}))
        if f == "dequeue":
            got = "nil (empty)" if output is None else show(output)
            return f"dequeue returned {got}, but the queue could only hold {held} at that point"
        return super().explain(f, value, output, states)


class MultiRegister(Model):
    """Knossos's multi-register: a map of registers changed by transactions.

    An op is `f: txn` with a list of micro-ops `[read, k, v]` / `[write, k, v]` (Jepsen's
    `[[:read :x nil] [:write :y 2]]`; `r` / `w` and keyword spellings are accepted), applied in
    order and atomically. A completion carries the values its reads saw; an indeterminate txn
    (no completion) constrains nothing by its reads and may apply its writes. A register never
    written reads nil.
    """

    name = "multi-register"
    description = "a map of registers: txn of [read k v] / [write k v] micro-ops (Knossos)"
    fs = frozenset({"txn"})
    noun = "registers"

    def init(self) -> Hashable:
        return ()

    def initial_state(self, value: Any) -> Hashable:
        """`{"x": 0, "y": 0}`: registers x and y start at 0 (Knossos's
        `(multi-register {:x 0 :y 0})`); registers not named start nil."""
        if not isinstance(value, dict):
            raise ValueError(
                f"the {self.name} model starts from an object of registers such as "
                f'{{"x": 0, "y": 0}}, not {show(value)}'
            )
        regs = {k: freeze(v) for k, v in value.items() if v is not None}
        return tuple(sorted(regs.items(), key=lambda kv: repr(kv[0])))

    def prepare(self, f: str, value: Any, output: Any) -> tuple[Any, Any]:
        """Every micro-op must be [read|write key value]: checked here, before the search,
        so that a malformed one is bad input naming its line, not a failed check."""
        value, output = super().prepare(f, value, output)
        for mops in (value, output):
            if mops is UNKNOWN or (mops is None and mops is output):
                continue
            if not isinstance(mops, tuple):
                raise ValueError(
                    f"a txn's value is a list of [read|write key value] micro-ops, not {show(mops)}"
                )
            for mop in mops:
                if not isinstance(mop, tuple) or len(mop) != 3:
                    raise ValueError(f"a micro-op is [read|write key value], not {show(mop)}")
                self._kind(mop[0])
        return value, output

    @staticmethod
    def _kind(kind: Any) -> str:
        k = str(kind).lstrip(":")
        if k in ("r", "read"):
            return "read"
        if k in ("w", "write"):
            return "write"
        raise ValueError(f"multi-register: unknown micro-op {kind!r} (read or write)")

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f != "txn":
            raise ValueError(f"multi-register model has no operation {f!r}")
        known = output is not UNKNOWN and output is not None
        regs = dict(state)
        for mop in output if known else value:
            if len(mop) != 3:
                raise ValueError(
                    f"multi-register: a micro-op is [read|write key value], not {mop!r}"
                )
            kind, reg, v = self._kind(mop[0]), mop[1], mop[2]
            if kind == "read":
                if known and regs.get(reg) != v:
                    return False, state
            else:
                regs[reg] = v
        return True, tuple(sorted(regs.items(), key=lambda kv: repr(kv[0])))

    def describe_state(self, state: Any) -> str:
        return "{" + ", ".join(f"{show(k)}={show(v)}" for k, v in state) + "}"

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        shown = output if output is not UNKNOWN and output is not None else value
        return "txn " + " ".join(
            f"[{self._kind(m[0])[0]} {show(m[1])} {show(m[2])}]" for m in shown
        )


class Mutex(Model):
    """A lock: acquire succeeds only when free, release only when held."""

    name = "mutex"
    description = "a lock: acquire, release"
    fs = frozenset({"acquire", "release"})
    noun = "lock"
    verb = "be"

    def init(self) -> Hashable:
        return False

    def initial_state(self, value: Any) -> Hashable:
        """true: the lock starts held; false: free."""
        if value is not True and value is not False:
            raise ValueError(
                f"the {self.name} model starts held (true) or free (false), not {show(value)}"
            )
        return value

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f == "acquire":
            return not state, True
        if f == "release":
            return bool(state), False
        raise ValueError(f"mutex model has no operation {f!r}")

    def describe_state(self, state: Any) -> str:
        return "held" if state else "free"

    def describe_op(self, f: str, value: Any, output: Any = UNKNOWN) -> str:
        return f

    def explain(self, f: str, value: Any, output: Any, states: Iterable[Any]) -> str:
        held = _or_list(sorted({self.describe_state(s) for s in states}))
        return f"{f} succeeded, but the lock could only be {held} at that point"


#: the model of a history with no operations at all
DEFAULT_MODEL = "cas-register"


class UnknownModel(ConfigError, ValueError):
    """No model of that name: a bad argument (exit 254) that callers written against the
    older `ValueError` still catch."""


def available_models() -> dict[str, type[Model]]:
    """{name: model class} of every model the `dsjepsen.models` entry points provide."""
    return {
        name: cls
        for name, cls in plugins.available("models").items()
        if isinstance(cls, type) and issubclass(cls, Model)
    }


def get_model(name: str) -> Model:
    """A fresh instance of the model registered as `name`."""
    try:
        cls = plugins.get("models", name)
    except ConfigError as e:
        raise UnknownModel(str(e)) from None
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise UnknownModel(f"--model {name}: the plugin is not a Model subclass ({cls!r})")
    return cls()


def infer_model(fs: Iterable[str]) -> Model:
    """The registered model whose operations cover the history's fs most tightly (fewest fs,
    then lowest `inference_rank`, then name); DEFAULT_MODEL when there are no operations."""
    seen = set(fs)
    if not seen:
        return get_model(DEFAULT_MODEL)
    covering = [cls for cls in available_models().values() if seen <= cls.fs]
    if not covering:
        raise ValueError(
            f"no model understands the history's operations {', '.join(sorted(seen))}; pass --model"
        )
    best = min(covering, key=lambda c: (len(c.fs), c.inference_rank, c.name))
    return best()
