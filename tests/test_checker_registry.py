"""Checkers and models come from the entry-point registry, and the engine reads only the
models' declared hooks: a new register-like model gets the prunings and fast paths by
declaring them, with no name test anywhere."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from checker_oracle import build_history, oracle_dp

from dsjepsen import plugins
from dsjepsen.checkers.base import CheckContext, Checker, run_checkers
from dsjepsen.checkers.linearizable import LinearizableChecker, check_linearizable
from dsjepsen.checkers.models import (
    UNKNOWN,
    CasRegister,
    Model,
    UnknownModel,
    available_models,
    get_model,
    infer_model,
)
from dsjepsen.checkers.stats import StatsChecker, check_stats
from dsjepsen.checkers.vacuous import VacuousChecker, check_vacuous
from dsjepsen.errors import ConfigError
from dsjepsen.history import NEMESIS, History, Op

BUILT_IN = {"linearizable": LinearizableChecker, "stats": StatsChecker, "vacuous": VacuousChecker}


def test_built_in_checkers_are_registered_and_need_no_arguments() -> None:
    found = plugins.available("checkers")
    for name, cls in BUILT_IN.items():
        assert found[name] is cls
        checker = cls()
        assert isinstance(checker, Checker)
        assert checker.name == name
        assert checker.description and "\n" not in checker.description


def test_models_come_from_the_registry() -> None:
    names = set(available_models())
    assert {"register", "cas-register", "kv", "set", "queue", "mutex"} <= names
    assert all(isinstance(get_model(n), Model) for n in names)
    with pytest.raises(UnknownModel) as e:
        get_model("nope")
    # a bad argument for the CLI (exit 254), and still a ValueError for older callers
    assert isinstance(e.value, ConfigError) and isinstance(e.value, ValueError)
    assert "known: " in str(e.value) and "cas-register" in str(e.value)


@pytest.mark.parametrize(
    "fs,name",
    [({"read"}, "register"), (set(), "cas-register"), ({"read", "cas"}, "cas-register")],
)
def test_inference_picks_the_tightest_registered_model(fs: set[str], name: str) -> None:
    assert infer_model(fs).name == name


def _ops(*rows: tuple[Any, ...]) -> History:
    """rows: (process, type, f, value[, key]); index and time are the position."""
    return History(
        [
            Op(i, i * 1000, r[0], r[1], r[2], r[3], key=r[4] if len(r) > 4 else None)
            for i, r in enumerate(rows)
        ]
    )


def test_checker_classes_run_their_engines() -> None:
    h = _ops(
        (0, "invoke", "write", 1, "k"),
        (0, "ok", "write", 1, "k"),
        (1, "invoke", "read", None, "k"),
        (1, "ok", "read", 2, "k"),
        (NEMESIS, "invoke", "start-partition", None),
        (NEMESIS, "ok", "start-partition", {"fault": "partition-one"}),
    )
    ctx = CheckContext(model="register", time_limit=10)
    composed, (lin, stats, vac) = run_checkers(
        [LinearizableChecker(), StatsChecker(), VacuousChecker()], h, ctx
    )
    assert lin.checker == "linearizable" and lin.valid is False
    assert lin.to_dict()["anomalies"] == check_linearizable(h, "register").anomalies
    assert stats.checker == "stats" and stats.details["by_f"] == check_stats(h).details["by_f"]
    assert vac.checker == "vacuous" and vac.valid is True
    assert composed.valid is False


def test_vacuous_reads_the_context() -> None:
    h = _ops(
        (0, "invoke", "read", None),
        (0, "ok", "read", None),
        (0, "invoke", "write", 1),
        (0, "ok", "write", 1),
        (NEMESIS, "invoke", "start-kill", None),
        (NEMESIS, "info", "start-kill", {"fault": "kill", "pids": [12]}),
    )
    v = VacuousChecker()
    # an info start is not an ok start: by default the fault did not take effect
    r = v.check(h, CheckContext(faults=("kill",)))
    assert r.valid == "unknown" and "fault kill was requested but never took effect" in r.reason
    # the fault package knows better: its completion records pids that were signalled
    r = v.check(
        h,
        CheckContext(
            faults=("kill",),
            fault_took_effect=lambda name, op: bool(op.value and op.value.get("pids")),
        ),
    )
    assert r.valid is True and r.details["faults_applied"] == {"kill": 1}
    # required_ok counts the run proper only: the write at index 2 is a final op here
    r = v.check(h, CheckContext(required_ok={"write": 1}, final_from_index=2))
    assert r.valid == "unknown" and "only 0 write op(s) succeeded" in r.reason


def test_vacuous_without_requirements_still_needs_one_ok_op() -> None:
    h = _ops((0, "invoke", "write", 1), (0, "fail", "write", 1))
    r = check_vacuous(h, required_ok={})
    assert r.valid == "unknown" and r.reason == (
        "no client op succeeded during the run (1 failed, 0 indeterminate)"
    )


# ---------------------------------------------------------------------------------------------
# A register-like model from outside: it declares the hooks and nothing else


class Cell(Model):
    """A register whose ops are called `peek` and `poke` (another database's vocabulary)."""

    name = "cell"
    fs = frozenset({"peek", "poke"})
    read_fs = frozenset({"peek"})
    register_roles: ClassVar[dict[str, str]] = {"peek": "read", "poke": "write"}

    def step(self, state: Any, f: str, value: Any, output: Any) -> tuple[bool, Any]:
        if f == "peek":
            return output is UNKNOWN or output == state, state
        return True, value

    def prepare(self, f: str, value: Any, output: Any) -> tuple[Any, Any]:
        value, output = super().prepare(f, value, output)
        return (None, output) if f == "peek" and output is not UNKNOWN else (value, output)


def _cell_history(stale: bool) -> History:
    specs = [
        {"f": "poke", "value": 1, "output": 1, "type": "ok"},
        {"f": "poke", "value": 2, "output": 2, "type": "ok"},
        {"f": "peek", "value": None, "output": 1 if stale else 2, "type": "ok"},
        {"f": "poke", "value": 3, "output": 3, "type": "info"},  # never read: prunable
    ]
    order = [(0, "call"), (0, "ret"), (1, "call"), (3, "call"), (1, "ret"), (2, "call")]
    return build_history(specs, [*order, (2, "ret")])


@pytest.mark.parametrize("stale", [False, True])
def test_a_model_that_declares_register_roles_gets_zones_and_pruning(stale: bool) -> None:
    h = _cell_history(stale)
    r = check_linearizable(h, Cell())
    assert r.valid is (not stale)
    assert oracle_dp(h.operations(), Cell()) is (not stale)
    (entry,) = r.details["per_key"].values()
    assert entry["method"] == "register-zones"
    assert entry["dropped_ops"] == 1  # the unread info poke (pruning d)
    if stale:
        (a,) = r.anomalies
        assert a["op"]["f"] == "peek" and a["op"]["output"] == 1  # named in its own words


def test_without_the_hooks_the_same_history_goes_to_the_search() -> None:
    class PlainCell(Cell):
        register_roles: ClassVar[dict[str, str]] = {}

    r = check_linearizable(_cell_history(True), PlainCell())
    (entry,) = r.details["per_key"].values()
    assert r.valid is False and entry["method"] == "search" and entry["dropped_ops"] == 0


def test_true_is_not_one() -> None:
    """JSON tells `true` from `1`; Python's True == 1 must not make a stale read pass."""
    for written, read in ((1, True), (True, 1), (0, False), ([1], [True])):
        h = _ops(
            (0, "invoke", "write", written),
            (0, "ok", "write", written),
            (1, "invoke", "read", None),
            (1, "ok", "read", read),
        )
        r = check_linearizable(h, CasRegister())
        assert r.valid is False, (written, read)
    same = _ops((0, "invoke", "write", True), (0, "ok", "write", True))
    same.ops += [Op(2, 2, 1, "invoke", "read", None), Op(3, 3, 1, "ok", "read", True)]
    assert check_linearizable(same, CasRegister()).valid is True
    # keys too: key true and key 1 are two registers
    keyed = _ops(
        (0, "invoke", "write", 5, True),
        (0, "ok", "write", 5, True),
        (1, "invoke", "read", None, 1),
        (1, "ok", "read", 5, 1),
    )
    r = check_linearizable(keyed, CasRegister())
    assert r.valid is False and r.details["keys"] == 2
