"""The fault vocabulary has one home (dsjepsen/faults.py): what a fault op is, its window (one
rule, read by the campaign and by the report alike), the sides of a partition, and how a
report shows and explains a family (its package's FaultLook): a family of faults, with its
band, its colour and its root-cause wording, is one file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsjepsen import faults
from dsjepsen.api import to_history
from dsjepsen.checkers.linearizable import check_linearizable
from dsjepsen.faults import FaultLook, FaultLooks, read_op, sides, windows
from dsjepsen.harness.campaign import _nemesis_windows, fault_at
from dsjepsen.history import write_jsonl
from dsjepsen.nemesis import catalog
from dsjepsen.reports.html import render_run_report
from dsjepsen.reports.rca import hypotheses
from dsjepsen.reports.rundata import load_run_dir


def test_fault_ops_are_read_one_way():
    assert read_op("start-partition", {"fault": "partition-majority"}) == faults.FaultOp(
        "start", "partition", "partition-majority"
    )
    assert read_op("stop-kill", None) == faults.FaultOp("stop", "kill", "kill")
    # Jepsen's imported histories: bare :start / :stop
    assert read_op("start", None) == faults.FaultOp("start", "", "")
    assert read_op("isolate", None).phase is None
    assert read_op("startle", None).phase is None  # a word that only begins with "start"


def nem(i: int, t: int, typ: str, f: str, value=None) -> dict:
    return {"index": i, "time": t, "process": "nemesis", "type": typ, "f": f, "value": value}


def test_one_window_two_spans():
    """A window keeps the four moments; the report draws the widest span, the campaign
    blames the narrowest: the same window, not two computations with different rules."""
    ops = [
        nem(0, 0, "invoke", "start-partition", {"fault": "partition-one"}),
        nem(1, 10, "ok", "start-partition", {"fault": "partition-one", "nodes": ["n1"]}),
        {"index": 2, "time": 20, "process": 0, "type": "invoke", "f": "read", "value": None},
        {"index": 3, "time": 30, "process": 0, "type": "ok", "f": "read", "value": None},
        nem(4, 40, "invoke", "stop-partition", {"fault": "partition-one"}),
        nem(5, 50, "ok", "stop-partition", {"fault": "partition-one"}),
        # a start that failed: never in effect, still a window (drawn as failed)
        nem(6, 60, "invoke", "start-pause", {"fault": "pause"}),
        nem(7, 70, "fail", "start-pause", {"fault": "pause"}),
    ]
    ws, events = windows(to_history(ops).ops)
    assert events == []
    (w, failed) = ws
    assert (w.fault, w.family, w.span(), w.start_index, w.end_index) == (
        "partition-one", "partition", (0, 50), 0, 5,
    )  # fmt: skip
    assert (w.effective_index, w.stop_index) == (1, 4)
    assert [w.in_effect(i) for i in range(6)] == [False, False, True, True, False, False]
    assert failed.failed and failed.effective_index is None and not failed.in_effect(8)
    assert faults.active_at(ws, 2) == ["partition-one"] and faults.active_at(ws, 9) == []


def test_stops_close_their_own_fault_in_combined_mode():
    """Two faults of one family at once (combined mode): each stop closes the window of the
    fault it names, not merely the oldest of the family."""
    ops = [
        nem(0, 0, "invoke", "start-kill", {"fault": "kill"}),
        nem(1, 1, "ok", "start-kill", {"fault": "kill"}),
        nem(2, 2, "invoke", "start-kill", {"fault": "kill-all"}),
        nem(3, 3, "ok", "start-kill", {"fault": "kill-all"}),
        nem(4, 4, "invoke", "stop-kill", {"fault": "kill-all"}),
        nem(5, 5, "ok", "stop-kill", {"fault": "kill-all"}),
    ]
    ws, _ = windows(to_history(ops).ops)
    by_fault = {w.fault: w for w in ws}
    assert by_fault["kill-all"].end_index == 5
    assert by_fault["kill"].end_index is None  # still open at the end of the history


def test_the_campaign_blames_what_the_report_draws(tmp_path: Path):
    ops = [
        nem(0, 0, "invoke", "start-partition", {"fault": "partition-majority"}),
        nem(1, 1, "ok", "start-partition", {"fault": "partition-majority"}),
        {"index": 2, "time": 2, "process": 0, "type": "invoke", "f": "read", "value": None},
        {"index": 3, "time": 3, "process": 0, "type": "ok", "f": "read", "value": 2},
        nem(4, 4, "invoke", "stop-partition", {"fault": "partition-majority"}),
        nem(5, 5, "ok", "stop-partition", {"fault": "partition-majority"}),
        {"index": 6, "time": 6, "process": 0, "type": "invoke", "f": "read", "value": None},
    ]
    path = tmp_path / "history.jsonl"
    write_jsonl(to_history(ops), path)
    from_file = _nemesis_windows(path)
    drawn, _ = windows(to_history(ops).ops)
    assert [(w.fault, w.effective_index, w.stop_index) for w in from_file] == [
        (w.fault, w.effective_index, w.stop_index) for w in drawn
    ]
    assert fault_at(from_file, 2) == "partition-majority"
    assert fault_at(from_file, 6) == "none"


def test_the_sides_of_a_partition():
    nodes = ["n1", "n2", "n3", "n4", "n5"]
    cut = {"n1": ["n4", "n5"], "n2": ["n4", "n5"], "n4": ["n1", "n2"], "n5": ["n1", "n2"]}
    # a bridge (n3 hears everyone) is a side of its own, not a bond between the halves
    assert sides({"grudge": cut}, nodes) == [["n1", "n2"], ["n3"], ["n4", "n5"]]
    assert sides({"sides": [["n1"], ["n2", "n3"]]}, nodes) == [["n1"], ["n2", "n3"]]
    assert sides({"signal": "SIGSTOP"}, nodes) is None


def test_every_built_in_family_has_a_look_and_a_run_records_them():
    packages = {type(p) for p in catalog.fault_catalog().values()}
    looks = catalog.fault_looks()
    assert {p.family for p in packages} <= set(looks)
    assert len({look["colour"] for look in looks.values()}) == len(looks)  # told apart
    chosen = catalog.resolve("partition-majority,clock-bump")
    assert set(catalog.fault_looks(chosen.values())) == {"partition", "clock"}
    # test.json's looks first, then the installed ones, then a default named after the family
    known = FaultLooks.from_records({"x": {"label": "mine", "colour": "#000001"}}, looks)
    assert known("x").label == "mine" and known("pause").label == "pause"
    assert known("unheard-of") == FaultLook(label="unheard-of")


# ---------------------------------------------------------------- the report learns a family

#: a plugin's family, described only by its look (as a FaultPackage.look would record it)
DISK = FaultLook(
    label="disk stall",
    colour="#1a7f5a",
    title="The answering node's disk was stalled: {node}",
    on_node="\u201c{fault}\u201d delayed its I/O by {detail} ms during the op",
    detail_field="stall_ms",
    suggests="A node that cannot fsync in time falls behind and may serve what it has.",
)


def _stale_read_run(tmp_path: Path, family: str, fault: str, value: dict) -> Path:
    """A run directory whose one anomaly (a stale read through n2) ran inside one fault."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ops = [
        {"process": 0, "type": "invoke", "f": "write", "value": 1, "key": 1, "node": "n1"},
        {"process": 0, "type": "ok", "f": "write", "value": 1, "key": 1, "node": "n1"},
        {"process": "nemesis", "type": "invoke", "f": f"start-{family}", "value": {"fault": fault}},
        {"process": "nemesis", "type": "ok", "f": f"start-{family}", "value": value},
        {"process": 0, "type": "invoke", "f": "write", "value": 2, "key": 1, "node": "n1"},
        {"process": 0, "type": "ok", "f": "write", "value": 2, "key": 1, "node": "n1"},
        {"process": 1, "type": "invoke", "f": "read", "value": None, "key": 1, "node": "n2"},
        {"process": 1, "type": "ok", "f": "read", "value": 1, "key": 1, "node": "n2"},
        {"process": "nemesis", "type": "invoke", "f": f"stop-{family}", "value": {"fault": fault}},
        {"process": "nemesis", "type": "ok", "f": f"stop-{family}", "value": {"fault": fault}},
    ]
    ops = [dict(o, index=i, time=i * 1_000_000) for i, o in enumerate(ops)]
    history = to_history(ops)
    write_jsonl(history, run_dir / "history.jsonl")
    check = check_linearizable(history, "register")
    assert check.valid is False
    (run_dir / "results.json").write_text(
        json.dumps({"valid": False, "checks": {"linearizable": check.to_dict()}}, default=str)
    )
    test = {"name": "t", "nodes": [{"name": f"n{i}"} for i in range(1, 4)],
            "fault_looks": {"disk": DISK.to_dict()}}  # fmt: skip
    (run_dir / "test.json").write_text(json.dumps(test))
    return run_dir


