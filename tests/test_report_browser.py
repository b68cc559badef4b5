"""The report in a real browser: headless Chromium loads it, runs its script, and we read the DOM.

Chromium prints every console message to stderr with --enable-logging=stderr --v=0 ("CONSOLE"
lines); the page also records uncaught errors on <html data-js-errors>. Both must stay empty,
and the verdict, the drawn timeline and both plots must be in the DOM after scripts ran.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from synthetic_runs import EVIL, build_run_dir

from dsjepsen.reports.html import render_run_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup installs Debian's chromium)"
)


def dump_dom(url: str, profile: Path) -> tuple[str, str]:
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,1000",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]


@pytest.mark.parametrize("evil", [False, True], ids=["plain", "hostile"])
def test_report_renders_in_chromium(tmp_path: Path, evil: bool) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=3000, evil=evil)
    report = render_run_report(run)
    dom, stderr = dump_dom(report.as_uri(), tmp_path / "profile")
    assert console_messages(stderr) == []
    assert not re.search(r"<html[^>]*data-js-errors", dom)
    assert re.search(r'id="verdict"[^>]*>INVALID<', dom)
    # the timeline was drawn by the script: bars exist only after it ran
    assert re.search(r'id="timeline"[^>]*data-rendered="1"', dom)
    drawn = int(re.search(r'data-drawn="(\d+)"', dom).group(1))
    assert drawn > 100
    assert dom.count('class="tl-op ') == drawn
    assert "tl-fault" in dom and "anomalous" in dom
    assert '<svg id="latency-plot"' in dom and '<svg id="throughput-plot"' in dom
    if evil:
        # still exactly our three scripts after the page ran; the value is text
        assert len(re.findall(r"<script[\s>]", dom)) == 3
        assert EVIL not in dom
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_op_anchor_zooms_to_the_op(tmp_path: Path) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=12_000, seed=5)
    report = render_run_report(run)
    page = report.read_text()
    op = int(re.search(r'href="#op-(\d+)"', page).group(1))
    dom, stderr = dump_dom(report.as_uri() + f"#op-{op}", tmp_path / "profile")
    assert console_messages(stderr) == []
    # the anchored op is drawn, selected, and its details are shown
    assert re.search(rf'<rect id="op-{op}" class="[^"]*selected', dom)
    assert f"op {op} · process" in dom
    status = re.search(r'class="tl-status">([^<]*)<', dom).group(1)
    assert "of 12000 ops in view" in status and not status.startswith("t+0.000s")


def test_console_error_detection_works(tmp_path: Path) -> None:
    """The two detectors above are not vacuous: the page's own script throwing (on timeline
    data that is not JSON) trips both. A script added to the page would not do: the report's
    content security policy refuses it, which is itself a console message."""
    run = build_run_dir(tmp_path / "store", n_ops=200)
    page = render_run_report(run).read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(
        re.sub(r'(<script type="application/json" id="timeline-data">).*?(</script>)',
               r"\1{not json\2", page, count=1, flags=re.S)
    )  # fmt: skip
    dom, stderr = dump_dom(broken.as_uri(), tmp_path / "profile")
    assert any("JSON" in m for m in console_messages(stderr)), stderr[-2000:]
    assert re.search(r"<html[^>]*data-js-errors=\"[^\"]*JSON", dom)
    injected = tmp_path / "injected.html"
    injected.write_text(page.replace("</body>", "<script>undefinedFunction();</script></body>"))
    dom, stderr = dump_dom(injected.as_uri(), tmp_path / "profile")
    assert any("Content Security Policy" in m for m in console_messages(stderr)), stderr[-2000:]
    assert not any("undefinedFunction is not defined" in m for m in console_messages(stderr))
    assert not re.search(r"<html[^>]*data-js-errors", dom)
