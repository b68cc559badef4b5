"""A real campaign on local namespace clusters: raft-kv and raft-kv with its stale-read bug,
under partition-majority and kill, two seeds each, two tests at a time on two clusters of its
own. The index, campaign.json and JUnit agree; the seeded bug is a grouped finding; the exit
code says invalid; no cluster is left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_campaign import check_agreement

from dsjepsen.cluster import localnet
from dsjepsen.harness.campaign import signature_key

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CAMPAIGN = """
name = "ci-small"
[matrix]
targets = ["raft-kv"]
options = [{}, {bug = "stale-read"}]
nemeses = ["partition-majority", "kill"]
seeds = [1, 2]
[defaults]
time-limit = 4
nemesis-interval = 1
rate = 60
recovery-timeout = 10
[cluster]
node-count = 3
"""


def test_small_campaign_two_at_a_time(tmp_path: Path) -> None:
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    prefix = localnet.random_name("q")[:3]
    f = tmp_path / "small.toml"
    f.write_text(CAMPAIGN)
    store = tmp_path / "store"
    try:
        res = subprocess.run(
            [sys.executable, "-m", "dsjepsen", "campaign", "run", str(f), "--parallel", "2",
             "--store", str(store), "--cluster-prefix", prefix],
            capture_output=True, text=True, timeout=400,
        )  # fmt: skip
    finally:
        leftover = [c for c in localnet.list_clusters() if c.startswith(prefix)]
        for name in leftover:
            localnet.down(name)
    assert not leftover, f"campaign left clusters behind: {leftover}"
    [out] = list((store / "campaigns" / "ci-small").iterdir())
    data = check_agreement(out)
    assert res.returncode == data["exit_code"] == 1, res.stdout + res.stderr
    rows = data["rows"]
    assert len(rows) == 8 and {r["seed"] for r in rows} == {1, 2}
    assert all((out / r["run_dir"] / "report.html").exists() for r in rows)

    plain = [r for r in rows if "bug" not in r["options"]]
    buggy = [r for r in rows if r["options"].get("bug") == "stale-read"]
    assert not [r for r in plain if r["verdict"] == "invalid"], plain
    invalid = [r for r in buggy if r["verdict"] == "invalid"]
    assert len(invalid) >= 2, [(r["nemesis"], r["seed"], r["verdict"], r["reason"]) for r in buggy]
    # every invalid run is an example of exactly one finding, one finding per signature
    findings = data["summary"]["findings"]
    in_findings = [rid for f_ in findings for rid in f_["runs"]]
    assert sorted(in_findings) == sorted(r["id"] for r in invalid)
    assert {f_["title"] for f_ in findings} == {signature_key(r["signature"]) for r in invalid}
    assert len(findings) < len(invalid)  # twenty seeds of one bug are one finding
    assert all(f_["signature"]["checker"] == "linearizable" for f_ in findings)
    assert "finding: linearizable / nonlinearizable / read" in res.stdout
    json.loads((out / "campaign.json").read_text())  # whole, parseable