@pytest.mark.parametrize(
    ("family", "fault", "value", "title", "evidence", "colour"),
    [
        (
            "disk", "disk-stall", {"fault": "disk-stall", "nodes": ["n2"], "stall_ms": {"n2": 200},
                                   "description": "stall n2's disk"},
            "The answering node's disk was stalled: n2",
            "\u201cstall n2's disk\u201d delayed its I/O by 200 ms", "#1a7f5a",
        ),
        (
            "clock", "clock-bump", {"fault": "clock-bump", "nodes": ["n2"],
                                    "clock_offsets": {"n2": 42.5}, "description": "bump n2"},
            "The answering node's clock was moved: n2", "its clock was off by 42.5 s", "#b7791f",
        ),
        (
            "pause", "pause", {"fault": "pause", "nodes": ["n2"], "signal": "STOP",
                               "description": "pause n2"},
            "A paused node answered: n2", "paused by \u201cpause n2\u201d", "#2557a7",
        ),
    ],
)  # fmt: skip
def test_the_report_explains_a_family_from_its_look(
    tmp_path, family, fault, value, title, evidence, colour
):
    run_dir = _stale_read_run(tmp_path, family, fault, value)
    looks = catalog.fault_looks()  # the installed packages' (the disk family is a plugin's)
    run = load_run_dir(run_dir, looks)
    from dsjepsen.reports import anomaly as anomaly_mod

    anomalies = anomaly_mod.link_ops(run, anomaly_mod.collect(run.results))
    found = {h.title: h for h in hypotheses(run, anomalies)}
    assert title in found, list(found)
    assert any(evidence in e for e in found[title].evidence), found[title].evidence
    page = render_run_report(run_dir, looks).read_text()
    assert f'fill="{colour}"' in page  # the band in the family's colour
    assert title.replace("'", "&#39;") in page  # as jinja escapes it
