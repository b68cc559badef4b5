"""Campaigns without a cluster: the file, the matrix, shards, grouping into findings, flaky
configurations, merging, and that index.html, campaign.json and junit.xml agree.

Rows are built by `make_row` from run directories laid out exactly as the runner leaves them
(results.json, history.jsonl with nemesis ops), so the signature code reads real files.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import junitparser
import pytest

from dsjepsen.cli import main
from dsjepsen.harness import campaign as cp
from dsjepsen.reports.campaign import render_index

FILE = """
name = "unit"
[matrix]
targets = ["raft-kv"]
nemeses = ["partition-majority", "kill"]
options = [{}, {bug = "stale-read"}]
seeds = [1, 2, 3]
[defaults]
time-limit = 6
nemesis-interval = 1
"""

NEMESIS_OPS = [
    {"index": 10, "process": "nemesis", "type": "invoke", "f": "start-partition", "value": {"fault": "partition-majority"}},
    {"index": 11, "process": "nemesis", "type": "ok", "f": "start-partition", "value": {"fault": "partition-majority"}},
    {"index": 50, "process": "nemesis", "type": "invoke", "f": "stop-partition", "value": {"fault": "partition-majority"}},
    {"index": 51, "process": "nemesis", "type": "ok", "f": "stop-partition", "value": {"fault": "partition-majority"}},
]  # fmt: skip


def campaign_file(tmp: Path, text: str = FILE) -> Path:
    p = tmp / "c.toml"
    p.write_text(text)
    return p


def run_dir_with(
    tmp: Path, cell: cp.Cell, verdict: str, call: int | None = None
) -> tuple[Path, dict]:
    """A run directory with results.json and history.jsonl; an invalid one has one
    nonlinearizable read at history position `call`."""
    d = tmp / "store" / f"test{cell.index}" / f"20261126T0000{cell.seed:02d}"
    d.mkdir(parents=True)
    valid: Any = {"valid": True, "invalid": False}.get(verdict, "unknown")
    checks: dict[str, Any] = {"stats": {"valid": True, "anomalies": []}}
    reason = None
    if verdict == "invalid":
        reason = (
            f"linearizable: key 1: read returned {cell.seed}, but the register could only hold 0"
        )
        checks["linearizable"] = {
            "valid": False,
            "anomalies": [
                {
                    "type": "nonlinearizable",
                    "op": {"f": "read", "call": call, "ret": (call or 0) + 1},
                },
            ],
        }
    elif verdict == "unknown":
        reason = "vacuous: no fault took effect"
    results = {"valid": valid, "reason": reason, "checks": checks,
               "stats": {"total": {"ok": 7, "fail": 1, "info": 0}}}  # fmt: skip
    (d / "results.json").write_text(json.dumps(results))
    (d / "history.jsonl").write_text("".join(json.dumps(o) + "\n" for o in NEMESIS_OPS))
    return d, results


def rows_for(
    tmp: Path, cells: list[cp.Cell], out_dir: Path, verdicts: dict[int, str]
) -> list[dict]:
    rows = []
    for c in cells:
        verdict = verdicts.get(c.index, "valid")
        d, results = run_dir_with(tmp, c, verdict, call=20)
        rows.append(
            cp.make_row(c, campaign_dir=out_dir, test_name=f"name{c.index // 3}", results=results,
                        run_dir=d, seconds=1.5)
        )  # fmt: skip
    return rows


def test_matrix_expands_in_a_fixed_order(tmp_path: Path) -> None:
    spec = cp.load_campaign(campaign_file(tmp_path))
    cells = spec.cells()
    assert len(cells) == 1 * 2 * 2 * 3
    assert [c.index for c in cells] == list(range(12))
    assert cells[0].test_argv() == [
        "--target", "raft-kv", "--nemesis", "partition-majority",
        "--time-limit", "6", "--nemesis-interval", "1", "--seed", "1",
    ]  # fmt: skip
    assert cells[3].test_argv()[-4:] == ["--bug", "stale-read", "--seed", "1"]
    assert len({c.id for c in cells}) == 12 and len({c.config_key for c in cells}) == 4
    # the same file gives the same ids on another machine
    assert [c.id for c in cp.load_campaign(campaign_file(tmp_path)).cells()] == [
        c.id for c in cells
    ]


def test_three_shards_cover_every_cell_exactly_once(tmp_path: Path) -> None:
    cells = cp.load_campaign(campaign_file(tmp_path)).cells()
    shards = [cp.shard_cells(cells, i, 3) for i in (1, 2, 3)]
    seen = Counter(c.id for s in shards for c in s)
    assert set(seen) == {c.id for c in cells} and set(seen.values()) == {1}
    assert sorted(len(s) for s in shards) == [4, 4, 4]
    assert cp.parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1/0", "1/2/3"):
        with pytest.raises(cp.ConfigError, match="--shard"):
            cp.parse_shard(bad)


def test_merge_of_shards_equals_the_unsharded_result(tmp_path: Path) -> None:
    spec = cp.load_campaign(campaign_file(tmp_path))
    cells = spec.cells()
    verdicts = {
        3: "invalid",
        4: "valid",
        5: "invalid",
        9: "invalid",
        10: "invalid",
        11: "invalid",
        1: "unknown",
    }
    meta = {"name": spec.name, "fingerprint": spec.fingerprint, "cells_total": len(cells)}

    whole_dir = tmp_path / "store" / "campaigns" / "unit" / "whole"
    whole_dir.mkdir(parents=True)
    whole = cp.write_campaign(whole_dir, meta, rows_for(tmp_path / "w", cells, whole_dir, verdicts))

    shard_dirs = []
    for i in (1, 2, 3):
        d = tmp_path / f"shard{i}" / "store" / "campaigns" / "unit" / "ts"
        d.mkdir(parents=True)
        mine = cp.shard_cells(cells, i, 3)
        cp.write_campaign(
            d, {**meta, "shard": f"{i}/3"}, rows_for(tmp_path / f"s{i}", mine, d, verdicts)
        )
        shard_dirs.append(d)
    out = tmp_path / "merged"
    out.mkdir()
    merged = cp.merge([str(d) for d in shard_dirs], out, render_index=render_index)

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in ("run_dir", "report")} for r in rows]

    assert strip(merged["rows"]) == strip(whole["rows"])

    def no_links(summary: dict) -> dict:
        for f in summary["findings"]:
            for e in f["examples"]:
                e.pop("report")
        return summary

    assert no_links(merged["summary"]) == no_links(whole["summary"])
    assert merged["exit_code"] == whole["exit_code"] == 1
    assert merged["missing_cells"] == 0
    # every report link of the merged index points at a real run directory
    for r in merged["rows"]:
        assert (out / r["run_dir"] / "results.json").exists(), r["run_dir"]
    # a shard of another campaign is refused, naming it
    other = tmp_path / "other"
    other.mkdir()
    cp.write_campaign(other, {**meta, "fingerprint": "different"}, [])
    with pytest.raises(cp.ConfigError, match="another campaign"):
        cp.merge([str(shard_dirs[0]), str(other)], tmp_path / "m2")
    with pytest.raises(cp.ConfigError, match="appears in two results"):
        cp.merge([str(shard_dirs[0]), str(shard_dirs[0])], tmp_path / "m3")


def test_findings_group_by_signature_and_flaky_is_not_passed(tmp_path: Path) -> None:
    spec = cp.load_campaign(campaign_file(tmp_path))
    cells = spec.cells()
    out = tmp_path / "out"
    out.mkdir()
    # configuration 1 (cells 3-5, stale-read under partition): invalid on every seed;
    # configuration 3 (cells 9-11): invalid on seed 1 only -> flaky;
    # configuration 0 (cells 0-2): all valid; configuration 2 (6-8): one unknown
    verdicts = {3: "invalid", 4: "invalid", 5: "invalid", 9: "invalid", 7: "unknown"}
    rows = []
    for c in cells:
        v = verdicts.get(c.index, "valid")
        d, results = run_dir_with(tmp_path, c, v, call=20 if c.index < 9 else 60)
        rows.append(cp.make_row(c, campaign_dir=out, test_name=f"conf{c.index // 3}",
                                results=results, run_dir=d, seconds=1.0))  # fmt: skip
    data = cp.write_campaign(
        out, {"name": "unit"}, rows, step_summary=False, render_index=render_index
    )
    s = data["summary"]
    status = {c["label"]: c["status"] for c in s["configurations"]}
    assert status == {"conf0": "passed", "conf1": "failed", "conf2": "unknown", "conf3": "flaky"}
    flaky = next(c for c in s["configurations"] if c["status"] == "flaky")
    assert flaky["seeds"] == {"valid": [2, 3], "invalid": [1], "unknown": []}
    # three invalid seeds of one bug during the partition are one finding with three examples;
    # the same anomaly after the partition was healed (call 60) is another
    titles = {f["title"]: len(f["runs"]) for f in s["findings"]}
    assert titles == {
        "linearizable / nonlinearizable / read / fault partition-majority": 3,
        "linearizable / nonlinearizable / read / fault none": 1,
    }
    assert s["findings"][0]["labels"] == ["conf1"] and len(s["findings"][0]["examples"]) == 3
    assert data["exit_code"] == 1
    assert s["statuses"] == {"passed": 1, "failed": 1, "flaky": 1, "unknown": 1}


def test_exit_codes() -> None:
    assert cp.exit_code_of([{"verdict": "valid"}, {"verdict": "unknown"}]) == 2
    assert cp.exit_code_of([{"verdict": "invalid"}, {"verdict": "unknown"}]) == 1
    assert cp.exit_code_of([{"verdict": "valid"}]) == 0
    assert cp.exit_code_of([]) == 2  # nothing ran: nothing was tested


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "td" and "data-verdict" in a:
            self.cells.append(a)
        if tag == "a" and a.get("href", "").endswith("report.html"):
            self.links.append(a["href"] or "")


def check_agreement(out: Path) -> dict:
    """index.html, campaign.json and junit.xml of one campaign directory say the same."""
    data = json.loads((out / "campaign.json").read_text())
    rows = data["rows"]
    parser = _Cells()
    parser.feed((out / "index.html").read_text())
    assert Counter(c["data-verdict"] for c in parser.cells) == Counter(r["verdict"] for r in rows)
    for r in rows:
        if r.get("report"):
            assert r["report"] in parser.links
    xml = junitparser.JUnitXml.fromfile(str(out / "junit.xml"))
    cases = [(s.name, c) for s in xml for c in s]
    assert len(cases) == len(rows)
    failed = sum(1 for _, c in cases if any(isinstance(x, junitparser.Failure) for x in c.result))
    errors = sum(1 for _, c in cases if any(isinstance(x, junitparser.Error) for x in c.result))
    assert failed == sum(r["verdict"] == "invalid" for r in rows)
    assert errors == sum(r["verdict"] == "unknown" for r in rows)
    statuses = {s.name: {p.name: p.value for p in s.properties()}["status"] for s in xml}
    assert statuses == {c["label"]: c["status"] for c in data["summary"]["configurations"]}
    return data


def test_index_json_and_junit_agree(tmp_path: Path) -> None:
    cells = cp.load_campaign(campaign_file(tmp_path)).cells()
    out = tmp_path / "out"
    out.mkdir()
    rows = rows_for(tmp_path, cells, out, {3: "invalid", 9: "invalid", 2: "unknown"})
    cp.write_campaign(out, {"name": "unit"}, rows, step_summary=False, render_index=render_index)
    data = check_agreement(out)
    assert data["summary"]["totals"] == {"runs": 12, "valid": 9, "invalid": 2, "unknown": 1}


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in this process (a subprocess per case costs seconds on a loaded box)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = int(e.code or 0)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name = 'x'\n", r"c\.toml: missing \[matrix\] table"),
        ("[matrix]\ntargets = []\n", r"targets must be a non-empty list"),
        ("[matrix]\ntargets = ['raft-kv']\nseeds = [1, 1]\n", r"a seed is listed twice"),
        ("[matrix]\ntargets = ['raft-kv']\nseeds = [1]\noptions = [{seed = 3}]\n", r"seed is set by the campaign"),
        ("[matrix]\ntargets = ['raft-kv']\nseeds = [1]\n[defaults]\ntime-limit = 'soon'\n", r"--time-limit: expected a number"),
        ("[matrix]\ntargets = ['nosuch']\nseeds = [1]\n", r"nosuch"),
        ("[matrix]\ntargets = ['etcd']\nseeds = [1]\noptions = [{bug = 'stale-read'}]\n", r"--bug: not an option of target etcd"),
        ("[matrix\n", r"not valid TOML"),
    ],
)  # fmt: skip
def test_bad_campaign_files_are_one_line_and_254(tmp_path: Path, text: str, message: str) -> None:
    f = campaign_file(tmp_path, text)
    res = _cli("campaign", "run", str(f), "--list", "--store", str(tmp_path / "store"))
    assert res.returncode == 254, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), lines
    assert not (tmp_path / "store").exists()  # refused before anything was written


def test_merge_cli_bad_input(tmp_path: Path) -> None:
    res = _cli("campaign", "merge", str(tmp_path / "nothing"), "--output", str(tmp_path / "o"))
    assert res.returncode == 254 and "no campaign.json here" in res.stderr
    res = _cli("campaign", "run", str(campaign_file(tmp_path)), "--parallel", "0", "--list")
    assert res.returncode == 254 and "--parallel" in res.stderr


def test_example_campaigns_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent / "examples" / "campaigns"
    for f in ("nightly.toml", "seeded-bug.toml"):
        res = _cli("campaign", "run", str(root / f), "--list")
        assert res.returncode == 0, res.stderr
        assert len(res.stdout.splitlines()) == len(cp.load_campaign(root / f).cells())
