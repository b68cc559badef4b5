"""JUnit XML and CI summaries of finished runs, for CI systems that only read those.

A CI server shows a red test for a failed JUnit test case and links nothing else, so each run
becomes one test case: the verdict's sentence is the failure message (what a person reads
first), the report path and the reproducing command go into the case's output. Jepsen's
`unknown` is not a pass: it is a JUnit `error` (the run could not decide), never a success.

When GitHub Actions sets GITHUB_STEP_SUMMARY, a Markdown table of the runs is appended to it,
so the verdicts show on the workflow run's page without opening an artifact.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dsjepsen.files import write_whole

#: Jepsen's three verdicts, as campaign rows and JUnit cases name them
VERDICTS = {True: "valid", False: "invalid", "unknown": "unknown"}


def verdict_name(valid: Any) -> str:
    """`valid` / `invalid` / `unknown` for a results.json `valid` value (anything odd is
    unknown: never a pass)."""
    if valid is True or valid == "valid":
        return "valid"
    if valid is False or valid == "invalid":
        return "invalid"
    return "unknown"


@dataclass
class JUnitCase:
    """One run as a JUnit test case."""

    name: str
    classname: str
    verdict: str
    message: str = ""
    seconds: float = 0.0
    output: str = ""
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class JUnitSuite:
    """A group of cases (a test with --test-count N, or one campaign configuration)."""

    name: str
    cases: list[JUnitCase]
    properties: dict[str, str] = field(default_factory=dict)
    timestamp: str | None = None


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters; a history value may contain them."""
    return "".join(
        c if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd") else "?"
        for c in text
    )


def junit_xml(suites: Sequence[JUnitSuite], name: str = "dsjepsen") -> str:
    """The JUnit XML document (Jenkins / Ant shape: testsuites > testsuite > testcase)."""
    root = ET.Element("testsuites", name=_clean(name))
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for suite in suites:
        failures = sum(c.verdict == "invalid" for c in suite.cases)
        errors = sum(c.verdict == "unknown" for c in suite.cases)
        seconds = sum(c.seconds for c in suite.cases)
        attrs = {
            "name": _clean(suite.name),
            "tests": str(len(suite.cases)),
            "failures": str(failures),
            "errors": str(errors),
            "skipped": "0",
            "time": f"{seconds:.3f}",
        }
        if suite.timestamp:
            attrs["timestamp"] = suite.timestamp
        s = ET.SubElement(root, "testsuite", attrs)
        if suite.properties:
            props = ET.SubElement(s, "properties")
            for k, v in suite.properties.items():
                ET.SubElement(props, "property", name=_clean(k), value=_clean(str(v)))
        for case in suite.cases:
            c = ET.SubElement(
                s,
                "testcase",
                name=_clean(case.name),
                classname=_clean(case.classname),
                time=f"{case.seconds:.3f}",
            )
            if case.properties:
                props = ET.SubElement(c, "properties")
                for k, v in case.properties.items():
                    ET.SubElement(props, "property", name=_clean(k), value=_clean(str(v)))
            if case.verdict == "invalid":
                el = ET.SubElement(
                    c, "failure", message=_clean(case.message or "invalid"), type="invalid"
                )
                el.text = _clean(case.message or "invalid")
            elif case.verdict != "valid":
                el = ET.SubElement(
                    c, "error", message=_clean(case.message or "unknown"), type="unknown"
                )
                el.text = _clean(case.message or "unknown")
            if case.output:
                ET.SubElement(c, "system-out").text = _clean(case.output)
        totals["tests"] += len(suite.cases)
        totals["failures"] += failures
        totals["errors"] += errors
        totals["time"] += seconds
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | os.PathLike[str], suites: Sequence[JUnitSuite]) -> Path:
    """Write the JUnit file whole (a temporary name, then renamed): a CI step that reads it
    after a crash sees the old file or the new one, never half of one."""
    return write_whole(Path(path), junit_xml(suites))


