"""Fault packages: the built-in ones as the catalog sees them, a third-party package installed
at run time (a real dist-info directory on sys.path, found through entry points like any pip
package), name conflicts, `took_effect` dispatch, heal order, and the report's root-cause
analysis reading fault records without knowing any family.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsjepsen import plugins
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.history import History, Op
from dsjepsen.nemesis import catalog
from dsjepsen.nemesis.base import FaultPackage, Nemesis
from dsjepsen.nemesis.catalog import (
    CompositeNemesis,
    build_nemesis,
    check_names,
    fault_catalog,
    took_effect,
)
from dsjepsen.nemesis.partition import SHAPES, PartitionFaults
from dsjepsen.nemesis.process import KillFaults, PauseFaults
from dsjepsen.nemesis.schedule import FaultSchedule
from dsjepsen.reports import rca
from dsjepsen.reports.anomaly import Anomaly
from dsjepsen.reports.rundata import build_run_data
from dsjepsen.targets.base import Client, Target

BUILT_IN = {
    "partition": [
        "partition-majority",
        "partition-majorities-ring",
        "partition-one",
        "partition-leader",
        "bridge",
    ],
    "kill": ["kill", "kill-leader", "kill-minority", "kill-majority", "kill-all"],
    "pause": ["pause", "pause-leader", "pause-minority", "pause-majority", "pause-all"],
}


class QuietTarget(Target):
    """The package and catalog logic never reach the system; `name` drives `unsupported`."""

    name = "quiet"

    def __init__(self, name: str = "quiet") -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]

    def setup(self, cluster): ...
    def teardown(self, cluster): ...
    def start(self, cluster, node): ...
    def kill(self, cluster, node): ...
    def pause(self, cluster, node): ...
    def resume(self, cluster, node): ...
    def log_files(self, cluster, node):
        return []

    def client(self, cluster, node) -> Client:
        raise NotImplementedError


def cluster(n: int = 5) -> Cluster:
    nodes = [Node(f"n{i}", f"10.9.9.{i}", f"/tmp/n{i}") for i in range(1, n + 1)]
    return Cluster(kind="local", nodes=nodes, remotes={}, name="unit")


def completion(f: str, type_: str, value: object) -> Op:
    return Op(index=1, time=1, process="nemesis", type=type_, f=f, value=value)


# -- the built-in packages ---------------------------------------------------------------------


def test_built_in_packages_offer_todays_faults_through_entry_points() -> None:
    found = plugins.available("nemeses")
    assert found["partition"] is PartitionFaults
    assert found["kill"] is KillFaults and found["pause"] is PauseFaults
    cat = fault_catalog()
    for family, names in BUILT_IN.items():
        for name in names:
            assert cat[name].family == family, name
    assert set(SHAPES) == set(PartitionFaults.faults)
    assert catalog.broken() == []


def test_heal_order_is_network_then_pause_then_kill() -> None:
    assert PartitionFaults.heal_order < PauseFaults.heal_order < KillFaults.heal_order


class HealRecorder(Nemesis):
    """A nemesis that does nothing but note when it is healed (the composite's contract)."""

    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name = name
        self.fs = (f"start-{name}", f"stop-{name}")
        self.log = log
        self.fail = fail

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        raise AssertionError("not invoked here")

    def heal(self, cluster: Cluster) -> None:
        self.log.append(self.name)
        if self.fail:
            raise HarnessError(f"{self.name} could not heal")


def test_composite_heals_in_package_order_and_every_member_even_after_a_failure() -> None:
    asked = ["kill", "pause-all", "partition-one", "kill-all", "bridge"]
    cat = fault_catalog()
    log: list[str] = []
    members: dict[str, Nemesis] = {n: HealRecorder(n, log, fail=n == "pause-all") for n in asked}
    composite = CompositeNemesis(members, {n: cat[n].heal_order for n in asked})
    with pytest.raises(HarnessError, match="pause-all could not heal"):
        composite.heal(cluster())
    assert log == ["partition-one", "bridge", "pause-all", "kill", "kill-all"]
    built = build_nemesis(asked, QuietTarget(), random.Random(0))
    assert built.heal_order == {n: cat[n].heal_order for n in asked}


def test_one_seed_gives_the_same_member_rngs_as_before() -> None:
    # today's derivation: one 64-bit draw per fault, in the order asked for
    rng = random.Random(42)
    expected = [random.Random(rng.getrandbits(64)).random() for _ in range(3)]
    built = build_nemesis(["kill", "pause", "bridge"], QuietTarget(), random.Random(42))
    got = [built.members[n].rng.random() for n in ("kill", "pause", "bridge")]  # type: ignore[attr-defined]
    assert got == expected


# -- check_names -------------------------------------------------------------------------------


def test_check_names_reads_raw_and_listed_names() -> None:
    assert check_names("kill, pause,kill") == ["kill", "pause"]
    assert check_names(["kill,bridge", "none", "pause"]) == ["kill", "bridge", "pause"]
    assert check_names(["none"]) == [] and check_names("none") == [] and check_names([]) == []
    assert check_names("kill,,pause") == ["kill", "pause"]  # a stray comma is not a fault


@pytest.mark.parametrize("names", ["", ",,,", [""], ["", " "], [",", ""]])
def test_an_empty_fault_list_is_refused_not_taken_for_none(names) -> None:
    with pytest.raises(ConfigError) as e:
        check_names(names)
    assert str(e.value) == "--nemesis: empty fault list (use none for no faults)"


def test_unknown_fault_names_every_known_one_on_one_line() -> None:
    with pytest.raises(ConfigError) as e:
        check_names(["kill", "partition-everything"])
    msg = str(e.value)
    assert msg.startswith("--nemesis: unknown fault 'partition-everything' (known: none, ")
    assert "\n" not in msg
    assert all(name in msg for names in BUILT_IN.values() for name in names)


# -- took_effect -------------------------------------------------------------------------------


def test_took_effect_asks_the_package_of_the_fault() -> None:
    grudge = {"n1": ["n2"], "n2": ["n1"], "n3": []}
    cut = {"fault": "partition-one", "nodes": ["n1", "n2"], "grudge": grudge}
    assert took_effect("partition-one", completion("start-partition", "ok", cut))
    # not done, only maybe done, a stop, another fault's start, a fault nobody offers
    assert not took_effect("partition-one", completion("start-partition", "fail", cut))
    assert not took_effect("partition-one", completion("start-partition", "info", cut))
    assert not took_effect("partition-one", completion("stop-partition", "ok", cut))
    assert not took_effect("bridge", completion("start-partition", "ok", cut))
    assert not took_effect("no-such-fault", completion("start-partition", "ok", cut))
    # an ok record of rules that drop nothing tested nothing
    empty = {**cut, "grudge": {"n1": [], "n2": []}}
    assert not took_effect("partition-one", completion("start-partition", "ok", empty))

    killed = {"fault": "kill-all", "nodes": ["n1", "n2"], "signal": "SIGKILL"}
    assert took_effect("kill-all", completion("start-kill", "ok", killed))
    assert not took_effect("kill", completion("start-kill", "ok", killed))  # kill-all's record
    assert not took_effect("kill-all", completion("start-kill", "ok", {**killed, "nodes": []}))
    restarted = {"fault": "kill-all", "nodes": ["n1", "n2"], "pids": {}}
    assert not took_effect("kill-all", completion("stop-kill", "ok", restarted))
    paused = {"fault": "pause", "nodes": ["n3"], "signal": "SIGSTOP"}
    assert took_effect("pause", completion("start-pause", "ok", paused))
    resumed = {"fault": "pause", "nodes": ["n3"], "signal": "SIGCONT"}
    assert not took_effect("pause", completion("start-pause", "ok", resumed))


@pytest.mark.parametrize("fault", [*BUILT_IN["kill"], *BUILT_IN["pause"]])
def test_took_effect_of_what_the_process_nemeses_record(fault: str) -> None:
    """The records the nemeses really write are the ones their packages accept (partitions:
    test_nemesis_cluster.py, which needs iptables)."""
    c = cluster(3)
    package = fault_catalog()[fault]
    nem = build_nemesis([fault], QuietTarget(), random.Random(3))
    start_f, start_value = package.start_op(fault)
    stop_f, stop_value = package.stop_op(fault)
    started = nem.invoke(c, Op(0, 0, "nemesis", "invoke", start_f, start_value))
    if fault.endswith("-leader"):  # QuietTarget knows no leader: nothing was done
        assert started.type == "fail" and not took_effect(fault, started)
        return
    assert started.type == "ok" and took_effect(fault, started)
    stopped = nem.invoke(c, Op(0, 0, "nemesis", "invoke", stop_f, stop_value))
    assert stopped.type == "ok" and not took_effect(fault, stopped)


# -- a third-party fault package ---------------------------------------------------------------

PLUGIN_MODULE = "dsj_test_mark_faults"

PLUGIN = '''
"""A fault package as a third party would ship it: no import of dsjepsen internals beyond
the public contracts."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from dsjepsen.nemesis.base import FaultPackage, Nemesis
from dsjepsen.options import Option


class MarkNemesis(Nemesis):
    fs = ("start-mark", "stop-mark")

    def __init__(self, name, rng, strength):
        self.name = name
        self.rng = rng
        self.strength = strength
        self.marked = []
        self.heals = 0

    def invoke(self, cluster, op):
        if op.f == "start-mark":
            self.marked = [self.rng.choice(cluster.names)]
            value = {"fault": self.name, "nodes": list(self.marked),
                     "description": f"marked {self.marked[0]}", "strength": self.strength,
                     "marked": list(self.marked)}
            return dataclasses.replace(op, type="ok", value=value)
        undone, self.marked = self.marked, []
        value = {"fault": self.name, "nodes": undone, "description": "unmarked"}
        return dataclasses.replace(op, type="ok", value=value)

    def heal(self, cluster):
        self.marked = []
        self.heals += 1


class MarkFaults(FaultPackage):
    family: ClassVar[str] = "mark"
    heal_order: ClassVar[int] = 5
    faults: ClassVar[dict[str, str]] = {
        "mark-one": "mark one random node",
        "mark-twice": "mark one random node, again",
    }
    options: ClassVar[tuple[Option, ...]] = (Option("mark-strength", "int", 3, "how hard"),)

    def nemesis(self, name, target, rng, options):
        return MarkNemesis(name, rng, options["mark-strength"])

    def start_op(self, name):
        return "start-mark", {"fault": name, "by": "plugin"}

    def took_effect(self, completion):
        value = completion.value if isinstance(completion.value, dict) else {}
        return completion.type == "ok" and bool(value.get("marked"))

    def unsupported(self, name, target):
        return "marks need a target that is not nope" if target.name == "nope" else None


class Thief(FaultPackage):
    """Claims a built-in name: must be refused, and never hide the real kill."""

    family: ClassVar[str] = "steal"
    faults: ClassVar[dict[str, str]] = {"steal": "steal a name", "kill": "not the real kill"}

    def nemesis(self, name, target, rng, options):
        raise AssertionError("a refused package is never built")
'''

DISTS = {
    "dsjfake-mark": "mark = dsj_test_mark_faults:MarkFaults\n",
    # sorts before every built-in entry name, and still loses the name `kill` to the built-in
    "dsjfake-thief": "aaa-thief = dsj_test_mark_faults:Thief\n",
    "dsjfake-wrong": "not-a-package = dsj_test_mark_faults:MarkNemesis\n",
}


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin installed as pip would: a module and dist-info directories on sys.path."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(PLUGIN)
    for dist, entries in DISTS.items():
        info = tmp_path / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[dsjepsen.nemeses]\n{entries}")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    try:
        yield tmp_path
    finally:
        monkeypatch.undo()
        sys.modules.pop(PLUGIN_MODULE, None)
        plugins.reset()


def test_a_plugin_package_joins_the_catalog_without_any_edit(installed_plugin: Path) -> None:
    cat = fault_catalog()
    assert type(cat["mark-one"]).__name__ == "MarkFaults"
    assert cat["mark-one"] is cat["mark-twice"]
    assert catalog.descriptions()["mark-one"] == "mark one random node"
    # built-ins are all still there, and `kill` is still the real one
    assert all(name in cat for names in BUILT_IN.values() for name in names)
    assert isinstance(cat["kill"], KillFaults)
    assert check_names("kill,mark-one") == ["kill", "mark-one"]

    # scheduled with the package's own ops
    s = FaultSchedule(["mark-one"], 1, random.Random(0))
    start = s.next_op()
    assert start == ("start-mark", {"fault": "mark-one", "by": "plugin"})
    assert s.next_op() == ("stop-mark", {"fault": "mark-one"})

    # built with its declared options (defaulted when the run passes none), healed first
    c = cluster(3)
    nem = build_nemesis(["kill", "mark-one"], QuietTarget(), random.Random(1), {"mark-strength": 9})
    done = nem.invoke(c, Op(0, 0, "nemesis", "invoke", start[0], start[1]))
    assert done.type == "ok" and done.value["strength"] == 9 and done.value["marked"]
    default = build_nemesis(["mark-one"], QuietTarget(), random.Random(1))
    assert default.members["mark-one"].strength == 3  # type: ignore[attr-defined]
    assert nem.heal_order["mark-one"] < nem.heal_order["kill"]

    # its own idea of "took effect", not the default `ok`
    assert took_effect("mark-one", done)
    assert not took_effect("mark-one", completion("start-mark", "ok", {"fault": "mark-one"}))
    assert not took_effect("mark-twice", done)  # mark-one's record

    # refused before the run for a target it cannot work with
    with pytest.raises(ConfigError, match="--nemesis mark-one: marks need a target"):
        build_nemesis(["mark-one"], QuietTarget("nope"), random.Random(1))


def test_a_plugin_claiming_a_taken_name_is_reported_broken_on_one_line(
    installed_plugin: Path,
) -> None:
    lines = [b.line() for b in catalog.broken()]
    thief = [line for line in lines if "aaa-thief" in line]
    assert len(thief) == 1 and "\n" not in thief[0]
    assert "'kill' is already offered by dsjepsen.nemesis.process:KillFaults" in thief[0]
    assert any("not-a-package" in line and "not a FaultPackage" in line for line in lines)
    assert "steal" not in fault_catalog()
    with pytest.raises(ConfigError) as e:  # a broken plugin is a configuration error
        check_names(["steal"])
    assert "aaa-thief" in str(e.value) and "\n" not in str(e.value)
    assert e.value.exit_code == 254


def test_the_plugin_is_gone_after_reset() -> None:
    plugins.reset()
    assert "mark-one" not in fault_catalog()
    assert catalog.broken() == []


# -- the root-cause analysis reads records, not family names ---------------------------------


def _run_with_fault(f_start: str, f_stop: str, record: dict) -> tuple:
    """A history: a write, then a fault by some plugin family on n1, during which n1 answers
    a read with the overwritten value; the read is the anomaly."""
    ops = [
        Op(0, 0, 0, "invoke", "write", 1, key=1, node="n2"),
        Op(1, 10, 0, "ok", "write", 1, key=1, node="n2"),
        Op(2, 20, 0, "invoke", "write", 2, key=1, node="n2"),
        Op(3, 30, 0, "ok", "write", 2, key=1, node="n2"),
        Op(4, 40, "nemesis", "invoke", f_start, {"fault": record["fault"]}),
        Op(5, 50, "nemesis", "ok", f_start, record),
        Op(6, 60, 1, "invoke", "read", None, key=1, node="n1"),
        Op(7, 70, 1, "ok", "read", 1, key=1, node="n1"),
        Op(8, 80, "nemesis", "invoke", f_stop, {"fault": record["fault"]}),
        Op(9, 90, "nemesis", "ok", f_stop, {"fault": record["fault"], "nodes": []}),
    ]
    test = {"nodes": ["n1", "n2", "n3", "n4", "n5"]}
    run = build_run_data(History(ops), {"valid": False}, test)
    read = next(i for i, o in enumerate(run.operations) if o.f == "read")
    anomaly = Anomaly(1, "linearizable", "nonlinearizable", "stale", 1, {}, op_ids={read})
    return run, [anomaly]


@pytest.mark.parametrize(
    ("record", "title"),
    [
        (
            {"fault": "freeze-one", "nodes": ["n1"], "description": "froze n1", "signal": "STOP"},
            "A paused node answered: n1",
        ),
        (
            {"fault": "crash-one", "nodes": ["n1"], "description": "crashed n1", "signal": "KILL"},
            "The answering node was killed around the op: n1",
        ),
        (
            {
                "fault": "split",
                "nodes": ["n1", "n2"],
                "description": "cut n1, n2 off",
                "sides": [["n1", "n2"], ["n3", "n4", "n5"]],
            },
            "Reads answered by a node cut off from the majority",
        ),
    ],
)
def test_rca_reads_any_family_from_its_record(record: dict, title: str) -> None:
    run, anomalies = _run_with_fault("start-chaos", "stop-chaos", record)
    titles = [h.title for h in rca.hypotheses(run, anomalies)]
    assert any(t.startswith(title) for t in titles), titles


def test_rca_fault_kind() -> None:
    nodes = ["n1", "n2", "n3"]
    assert rca.fault_kind(nodes, {"grudge": {"n1": ["n2"], "n2": ["n1"]}}) == "partition"
    assert rca.fault_kind(nodes, {"sides": [["n1"], ["n2", "n3"]]}) == "partition"
    assert rca.fault_kind(nodes, {"signal": "SIGSTOP"}) == "pause"
    assert rca.fault_kind(nodes, {"signal": "stop"}) == "pause"
    assert rca.fault_kind(nodes, {"signal": "SIGKILL"}) == "kill"
    assert rca.fault_kind(nodes, {"signal": "SIGCONT"}) is None
    assert rca.fault_kind(nodes, {"description": "partition-majority"}) is None
    assert rca.fault_kind(nodes, None) is None


def test_a_fault_record_without_a_kind_yields_no_fault_hypothesis() -> None:
    # named like a partition but recording no grudge or sides: nothing to say about sides
    record = {"fault": "partition-like", "nodes": ["n1"], "description": "did something"}
    run, anomalies = _run_with_fault("start-partition", "stop-partition", record)
    titles = [h.title for h in rca.hypotheses(run, anomalies)]
    assert not any("cut off" in t or "paused" in t or "killed" in t for t in titles), titles


def test_fault_package_is_abstract() -> None:
    with pytest.raises(TypeError):
        FaultPackage()  # type: ignore[abstract]


# -- the example of docs/nemesis.md, installed as a plugin --------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "nemesis.md"


def _doc_example() -> tuple[str, str, str]:
    """(module source, entry name, "module:Class") of the doc's "Adding a fault package"."""
    text = DOC.read_text().split("### Adding a fault package", 1)[1]
    source = text.split("```python\n", 1)[1].split("```", 1)[0]
    toml = text.split("```toml\n", 1)[1].split("```", 1)[0]
    entry = next(line for line in toml.splitlines() if "=" in line and ":" in line)
    name, value = (part.strip().strip('"') for part in entry.split("=", 1))
    return source, name, value


class Recorder(QuietTarget):
    def __init__(self) -> None:
        super().__init__("rec")
        self.calls: list[tuple[str, str]] = []

    def kill(self, cluster, node):
        self.calls.append(("kill", node))

    def start(self, cluster, node):
        self.calls.append(("start", node))


def test_the_documented_example_package_works_as_a_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, entry, value = _doc_example()
    module = value.split(":", 1)[0]
    (tmp_path / f"{module}.py").write_text(source)
    info = tmp_path / "dsjepsen_restart-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dsjepsen-restart\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dsjepsen.nemeses]\n{entry} = {value}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    try:
        assert catalog.broken() == []
        assert fault_catalog()["restart"].family == "restart"
        s = FaultSchedule("restart,partition-one", 1, random.Random(2))
        assert sorted(s.next_op()[0] for _ in range(4))[:2] == ["start-partition", "start-restart"]
        target = Recorder()
        c = cluster(3)
        nem = build_nemesis(["restart", "partition-one"], target, random.Random(5))
        assert nem.heal_order["partition-one"] < nem.heal_order["restart"]
        done = nem.invoke(c, Op(0, 0, "nemesis", "invoke", "start-restart", {"fault": "restart"}))
        assert done.type == "ok" and took_effect("restart", done), done
        (node,) = done.value["nodes"]
        assert target.calls == [("kill", node), ("start", node)]
        assert rca.fault_kind(c.names, done.value) == "kill"
        stop = nem.invoke(c, Op(0, 0, "nemesis", "invoke", "stop-restart", {"fault": "restart"}))
        assert stop.type == "ok" and not took_effect("restart", stop)
    finally:
        monkeypatch.undo()
        sys.modules.pop(module, None)
        plugins.reset()
