"""Issue 10, in a real browser: the report and `dsjepsen serve`'s pages under their content
security policies, driven through headless Chromium's DevTools protocol.

Chromium is started with a remote-debugging port; a few lines of WebSocket (below, stdlib only)
let the test evaluate expressions in the page (computed styles, a link's resolved protocol),
click, and hear every console message, uncaught exception and JavaScript dialog. Evaluation
through DevTools is not subject to the page's CSP, so it observes without loosening anything.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_cdp import CHROMIUM, Cdp, launch
from synthetic_runs import build_run_dir

from dsjepsen.reports.html import render_run_report
from dsjepsen.reports.server import make_server

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (scripts/setup installs Debian's chromium)"
)
PLANTED = "javascript:alert(1)"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Cdp]:
    with launch(tmp_path / "profile") as cdp:
        yield cdp


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A store with one rendered run that holds a file named `javascript:alert(1)`, served on
    a free loopback port; yields (base URL, run directory)."""
    store = tmp_path / "store"
    run = build_run_dir(store, n_ops=600, evil=True)
    (run / PLANTED).write_text("planted\n")
    render_run_report(run)
    srv = make_server(store, "127.0.0.1", 0, quiet=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        host, port = srv.server_address[:2]
        yield f"http://{host}:{port}/", run
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


def _timeline_drawn(cdp: Cdp) -> int:
    deadline = time.monotonic() + 20
    while True:
        drawn = cdp.evaluate(
            "(function(){var t=document.getElementById('timeline');"
            "return t && t.getAttribute('data-rendered')==='1' ? "
            "Number(t.getAttribute('data-drawn')) : -1})()"
        )
        if drawn >= 0 or time.monotonic() > deadline:
            return drawn
        time.sleep(0.1)


FILE_LINK = (
    "(function(){var a=[].slice.call(document.querySelectorAll('a')).filter(function(x)"
    "{return x.textContent.indexOf('javascript:')>=0})[0]; return a ? {protocol: a.protocol, "
    "href: a.href, attr: a.getAttribute('href')} : null})()"
)


def test_report_runs_under_its_policy_from_disk_and_from_serve(
    browser: Cdp, served: tuple[str, Path]
) -> None:
    base, run = served
    rel = run.relative_to(run.parents[1]).as_posix()
    for url in (run.joinpath("report.html").as_uri(), f"{base}{rel}/report.html"):
        browser.open(url)
        assert _timeline_drawn(browser) > 100, url
        assert browser.evaluate("document.documentElement.hasAttribute('data-js-errors')") is False
        # the stylesheet applied: the banner is a white-on-red flex row, not default black text
        style = browser.evaluate(
            "(function(){var s=getComputedStyle(document.querySelector('header.banner'));"
            "return [s.display, s.color, s.backgroundImage.slice(0, 15)]})()"
        )
        assert style == ["flex", "rgb(255, 255, 255)", "linear-gradient"], style
        assert browser.problems() == [], (url, browser.problems())


def test_planted_scheme_file_name_is_only_a_path(browser: Cdp, served: tuple[str, Path]) -> None:
    base, run = served
    rel = run.relative_to(run.parents[1]).as_posix()
    report_url = f"{base}{rel}/report.html"
    browser.open(report_url)
    link = browser.evaluate(FILE_LINK)
    assert link == {
        "protocol": "http:",
        "href": f"{base}{rel}/javascript%3Aalert%281%29",
        "attr": "./javascript%3Aalert%281%29",
    }
    # clicking it opens the file (as text), and no script runs
    browser.evaluate(
        "[].slice.call(document.querySelectorAll('#files a')).filter(function(x)"
        "{return x.textContent==='javascript:alert(1)'})[0].click()"
    )
    browser.wait_for("Page.loadEventFired")
    browser.drain(0.5)
    assert browser.evaluate("location.href") == f"{base}{rel}/javascript%3Aalert%281%29"
    assert browser.evaluate("document.body.textContent.trim()") == "planted"
    assert [p for p in browser.problems() if p.startswith("dialog")] == []
    # the same from disk: a file: URL, never a javascript: one
    browser.open(run.joinpath("report.html").as_uri())
    assert browser.evaluate(FILE_LINK)["protocol"] == "file:"
    # and serve's own listing of the run directory links it as a path too
    browser.open(f"{base}{rel}/")
    listed = browser.evaluate(FILE_LINK)
    assert listed["protocol"] == "http:" and listed["attr"].startswith("./javascript%3A")


def test_dialog_detector_is_not_vacuous(browser: Cdp, tmp_path: Path) -> None:
    """Without our link encoding (and without a policy) the same name is a live script."""
    page = tmp_path / "raw.html"
    page.write_text(f'<a id="x" href="{PLANTED}">{PLANTED}</a>')
    browser.open(page.as_uri())
    assert browser.evaluate("document.getElementById('x').protocol") == "javascript:"
    browser.call("Runtime.evaluate", expression="document.getElementById('x').click()")
    ev = browser.wait_for("Page.javascriptDialogOpening", timeout=10)
    assert ev["params"]["message"] == "1"
    browser.call("Page.handleJavaScriptDialog", accept=True)


def test_serve_pages_are_styled_and_scriptless(browser: Cdp, served: tuple[str, Path]) -> None:
    base, run = served
    rel = run.relative_to(run.parents[1]).as_posix()
    for url in (base, f"{base}{rel}/"):
        browser.open(url)
        header_bg = browser.evaluate(
            "getComputedStyle(document.querySelector('header')).backgroundColor"
        )
        font = browser.evaluate("getComputedStyle(document.body).fontFamily")
        assert header_bg == "rgb(29, 36, 51)", (url, header_bg)  # #1d2433 from index.css
        assert "system-ui" in font, (url, font)
        assert browser.problems() == [], (url, browser.problems())
    # no script may run on these pages: one planted in a listing would be refused
    browser.open(base)
    browser.call(
        "Runtime.evaluate",
        expression="var s=document.createElement('script');s.textContent="
        "'document.title=\"ran\"';document.body.appendChild(s);",
    )
    browser.drain(0.5)
    assert browser.evaluate("document.title") != "ran"
    assert any("Content Security Policy" in p for p in browser.problems()), browser.problems()