def _seconds(test: Mapping[str, Any]) -> float:
    try:
        start = datetime.fromisoformat(str(test["start_time"]))
        end = datetime.fromisoformat(str(test["end_time"]))
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_case(summary: Mapping[str, Any], classname: str) -> JUnitCase:
    """One `dsjepsen test` run (a results.json plus `run_dir` and `seed`) as a test case."""
    run_dir = Path(str(summary.get("run_dir", "")))
    test = _read_json(run_dir / "test.json")
    verdict = verdict_name(summary.get("valid"))
    total = (summary.get("stats") or {}).get("total") or {}
    report = run_dir / "report.html"
    argv = test.get("argv") or []
    lines = [
        f"verdict: {verdict.upper()}",
        f"ops: {total.get('ok', 0)} ok, {total.get('fail', 0)} fail, {total.get('info', 0)} info",
        f"run directory: {run_dir}",
        f"report: {report}",
    ]
    if argv:
        lines.append("reproduce: " + " ".join(str(a) for a in argv))
    return JUnitCase(
        name=f"seed {summary.get('seed', test.get('seed', '?'))}",
        classname=classname,
        verdict=verdict,
        message=str(summary.get("reason") or "") if verdict != "valid" else "",
        seconds=_seconds(test),
        output="\n".join(lines),
        properties={"run_dir": str(run_dir), "report": str(report)},
    )


def markdown_summary(
    title: str, rows: Iterable[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]] = ()
) -> str:
    """A Markdown table of runs (test, seed, verdict, counts, report) and the grouped
    findings, for $GITHUB_STEP_SUMMARY."""
    icon = {"valid": "✅", "invalid": "❌", "unknown": "❔"}
    out = [
        f"## {title}",
        "",
        "| test | seed | verdict | ok / fail / info | report |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        c = r.get("counts") or {}
        v = str(r.get("verdict", "unknown"))
        reason = str(r.get("reason") or "").replace("|", "\\|").replace("\n", " ")
        verdict = f"{icon.get(v, '')} {v}" + (
            f": {reason[:160]}" if v != "valid" and reason else ""
        )
        out.append(
            f"| {r.get('test_name', '')} | {r.get('seed', '')} | {verdict} | "
            f"{c.get('ok', 0)} / {c.get('fail', 0)} / {c.get('info', 0)} | {r.get('report', '')} |"
        )
    if findings:
        out += ["", "### Findings", ""]
        for f in findings:
            out.append(
                f"- **{f.get('title', '')}**: {len(f.get('runs', []))} run(s), "
                f"e.g. {str(f.get('example_reason', '')).replace(chr(10), ' ')[:200]}"
            )
    return "\n".join(out) + "\n"


def append_step_summary(markdown: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Append to the file GitHub Actions names in GITHUB_STEP_SUMMARY; nothing when unset.
    A summary that cannot be written is not worth failing a run over: None then."""
    path = (env if env is not None else os.environ).get("GITHUB_STEP_SUMMARY")
    if not path:
        return None
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown + "\n")
    except OSError:
        return None
    return Path(path)


def summary_row(summary: Mapping[str, Any], test_name: str) -> dict[str, Any]:
    """A `dsjepsen test` summary (results plus run_dir and seed) as a Markdown row."""
    total = (summary.get("stats") or {}).get("total") or {}
    run_dir = Path(str(summary.get("run_dir", "")))
    return {
        "test_name": test_name,
        "seed": summary.get("seed"),
        "verdict": verdict_name(summary.get("valid")),
        "reason": summary.get("reason"),
        "counts": {k: total.get(k, 0) for k in ("ok", "fail", "info")},
        "report": str(run_dir / "report.html"),
    }


def report_test_runs(
    junit_path: str | os.PathLike[str] | None,
    test_name: str,
    summaries: Sequence[Mapping[str, Any]],
) -> Path | None:
    """What `dsjepsen test` calls once at the end: the JUnit file when asked for (one test
    case per run), and the Markdown summary when GITHUB_STEP_SUMMARY is set. Returns the
    JUnit path written, if any."""
    written = None
    if junit_path:
        suite = JUnitSuite(
            name=test_name,
            cases=[run_case(s, test_name) for s in summaries],
            timestamp=datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
        )
        written = write_junit(junit_path, [suite])
    if summaries:
        append_step_summary(
            markdown_summary(
                f"dsjepsen test {test_name}", [summary_row(s, test_name) for s in summaries]
            )
        )
    return written
