"""Consistency models and the anomalies that rule them out, as Elle relates them.

Three graphs, all facts taken from Elle (jepsen-io/elle, `elle.consistency-model`), which cites
Adya, Bailis, Cerone, Fekete, Daudjee and others for each edge:

* MODELS: a -> b when every history that satisfies model a also satisfies b (strict
  serializable -> serializable -> repeatable read -> ...);
* IMPLIED: anomaly a -> b when finding a means b is present too (G0 -> G1c: a write cycle is
  circular information flow; G-single-item -> G-single; incompatible-order -> G1a);
* PROSCRIBED: model -> the anomalies it forbids directly (its weaker models forbid the rest).

From them: which anomalies a set of models forbids (what a checker must look for, and what
makes a history invalid), and which models a set of found anomalies rules out, summarised as
Elle does: `not`, the weakest models ruled out, and `also_not`, every stronger one.

Model names have a canonical form (Adya's PL-* names where he has one) and a friendly form
(the names people type: read-committed, snapshot-isolation); everything here takes either and
answers in friendly names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING

from dsjepsen.errors import ConfigError
from dsjepsen.history import printable

if TYPE_CHECKING:
    from dsjepsen.history import History

#: friendly name -> canonical name (models without an alias are their own canonical name)
CANONICAL: dict[str, str] = {
    "consistent-view": "PL-2+",
    "conflict-serializable": "PL-3",
    "cursor-stability": "PL-CS",
    "forward-consistent-view": "PL-FCV",
    "monotonic-snapshot-read": "PL-MSR",
    "monotonic-view": "PL-2L",
    "read-committed": "PL-2",
    "read-uncommitted": "PL-1",
    "repeatable-read": "PL-2.99",
    "serializable": "PL-3",
    "snapshot-isolation": "PL-SI",
    "strict-serializable": "PL-SS",
    "strong-serializable": "PL-SS",
    "update-serializable": "PL-3U",
    "strong-session-read-uncommitted": "strong-session-PL-1",
    "strong-session-read-committed": "strong-session-PL-2",
    "strong-read-uncommitted": "strong-PL-1",
    "strong-read-committed": "strong-PL-2",
}

#: canonical name -> the friendly name answers use (serializable and strict-serializable
#: for the two canonical names that several friendly names share)
FRIENDLY: dict[str, str] = {
    **{c: f for f, c in CANONICAL.items()},
    "PL-3": "serializable",
    "PL-SS": "strict-serializable",
}

#: model -> the models it implies (stronger -> weaker), before canonicalisation
_MODELS: dict[str, tuple[str, ...]] = {
    "causal-cerone": ("read-atomic",),
    "consistent-view": ("cursor-stability", "monotonic-view"),
    "conflict-serializable": ("view-serializable",),
    "cursor-stability": ("read-committed", "PL-2"),
    "forward-consistent-view": ("consistent-view",),
    "PL-2": ("PL-1",),
    "PL-3": ("repeatable-read", "update-serializable"),
    "update-serializable": ("forward-consistent-view",),
    "monotonic-atomic-view": ("read-committed",),
    "monotonic-view": ("PL-2",),
    "monotonic-snapshot-read": ("PL-2",),
    "parallel-snapshot-isolation": ("causal-cerone", "update-atomic"),
    "prefix": ("causal-cerone",),
    "read-atomic": ("monotonic-atomic-view",),
    "read-committed": ("read-uncommitted",),
    "repeatable-read": ("cursor-stability", "monotonic-atomic-view"),
    "update-atomic": ("read-atomic",),
    "serializable": ("repeatable-read", "snapshot-isolation", "view-serializable"),
    "session-serializable": ("1SR",),
    "snapshot-isolation": (
        "forward-consistent-view",
        "monotonic-atomic-view",
        "monotonic-snapshot-read",
        "parallel-snapshot-isolation",
        "prefix",
    ),
    "strict-serializable": (
        "PL-3",
        "serializable",
        "linearizable",
        "snapshot-isolation",
        "strong-snapshot-isolation",
        "strong-session-serializable",
    ),
    "strong-session-PL-1": ("PL-1",),
    "strong-session-PL-2": ("PL-2", "strong-session-PL-1"),
    "strong-PL-1": ("strong-session-PL-1",),
    "strong-PL-2": ("strong-session-PL-2", "strong-PL-1"),
    "strong-session-serializable": ("serializable", "strong-session-snapshot-isolation"),
    "strong-session-snapshot-isolation": ("snapshot-isolation", "strong-session-PL-2"),
    "strong-serializable": ("session-serializable",),
    "strong-snapshot-isolation": ("strong-session-snapshot-isolation", "strong-PL-2"),
    "linearizable": ("sequential",),
    "sequential": ("causal",),
    "causal": ("writes-follow-reads", "PRAM"),
    "PRAM": ("monotonic-reads", "monotonic-writes", "read-your-writes"),
}

#: anomaly -> the anomalies it implies
IMPLIED: dict[str, tuple[str, ...]] = {
    "G0": ("G1c", "G0-process"),
    "G0-process": ("G1c-process", "G0-realtime"),
    "G0-realtime": ("G1c-realtime",),
    "G1a": ("G1",),
    "G1b": ("G1",),
    "G1c": ("G1", "G1c-process"),
    "G1c-process": ("G1c-realtime", "G1-process"),
    "G1c-realtime": ("G1-realtime",),
    "G1": ("G1-process",),
    "G1-process": ("G1-realtime",),
    "G-single-item": ("G-single", "G-single-item-process", "G-nonadjacent-item"),
    "G-single-item-process": (
        "G-single-process",
        "G-single-item-realtime",
        "G-nonadjacent-item-process",
    ),
    "G-single-item-realtime": ("G-single-realtime", "G-nonadjacent-item-realtime"),
    "G-single": ("G-nonadjacent", "GSIb", "G-single-process"),
    "G-single-process": ("G-nonadjacent-process", "G-single-realtime"),
    "G-single-realtime": ("G-nonadjacent-realtime",),
    "G-nonadjacent-item": ("G-nonadjacent", "G2-item", "G-nonadjacent-item-process"),
    "G-nonadjacent-item-process": (
        "G-nonadjacent-process",
        "G2-item-process",
        "G-nonadjacent-item-realtime",
    ),
    "G-nonadjacent-item-realtime": ("G2-item-realtime", "G-nonadjacent-realtime"),
    "G-nonadjacent": ("G2", "G-nonadjacent-process"),
    "G-nonadjacent-process": ("G2-process", "G-nonadjacent-realtime"),
    "G-nonadjacent-realtime": ("G2-realtime",),
    "G2": ("G2-process",),
    "G2-item": ("G2", "G2-item-process"),
    "G2-item-process": ("G2-process", "G2-item-realtime"),
    "G2-item-realtime": ("G2-realtime",),
    "G2-process": ("G2-realtime",),
    "GSIa": ("GSI",),
    "GSIb": ("GSI",),
    "incompatible-order": ("G1a",),
    "future-read": ("G1c",),
    "dirty-update": ("G1a",),
    "lost-update": ("write-skew", "G2-item"),
    "write-skew": ("G2",),
}

#: severity only (G0 is worse than G-single without implying it): orders the cycle searches
_SEVERITY: dict[str, tuple[str, ...]] = {
    "G0": ("G1c",),
    "G0-process": ("G1c-process",),
    "G0-realtime": ("G1c-realtime",),
    "G1c": ("G-single", "G2-item"),
    "G1c-process": ("G-single-process", "G2-item-process"),
    "G1c-realtime": ("G-single-realtime", "G2-item-realtime"),
    "G2": ("G0-process",),
    "G2-process": ("G0-realtime",),
}

#: model (any name) -> the anomalies it forbids directly
_PROSCRIBED: dict[str, tuple[str, ...]] = {
    "causal-cerone": ("internal", "G1a"),
    "cursor-stability": ("G1", "G-cursor", "lost-update"),
    "monotonic-view": ("G1", "G-monotonic"),
    "monotonic-snapshot-read": ("G1", "G-MSR"),
    "consistent-view": ("G1", "G-single"),
    "forward-consistent-view": ("G1", "G-SIb"),
    "parallel-snapshot-isolation": ("internal", "G1a"),
    "PL-3": ("G1", "G2", "predicate-read-miss", "PL-3-cycle-exists"),
    "PL-2": ("G1", "PL-2-cycle-exists"),
    "PL-1": ("G0", "duplicate-elements", "cyclic-versions", "PL-1-cycle-exists"),
    "prefix": ("internal", "G1a"),
    "serializable": ("internal",),
    "snapshot-isolation": ("internal", "G1", "G-SI", "G-nonadjacent", "PL-SI-cycle-exists"),
    "read-atomic": ("internal", "G1a", "future-read"),
    "repeatable-read": ("G1", "G2-item", "PL-2.99-cycle-exists", "lost-update"),
    "update-atomic": ("lost-update",),
    "strict-serializable": ("G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"),
    "strong-session-PL-1": ("strong-session-PL-1-cycle-exists", "G0-process"),
    "strong-session-PL-2": ("strong-session-PL-2-cycle-exists", "G1c-process"),
    "strong-PL-1": ("strong-PL-1-cycle-exists", "G0-realtime"),
    "strong-PL-2": ("strong-PL-2-cycle-exists", "G1c-realtime"),
    "strong-session-snapshot-isolation": (
        "internal",
        "G1-process",
        "G-nonadjacent-process",
        "strong-session-snapshot-isolation-cycle-exists",
    ),
    "strong-snapshot-isolation": (
        "internal",
        "G1-realtime",
        "G-nonadjacent-realtime",
        "strong-snapshot-isolation-cycle-exists",
    ),
    "strong-session-serializable": (
        "G1-process",
        "G2-process",
        "strong-session-serializable-cycle-exists",
    ),
    "update-serializable": ("G1", "G-update"),
}

#: the models `--consistency` takes for transactional histories: Elle's, without the
#: single-object ones (linearizable, sequential, causal... mean something else to dsjepsen)
TXN_MODELS: tuple[str, ...] = (
    "read-uncommitted",
    "read-committed",
    "read-atomic",
    "cursor-stability",
    "monotonic-atomic-view",
    "monotonic-view",
    "monotonic-snapshot-read",
    "consistent-view",
    "forward-consistent-view",
    "repeatable-read",
    "snapshot-isolation",
    "parallel-snapshot-isolation",
    "prefix",
    "causal-cerone",
    "update-atomic",
    "update-serializable",
    "serializable",
    "conflict-serializable",
    "strong-session-read-uncommitted",
    "strong-session-read-committed",
    "strong-read-uncommitted",
    "strong-read-committed",
    "strong-session-snapshot-isolation",
    "strong-snapshot-isolation",
    "strong-session-serializable",
    "strict-serializable",
    "strong-serializable",
)

#: what a transactional check forbids when no model is named (Elle's default)
DEFAULT_TXN_MODEL = "strict-serializable"


def canonical(model: str) -> str:
    return CANONICAL.get(model, model)


def friendly(model: str) -> str:
    return FRIENDLY.get(model, model)


def _dag(edges: Mapping[str, Iterable[str]], rename: bool) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for a, bs in edges.items():
        ca = canonical(a) if rename else a
        out.setdefault(ca, set())
        for b in bs:
            cb = canonical(b) if rename else b
            out[ca].add(cb)
            out.setdefault(cb, set())
    return {k: frozenset(v) for k, v in out.items()}


MODELS = _dag(_MODELS, rename=True)
PROSCRIBED = _dag(_PROSCRIBED, rename=True)
_ANOMALIES = _dag(IMPLIED, rename=False)


def _reverse(g: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {k: set() for k in g}
    for a, bs in g.items():
        for b in bs:
            out.setdefault(b, set()).add(a)
    return {k: frozenset(v) for k, v in out.items()}


_MODELS_IN = _reverse(MODELS)
_ANOMALIES_IN = _reverse(_ANOMALIES)
_PROSCRIBED_IN = _reverse(PROSCRIBED)


def _closure(start: Iterable[str], g: Mapping[str, frozenset[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        x = todo.pop()
        if x in seen:
            continue
        seen.add(x)
        todo.extend(g.get(x, ()))
    return seen


def known_model(model: str) -> bool:
    return canonical(model) in MODELS


def implied_anomalies(anomalies: Iterable[str]) -> set[str]:
    """The anomalies given and every anomaly they imply."""
    return _closure(anomalies, _ANOMALIES)


def anomalies_implying(anomalies: Iterable[str]) -> set[str]:
    """The anomalies given and every anomaly that implies one of them."""
    return _closure(anomalies, _ANOMALIES_IN)


def implied_models(models: Iterable[str]) -> set[str]:
    """Canonical names of the models given and of every model they imply."""
    return _closure((canonical(m) for m in models), MODELS)


def impossible_models(anomalies: Iterable[str]) -> set[str]:
    """Canonical names of every model the anomalies rule out: each forbids one of them, or
    one they imply, or implies a model that does."""
    direct = {m for a in implied_anomalies(anomalies) for m in _PROSCRIBED_IN.get(a, ())}
    return _closure(direct, _MODELS_IN)


@cache
def prohibited_by(models: frozenset[str]) -> frozenset[str]:
    """Every anomaly that cannot be present if all of `models` hold."""
    direct = {a for m in implied_models(models) for a in PROSCRIBED.get(m, ())}
    return frozenset(anomalies_implying(direct))


def _most(models: Iterable[str], graph: Mapping[str, frozenset[str]]) -> set[str]:
    ms = {canonical(m) for m in models}
    keep = set(ms)
    for m in ms:
        others = keep - {m}
        if others & (_closure(graph.get(m, ()), graph) - {m}):
            keep.discard(m)
    return keep


def weakest(models: Iterable[str]) -> set[str]:
    """The models of the set that no other model of the set is weaker than."""
    return _most(models, MODELS)


def strongest(models: Iterable[str]) -> set[str]:
    """The models of the set that no other model of the set is stronger than."""
    return _most(models, _MODELS_IN)


def boundary(anomalies: Iterable[str]) -> tuple[list[str], list[str]]:
    """(not, also_not) in friendly names, sorted: the weakest models the anomalies rule out,
    and every other model they rule out (all stronger than some model in `not`)."""
    impossible = impossible_models(anomalies)
    is_not = weakest(impossible)
    also = impossible - is_not
    return sorted({friendly(m) for m in is_not}), sorted({friendly(m) for m in also})


def strongest_possible(anomalies: Iterable[str]) -> list[str]:
    """The strongest transactional models (of TXN_MODELS) that the anomalies do not rule out,
    friendly and sorted: what was found says nothing against these (which is not a proof that
    the history satisfies them; a checker only sees the anomalies its inference can see)."""
    impossible = impossible_models(anomalies)
    possible = {canonical(m) for m in TXN_MODELS} - impossible
    return sorted({friendly(m) for m in strongest(possible)})


@cache
def _depths() -> dict[str, int]:
    merged: dict[str, set[str]] = {k: set(v) for k, v in _ANOMALIES.items()}
    for a, bs in _SEVERITY.items():
        merged.setdefault(a, set()).update(bs)
        for b in bs:
            merged.setdefault(b, set())
    depth = dict.fromkeys(merged, 0)
    # longest path from a root: relax in topological order (the graph is small and acyclic)
    indeg = dict.fromkeys(merged, 0)
    for bs in merged.values():
        for b in bs:
            indeg[b] += 1
    ready = sorted(k for k, d in indeg.items() if d == 0)
    while ready:
        a = ready.pop()
        for b in sorted(merged[a]):
            depth[b] = max(depth[b], depth[a] + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    return depth


def anomaly_order(anomaly: str) -> tuple[int, str]:
    """A sort key putting every anomaly before those it implies (and the worse of two
    unrelated ones first): the order cycle searches go in, so that a cycle found makes the
    searches for what it implies unnecessary."""
    return (_depths().get(anomaly, 0), anomaly)


__all__ = [
    "DEFAULT_TXN_MODEL",
    "IMPLIED",
    "MODELS",
    "PROSCRIBED",
    "TXN_MODELS",
    "anomalies_implying",
    "anomaly_order",
    "boundary",
    "canonical",
    "friendly",
    "implied_anomalies",
    "implied_models",
    "impossible_models",
    "known_model",
    "prohibited_by",
    "strongest",
    "strongest_possible",
    "weakest",
    "LIST_APPEND",
    "RW_REGISTER",
    "consistency_models",
    "txn_kind",
]


# ---------------------------------------------------------------------------------------------
# --consistency, and which transactional checker a history calls for

#: the transactional checkers' names (their modules import numpy: this one does not, so that
#: `dsjepsen check` of a register history never loads it)
LIST_APPEND = "list-append"
RW_REGISTER = "rw-register"


def consistency_models(consistency: str | Sequence[str] | None) -> tuple[str, ...]:
    """The models a check is for: Elle's names, comma-separated or a list; the default
    (strict-serializable) for None or for the context's single-object default
    ("linearizable"). ConfigError for a name that is not a transactional model."""
    if consistency is None or consistency == "linearizable":
        return (DEFAULT_TXN_MODEL,)
    names = consistency.split(",") if isinstance(consistency, str) else list(consistency)
    out = []
    for name in (n.strip() for n in names):
        if name not in TXN_MODELS:
            raise ConfigError(
                f"--consistency: {printable(repr(name))} is not a transactional model "
                f"(expected one of {', '.join(TXN_MODELS)})"
            )
        out.append(name)
    if not out:
        raise ConfigError("--consistency: no model named")
    return tuple(dict.fromkeys(out))


#: how many transactions the inference looks at
INFER_TXNS = 10_000


def txn_kind(history: History) -> str | None:
    """What the micro-ops of a history of transactions are, from its first INFER_TXNS client
    ops: "list-append" (an append, or a read that returned a list), "rw-register" (Elle's
    `r` / `w`), "multi-register" (Knossos's `read` / `write`, checked for linearizability
    unless a transactional model is asked for); None when the client ops are not all
    transactions (`f: txn` with a list of micro-ops)."""
    seen_long = seen_short = False
    n = 0
    for op in history.ops:
        if not op.is_client:
            continue
        if op.f != "txn" or not isinstance(op.value, list | tuple):
            return None
        n += 1
        for mop in op.value:
            if not isinstance(mop, list | tuple) or not mop:
                return None
            f = mop[0]
            if f == "append" or (f == "r" and len(mop) > 2 and isinstance(mop[2], list)):
                return LIST_APPEND
            if f in ("read", "write"):
                seen_long = True
            elif f in ("r", "w"):
                seen_short = True
        if n >= INFER_TXNS:
            break
    if seen_short:
        return RW_REGISTER
    if seen_long:
        return "multi-register"
    return None
