"""Elle's consistency-model lattice (checkers/consistency.py): which models an anomaly rules
out, the `not` / `also_not` boundary, and what a model forbids, against the facts Elle's own
tests and elle-cli's results state."""

from __future__ import annotations

import pytest

from dsjepsen.checkers import consistency as cm


@pytest.mark.parametrize(
    ("anomalies", "is_not"),
    [
        ([], []),
        (["G0"], ["read-uncommitted"]),
        (["G1a"], ["read-committed"]),
        (["G1c"], ["read-committed"]),
        (["internal"], ["read-atomic"]),
        (["G2", "internal"], ["read-atomic"]),
        (["G-single"], ["consistent-view"]),
        (["G-single-item"], ["consistent-view", "repeatable-read"]),
        (["G-single-item-process"], ["strong-session-snapshot-isolation"]),
        (["G-single-item-realtime"], ["strong-snapshot-isolation"]),
        (["G-nonadjacent-item"], ["repeatable-read", "snapshot-isolation"]),
        (["G1c-process"], ["strong-session-read-committed"]),
        (["G2-item"], ["repeatable-read"]),
        (["lost-update"], ["cursor-stability", "update-atomic"]),
        (["cyclic-versions"], ["read-uncommitted"]),
        (["duplicate-elements"], ["read-uncommitted"]),
        (
            ["incompatible-order", "G1c-realtime", "strong-PL-1-cycle-exists"],
            ["read-committed", "strong-read-uncommitted"],
        ),
        (
            ["G2-item", "strong-snapshot-isolation-cycle-exists"],
            ["repeatable-read", "strong-snapshot-isolation"],
        ),
        (["G-single-item", "internal"], ["consistent-view", "read-atomic", "repeatable-read"]),
    ],
)
def test_not_is_the_weakest_models_ruled_out(anomalies: list[str], is_not: list[str]) -> None:
    assert cm.boundary(anomalies)[0] == is_not


def test_also_not_holds_every_stronger_model_and_nothing_else() -> None:
    is_not, also = cm.boundary(["G-single"])
    assert is_not == ["consistent-view"]
    assert also == [
        "forward-consistent-view",
        "serializable",
        "snapshot-isolation",
        "strict-serializable",
        "strong-session-serializable",
        "strong-session-snapshot-isolation",
        "strong-snapshot-isolation",
        "update-serializable",
    ]
    # every model of also_not implies one of not, and no model of not implies another
    for m in also:
        assert cm.implied_models([m]) & {cm.canonical(n) for n in is_not}
    _, also_g2 = cm.boundary(["G2-item"])
    assert also_g2 == ["serializable", "strict-serializable", "strong-session-serializable"]


def test_what_models_forbid() -> None:
    rc = cm.prohibited_by(frozenset(["read-committed"]))
    assert {"G0", "G1a", "G1b", "G1c", "dirty-update", "incompatible-order"} <= rc
    assert "G2-item" not in rc and "G-single-item" not in rc
    rr = cm.prohibited_by(frozenset(["repeatable-read"]))
    assert {"G2-item", "G-single-item", "lost-update"} <= rr and "G2" not in rr
    si = cm.prohibited_by(frozenset(["snapshot-isolation"]))
    assert {"G-single-item", "G-nonadjacent-item", "internal"} <= si and "G2-item" not in si
    ss = cm.prohibited_by(frozenset(["strict-serializable"]))
    assert {"G1c-realtime", "G2-item-realtime", "G-single-item-process"} <= ss
    assert "G0-process" in cm.prohibited_by(frozenset(["strong-session-serializable"]))
    assert "G0-realtime" not in cm.prohibited_by(frozenset(["serializable"]))


def test_implications_and_order() -> None:
    assert "G1" in cm.implied_anomalies(["G1a"])
    assert "G2-item-realtime" in cm.implied_anomalies(["G-single-item"])
    assert "G1a" in cm.implied_anomalies(["incompatible-order"])
    # a cycle search goes from an anomaly to what it implies, never the other way
    for a, bs in cm.IMPLIED.items():
        for b in bs:
            assert cm.anomaly_order(a) < cm.anomaly_order(b), (a, b)


def test_weakest_strongest_and_names() -> None:
    assert cm.weakest(["serializable", "strict-serializable"]) == {"PL-3"}
    assert cm.strongest(["serializable", "read-atomic"]) == {"PL-3"}
    assert (
        cm.friendly("PL-SS") == "strict-serializable"
        and cm.canonical("repeatable-read") == "PL-2.99"
    )
    assert all(cm.known_model(m) for m in cm.TXN_MODELS)
    # what G2-item leaves standing: nothing it rules out, nothing weaker than a survivor
    possible = cm.strongest_possible(["G2-item"])
    ruled_out = cm.impossible_models(["G2-item"])
    assert possible and not {cm.canonical(m) for m in possible} & ruled_out
