"""bench/detection.py's plan: which runs a bench makes for a recipe (a control-only recipe,
for a system with no bug to find, makes only control runs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "detection.py"


@pytest.fixture(scope="module")
def detection():
    spec = importlib.util.spec_from_file_location("detection_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_control_only_recipe_makes_control_runs_only(detection) -> None:
    by_name = {r.name: r for r in detection.RECIPES}
    etcd, setnx = by_name["etcd-lock-pause"], by_name["redis-setnx-pause"]
    jobs = detection.plan([etcd, setnx], [1, 2], control=True)
    kinds = sorted((j.recipe, j.kind, j.seed) for j in jobs)
    assert kinds == [
        ("etcd-lock-pause", "control", 1),
        ("etcd-lock-pause", "control", 2),
        ("redis-setnx-pause", "bug", 1),
        ("redis-setnx-pause", "bug", 2),
        ("redis-setnx-pause", "control", 1),
        ("redis-setnx-pause", "control", 2),
    ]
    setnx_ctl = next(j for j in jobs if j.recipe == "redis-setnx-pause" and j.kind == "control")
    assert "fenced" in setnx_ctl.argv and "setnx" not in setnx_ctl.argv
    # --no-control leaves a control-only recipe nothing to run
    assert [j.recipe for j in detection.plan([etcd], [1], control=False)] == []


def test_summary_marks_control_only_rows(detection) -> None:
    etcd = next(r for r in detection.RECIPES if r.name == "etcd-lock-pause")
    job = detection.plan([etcd], [1], control=True)[0]
    out = detection.table([etcd], [detection.Outcome(job, "valid", 0, 70.0)], 60)
    row = next(line for line in out.splitlines() if line.startswith("etcd-lock-pause"))
    assert row.split()[:5] == ["etcd-lock-pause", "60", "0", "-", "0"]
    assert row.split()[-2:] == ["1", "0"]  # one control seed, no false alarm
    assert "dsjepsen test --target etcd --workload lock" in out
