"""JUnit XML of runs, read back by a real JUnit consumer (junitparser) and validated against
the JUnit schema in tests/data/junit.xsd; the GitHub step summary."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
import pytest
import xmlschema

from dsjepsen.harness.junit import (
    JUnitCase,
    JUnitSuite,
    junit_xml,
    report_test_runs,
    write_junit,
)

SCHEMA = Path(__file__).parent / "data" / "junit.xsd"
SENTENCE = "key 2: read returned nil, but the register could only hold 1 at that point"


def fake_run(tmp: Path, name: str, seed: int, valid: object, reason: str | None) -> dict:
    """A run directory as the runner leaves it (test.json, results.json) and the summary
    `dsjepsen test` builds from it."""
    run_dir = tmp / name / f"2026112{seed}T000000"
    run_dir.mkdir(parents=True)
    test = {
        "name": name,
        "argv": ["dsjepsen", "test", "--target", "raft-kv", "--seed", str(seed)],
        "seed": seed,
        "start_time": "2026-11-26T01:00:00.000+00:00",
        "end_time": "2026-11-26T01:00:12.500+00:00",
    }
    (run_dir / "test.json").write_text(json.dumps(test))
    results = {
        "valid": valid,
        "reason": reason,
        "stats": {"total": {"ok": 10, "fail": 2, "info": 1}},
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    return {"run_dir": str(run_dir), "seed": seed, **results}


def test_single_runs_read_back_through_junitparser(tmp_path: Path, monkeypatch) -> None:
    summary_file = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    name = "raft-kv-bug-stale-read-register-partition-majority"
    runs = [
        fake_run(tmp_path, name, 1, True, None),
        fake_run(tmp_path, name, 2, False, f"linearizable: {SENTENCE}"),
        fake_run(tmp_path, name, 3, "unknown", "vacuous: no fault took effect"),
    ]
    out = report_test_runs(tmp_path / "out" / "junit.xml", name, runs)
    assert out is not None

    xml = junitparser.JUnitXml.fromfile(str(out))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].name == name
    assert (suites[0].tests, suites[0].failures, suites[0].errors) == (3, 1, 1)
    cases = {c.name: c for c in suites[0]}
    assert set(cases) == {"seed 1", "seed 2", "seed 3"}
    assert cases["seed 1"].is_passed
    [failure] = cases["seed 2"].result
    assert isinstance(failure, junitparser.Failure)
    assert failure.message == f"linearizable: {SENTENCE}"
    assert f"report: {runs[1]['run_dir']}/report.html" in cases["seed 2"].system_out
    assert "reproduce: dsjepsen test --target raft-kv --seed 2" in cases["seed 2"].system_out
    [error] = cases["seed 3"].result
    assert isinstance(error, junitparser.Error) and "vacuous" in error.message
    assert cases["seed 2"].time == pytest.approx(12.5)

    xmlschema.XMLSchema(str(SCHEMA)).validate(str(out))

    md = summary_file.read_text()
    assert md.startswith(f"## dsjepsen test {name}")
    assert "| 2 | ❌ invalid: linearizable: key 2: read returned nil" in md
    assert md.count("\n| raft-kv") == 3


def test_no_junit_and_no_summary_when_not_asked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    runs = [fake_run(tmp_path, "t", 1, True, None)]
    assert report_test_runs(None, "t", runs) is None
    assert not list(tmp_path.glob("*.xml"))


def test_control_characters_and_markup_survive(tmp_path: Path) -> None:
    """A history value may hold anything: the file must stay well-formed XML."""
    msg = "read returned '<\x1b[31m&\x00>' but"
    case = JUnitCase("seed 1", "c<l>", "invalid", message=msg, seconds=1.0, output="\x07bell")
    out = write_junit(tmp_path / "j.xml", [JUnitSuite("s&s", [case])])
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(out))
    [suite] = list(junitparser.JUnitXml.fromfile(str(out)))
    [c] = list(suite)
    assert c.classname == "c<l>" and c.result[0].message == "read returned '<?[31m&?>' but"


def test_schema_rejects_what_ci_readers_reject(tmp_path: Path) -> None:
    """The schema is not a rubber stamp: a case without classname fails it."""
    bad = junit_xml([JUnitSuite("s", [JUnitCase("n", "c", "valid")])]).replace('classname="c" ', "")
    (tmp_path / "bad.xml").write_text(bad)
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        xmlschema.XMLSchema(str(SCHEMA)).validate(str(tmp_path / "bad.xml"))
