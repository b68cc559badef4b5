"""The CI examples: the GitHub Actions workflow passes actionlint (a real linter, which must
also reject a broken workflow, or it proves nothing) and both files parse as YAML with the
structure the docs promise: a schedule, three shards, root, the store uploaded, the merged
JUnit published."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CI = Path(__file__).resolve().parent.parent / "examples" / "ci"
GITHUB = CI / "nightly-chaos.yml"
GITLAB = CI / "gitlab-nightly-chaos.yml"


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which(
        "actionlint", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    message = "actionlint is not installed (pip install -e '.[test]' brings it)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message)  # under CI a missing linter is a broken setup, not a skip
    pytest.skip(message)


def test_github_workflow_passes_actionlint(tmp_path: Path) -> None:
    exe = actionlint()
    res = subprocess.run(
        [exe, "-no-color", str(GITHUB)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stdout + res.stderr
    broken = GITHUB.read_text().replace("runs-on: ubuntu-24.04", "runs-on: [", 1)
    broken = broken.replace("needs: shard", "needs: no-such-job", 1)
    (tmp_path / "broken.yml").write_text(broken)
    res = subprocess.run(
        [exe, "-no-color", str(tmp_path / "broken.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "broken.yml" in res.stdout


def test_github_workflow_structure() -> None:
    doc = yaml.safe_load(GITHUB.read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads the key `on` as true
    assert on["schedule"][0]["cron"]
    shard = doc["jobs"]["shard"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3]
    runs = " ".join(s.get("run", "") for s in shard["steps"])
    assert "sudo" in runs and '--shard "$SHARD/3"' in runs
    assert "examples/campaigns/nightly.toml" in runs
    uploads = [
        s for s in shard["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")
    ]
    assert uploads and uploads[0]["if"] == "always()"
    report = doc["jobs"]["report"]
    assert report["needs"] == "shard" and report["if"] == "always()"
    steps = " ".join(str(s.get("run", "")) + str(s.get("with", "")) for s in report["steps"])
    assert "dsjepsen campaign merge" in steps and "merged/junit.xml" in steps
    assert "checks" in doc["permissions"]


def test_gitlab_pipeline_structure() -> None:
    doc = yaml.safe_load(GITLAB.read_text())
    shard, report = doc["chaos-shard"], doc["chaos-report"]
    assert shard["parallel"] == 3
    assert '--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in " ".join(shard["script"])
    assert shard["artifacts"]["when"] == "always" and "store/" in shard["artifacts"]["paths"]
    assert report["artifacts"]["reports"]["junit"] == "merged/junit.xml"
    assert "dsjepsen campaign merge" in " ".join(report["script"])
    assert report["needs"][0]["job"] == "chaos-shard"
    rules = doc[".only-scheduled"]["rules"]
    assert any("schedule" in r["if"] for r in rules)
    for job in (shard, report):
        assert job["stage"] in doc["stages"] and job["extends"] == ".only-scheduled"
