"""report.html: one self-contained postmortem page per run.

Rendered with jinja2 and autoescaping on: every value from the system under test (op values,
errors, log lines, fault descriptions) reaches the page escaped. The only markup inserted
unescaped is what this package generates itself (SVG built with `svg.esc` on every text, and
the bundled CSS/JS files); script data goes through `tojson`, which escapes `<`, `>` and `&`
so that a value containing `</script>` cannot end the script element.

The page carries its own Content-Security-Policy (a <meta> element, so it holds when the file
is opened from disk or mailed around, not only under `dsjepsen serve`): no network fetches, and
no inline script or style but our own, each allowed by its sha256 hash. An injected `<script>`
or `javascript:` URL that escaping ever missed would still not run. Links to the run's files are
always `./` plus the percent-encoded relative path, so a file named like a URL scheme
(`javascript:alert(1)`) or a protocol-relative URL (`//host`) can only ever be a path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from dsjepsen import __version__
from dsjepsen.checkers.result import CheckResult
from dsjepsen.checkers.sequential import SCOPES
from dsjepsen.files import FILE_MODE, write_whole
from dsjepsen.history import History
from dsjepsen.reports import anomaly as anomaly_mod
from dsjepsen.reports import (
    clock,
    crdt,
    crdt_ops,
    cycle,
    plots,
    rca,
    stats,
    timeline,
    txn_story,
)
from dsjepsen.reports import logs as logs_mod
from dsjepsen.reports import maelstrom as maelstrom_mod
from dsjepsen.reports import messages as messages_mod
from dsjepsen.reports.rundata import NS, RunData, build_run_data, load_run_dir
from dsjepsen.reports.svg import paint
from dsjepsen.reports.timeline import short

TEMPLATES = Path(__file__).with_name("templates")
#: the inline scripts and styles of report.html, in page order; the CSP allows exactly these
REPORT_SCRIPTS = ("errors.js", "timeline.js")
REPORT_STYLES = ("report.css",)
#: the rest of the report's policy: nothing framed or posted, nothing fetched but, for a page
#: of a long run served by `dsjepsen serve`, the stretches it summarised, from the same server
#: (report.html?window=A,B: connect-src 'self')
REPORT_POLICY_BASE = (
    "default-src 'none'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
)
#: anomalies after the first get their diagram inside their (closed) table row; past this
#: many the row shows the linearization table only (the page stays fast to render and open)
MAX_DIAGRAMS = 60


@dataclass
class Verdict:
    label: str
    css: str
    detail: str


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is data unless this module marks it Markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "–" if v is None else f"{v * 100:.1f}%"
    env.filters["short"] = short
    env.filters["relurl"] = relative_url
    return env


def relative_url(rel: str) -> str:
    """The href of a file of the run, relative to report.html: `./` + the percent-encoded path.

    quote() encodes `:` (so no prefix can read as a scheme), `?` and `#`; the `./` keeps a path
    that would start with `//` from becoming a protocol-relative URL to another host.
    """
    return "./" + urllib.parse.quote(rel.lstrip("/"), safe="/")


def csp_source(text: str) -> str:
    """The CSP source expression that allows exactly this inline script or style text: the
    browser hashes the element's text as UTF-8, so the text must be inserted byte for byte."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_policy(scripts: list[str], styles: list[str], base: str = REPORT_POLICY_BASE) -> str:
    """A policy that allows the given inline scripts and styles by hash, and nothing else
    inline ('unsafe-inline' never appears: it would let an injected script run)."""
    parts = [base]
    parts.append("script-src " + " ".join(csp_source(t) for t in scripts) if scripts else "")
    parts.append("style-src " + " ".join(csp_source(t) for t in styles) if styles else "")
    return "; ".join(p for p in parts if p)


def report_policy() -> str:
    """The policy of a report rendered by this version (`dsjepsen serve` sends it as a header
    too; a report rendered by another version may then need `dsjepsen report DIR` again)."""
    return content_policy([_asset(n) for n in REPORT_SCRIPTS], [_asset(n) for n in REPORT_STYLES])


def _num(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def _asset(name: str) -> Markup:
    # Our own files, inlined verbatim: they are code, not data.
    return Markup((TEMPLATES / name).read_text(encoding="utf-8"))


def verdict_of(run: RunData) -> Verdict:
    r = run.results
    if r is None:
        if run.run_dir is None:
            return Verdict("NO VERDICT", "none", "no check result was given")
        return Verdict("NO VERDICT", "none", "run interrupted: no results.json was written")
    v = r.get("valid")
    reason = r.get("reason") or ""
    if r.get("interrupted"):
        return Verdict("NO VERDICT", "none", "run interrupted: " + (reason or "not checked"))
    if r.get("error"):
        return Verdict("NO VERDICT", "none", f"harness error: {r['error']}")
    if v is True:
        return Verdict("VALID", "valid", reason or "every checker passed")
    if v is False:
        return Verdict("INVALID", "invalid", _brief(r) or "a checker found an anomaly")
    return Verdict("UNKNOWN", "unknown", reason or "the checkers could not decide")


def _brief(results: Mapping[str, Any], limit: int = 200) -> str:
    """The verdict's reason in a line: each failed checker with what it found (its reason up
    to "; first:", whose anomaly the page shows in full), and past `limit` the first of them
    and how many more failed checkers there are: never "(and 6 more)" of nothing in
    particular, and a sentence is cut (with …) only when one checker's summary is too long."""
    reason = str(results.get("reason") or "")
    checks = results.get("checks")
    failed = [
        (str(n), anomaly_mod.reason_head(str(c.get("reason") or "")))
        for n, c in (checks.items() if isinstance(checks, Mapping) else ())
        if isinstance(c, Mapping) and c.get("valid") is False
    ]
    if failed:
        parts = [f"{n}: {why}" if why else n for n, why in failed]
        text = "; ".join(parts)
        if len(text) <= limit or len(parts) == 1:
            return short(text, limit)
        more = len(parts) - 1
        return (
            f"{short(parts[0], limit)} (and {more} more failed checker{'' if more == 1 else 's'})"
        )
    return short(reason, limit)


def _opt(test: Mapping[str, Any], *names: str) -> Any:
    opts = test.get("options") if isinstance(test.get("options"), dict) else {}
    for n in names:
        for src in (opts, test):
            if src.get(n) not in (None, "", [], ()):
                return src[n]
    return None


def _list_text(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) or "none"
    return str(v)


def reproduce_command(test: Mapping[str, Any]) -> str | None:
    """The exact command line, with the seed pinned so the run's choices repeat."""
    argv = test.get("argv")
    if not isinstance(argv, list) or not argv:
        return None
    args = [str(a) for a in argv]
    if os.path.basename(args[0]) in ("dsjepsen", "__main__.py", "cli.py") or args[0].endswith(
        "dsjepsen"
    ):
        args = args[1:]
    seed = test.get("seed", _opt(test, "seed"))
    if seed is not None and not any(a == "--seed" or a.startswith("--seed=") for a in args):
        args += ["--seed", str(seed)]
    return shlex.join(["dsjepsen", *args])


def checked_for(results: Mapping[str, Any] | None) -> str | None:
    """Which consistency model the verdict is about, and at which scope (a sequentially
    consistent history may still not be linearizable: the reader must know which was asked)."""
    if not isinstance(results, Mapping):
        return None
    checks = results.get("checks")
    found = dict(checks) if isinstance(checks, Mapping) else {results.get("checker"): results}
    for name, result in found.items():
        details = result.get("details") if isinstance(result, Mapping) else None
        if not isinstance(details, Mapping):
            continue
        models = details.get("consistency_models")
        if isinstance(models, list) and models:  # a transactional checker (Elle's models)
            return f"Checked for {', '.join(str(m) for m in models)} ({name}, Elle's anomalies)."
        # runs recorded before the linearizable checker named its consistency
        consistency = details.get("consistency") or (
            "linearizable" if name == "linearizable" else None
        )
        if not consistency:
            continue
        if consistency == "linearizable":
            return "Checked for linearizability, key by key (exact for the whole history: linearizability is local)."
        scope = str(details.get("scope", "?"))
        if scope == "per-key" and result.get("valid") is False:
            where = "per key (a violation on one key is a violation of the whole history)"
        else:
            where = SCOPES.get(scope, scope)
        return f"Checked for {consistency} consistency, scope: {where}."
    return None


def _summary(run: RunData, verdict: Verdict, counts: dict[str, int], first: str | None) -> str:
    t = run.test
    target = _opt(t, "target") or f"history {Path(run.history.source).name}"
    bugs = _opt(t, "bugs", "bug")
    if bugs:
        target = f"{target} (bugs: {_list_text(bugs)})"
    nodes = run.nodes
    workload = _opt(t, "workload")
    faults = _opt(t, "nemesis", "faults")
    dur = "" if run.logical_time else f", {run.end_time / NS:.1f} s recorded"
    parts = [f"{verdict.label}: {target}"]
    if nodes:
        parts.append(f" on {len(nodes)} nodes ({', '.join(nodes)})")
    if workload:
        parts.append(f", {workload} workload")
    if faults or run.faults or run.run_dir is not None:
        parts.append(f", faults: {_list_text(faults) if faults else 'none'}")
    parts.append(dur)
    parts.append(
        f". {counts['total']:,} client ops ({counts['ok']:,} ok, {counts['fail']:,} failed, "
        f"{counts['info']:,} indeterminate), {len(run.faults)} fault window{'' if len(run.faults) == 1 else 's'}."
    )
    checked = checked_for(run.results)
    if checked:
        parts.append(f" {checked}")
    if first:
        parts.append(f" First anomaly: {first}")
    elif verdict.css != "invalid":
        parts.append(f" {verdict.detail[0].upper() + verdict.detail[1:]}.")
    return "".join(parts)


def _files(run: RunData) -> list[dict[str, Any]]:
    if run.run_dir is None:
        return []
    out = []
    for p in sorted(run.run_dir.rglob("*")):
        if p.is_file() and p.name != "report.html":
            out.append({"rel": p.relative_to(run.run_dir).as_posix(), "size": p.stat().st_size})
    return out[:500]


def linearizations(run: RunData, anomalies: list[anomaly_mod.Anomaly]) -> dict[str, Any]:
    """Per failing key, what the per-key timeline draws: the longest linearization's steps
    (timeline op id, step number, state before, state after) and the op that cannot be
    placed. The first anomaly of each key (in time) stands for the key."""
    by_call = {o.call: o.id for o in run.operations}
    out: dict[str, Any] = {}
    for a in anomalies:
        k = "" if a.key is None else short(a.key, 24)
        if a.op is None or a.anchor is None or k in out:
            continue
        steps: list[list[Any]] = []
        before = "?" if a.prefix_omitted else "nil"
        for n, p in enumerate(
            a.prefix[-400:], start=a.prefix_omitted + 1 + max(0, len(a.prefix) - 400)
        ):
            call = p["op"].get("call")
            after = short(p.get("state"), 40)
            if call in by_call:
                steps.append([by_call[call], n, before, after])
            before = after
        out[k] = {
            "bad": a.anchor,
            "steps": steps,
            "states": [short(s, 40) for s in a.states],
            "msg": a.message[:300],
        }
        if len(out) >= 200:
            break
    return out


def what_was_tested(run: RunData, df: Any) -> list[dict[str, Any]]:
    """Per fault window that took effect: how many client ops ran under it and how many of
    them succeeded: how hard the run pushed (a valid verdict under no load proves little)."""
    rows = []
    calls = df["call_t"].to_numpy()
    ok = (df["type"] == "ok").to_numpy()
    for w in run.faults:
        inside = (calls >= w.start) & (calls <= w.end)
        n = int(inside.sum())
        rows.append(
            {
                "w": w,
                "ops": n,
                "ok": int((inside & ok).sum()),
                "avail": (float((inside & ok).sum()) / n) if n else None,
            }
        )
    return rows


def render(run: RunData, out_path: Path, mode: int = 0o666, rca_file: Path | None = None) -> Path:
    """Render `run` into out_path (written atomically: a reader never sees half a page).

    `mode` (before the umask) is FILE_MODE inside a run directory; a report written elsewhere
    (`-o`, `check --report`) gets the user's usual permissions."""
    anomalies = anomaly_mod.link_ops(run, anomaly_mod.collect(run.results))
    first = anomalies[0] if anomalies else None
    index = crdt_ops.OpIndex(run) if any(a.cited for a in anomalies) else None
    for a in [a for a in anomalies if a.explained][:MAX_DIAGRAMS]:
        # a transactional cycle is drawn as its cycle, a CRDT anomaly as its key's reads per
        # replica, anything else as its linearization
        if a.cited and index is not None:
            drawn = crdt.diagram(index, a)
        else:
            drawn = cycle.cycle_diagram(a.raw, a.n) or anomaly_mod.diagram(run, a)
        a.diagram = Markup(drawn)
    anchors = {a.anchor for a in anomalies if a.anchor is not None}
    df = stats.ops_frame(run)
    counts = {
        "total": len(df),
        "ok": int((df["type"] == "ok").sum()),
        "fail": int((df["type"] == "fail").sum()),
        "info": int((df["type"] == "info").sum()),
    }
    width = stats.nice_width(max(run.end_time, 1), logical=run.logical_time)
    verdict = verdict_of(run)
    crdt_view = crdt.view(run, anomalies)
    first_msg = None
    if first is not None:
        where = f" (op {first.anchor}" if first.anchor is not None else " ("
        where += f", node {first.node}" if first.node else ""
        where += f", {run.fmt_t(first.t)}" if first.t is not None else ""
        where += f", fault active: {first.fault}" if first.fault else f", {first.phase}"
        where = where.replace("(, ", "(") + ")"
        first_msg = (
            (f"key {short(first.key)}: " if first.key is not None else "") + first.message + where
        )
    summary = _summary(run, verdict, counts, first_msg)
    reproduce = reproduce_command(run.test)
    rca_data = rca.build(run, anomalies, summary, counts, reproduce) if anomalies else None
    rca_md = rca.to_markdown(run, rca_data, anomalies, run.title) if rca_data else None
    if rca_md is not None and rca_file is not None:
        write_whole(rca_file, rca_md, mode)  # the run directory keeps the RCA as a file
    log_section = logs_mod.excerpts(run, rca.anomaly_intervals(run, anomalies))
    # each anomaly's row links to the log window its op ran in
    log_anchor = {n: m.anchor for m, _ in log_section.moments for n in m.anomalies}
    has_logs = bool(log_section.files)
    versions = run.test.get("versions") if isinstance(run.test.get("versions"), dict) else {}
    final_t = anomaly_mod.final_reads_time(run)
    time_plots = not run.logical_time and len(df) > 0
    tl = timeline.timeline_data(run, anchors)
    tl["first"] = first.anchor if first is not None else None
    tl["lin"] = linearizations(run, anomalies)
    # what each highlighted op is about, for the detail panel (the first anomaly of each op)
    tl["why"] = {}
    for a in anomalies:
        if a.anchor is not None and str(a.anchor) not in tl["why"] and len(tl["why"]) < 2000:
            tl["why"][str(a.anchor)] = f"#{a.n} {a.type}: {short(a.message, 240)}"
    tl["keys"] = timeline.key_order(run, [a.key for a in anomalies])
    maelstrom_view = maelstrom_mod.view(run)
    clock_svg = clock.clock_svg(run)
    # Maelstrom runs: the relays' message logs as a Lamport diagram around the first anomaly
    msg_diagram = messages_mod.diagram(run, first.t if first is not None else None)
    seed = run.test.get("seed", _opt(run.test, "seed"))
    stories = txn_story.stories(run, anomalies)
    ctx = {
        "run": run,
        "title": run.title,
        "verdict": verdict,
        "summary": summary,
        "counts": counts,
        "reproduce": reproduce,
        "seed": seed,
        "versions": versions,
        "report_version": __version__,
        "test": run.test,
        "options": run.test.get("options") if isinstance(run.test.get("options"), dict) else {},
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "timeline": tl,
        "time_plots": time_plots,
        "latency_svg": Markup(
            plots.latency_svg(run, df, stats.latency_quantiles(df, width), width, final_t)
        )
        if time_plots
        else "",
        "throughput_svg": Markup(
            plots.throughput_svg(run, stats.throughput(df, width, run.end_time), width, final_t)
        )
        if time_plots
        else "",
        "bucket": width / NS,
        "stats": stats.per_f_table(run, df),
        "tested": what_was_tested(run, df),
        "anomalies": anomalies,
        "first": first,
        "first_caption": anomaly_mod.caption(first) if first is not None else "",
        "cycle_caption": cycle.CAPTION,
        "crdt_caption": crdt.caption,
        "facts": lambda raw: crdt.facts(run, raw),
        # the checkers' caps, stated where the anomalies are listed
        "cap_note": crdt.cap_note(crdt.tallies(run, anomalies) + txn_story.tallies(run)),
        # each transactional cycle placed in the run: nodes, times, faults, isolation
        "stories": stories,
        "akeys": lambda a: ", ".join(txn_story.anomaly_keys(a)),
        # the nodes an anomaly happened on: a cycle's, every node its transactions went through
        "anodes": lambda a: ", ".join(txn_story.anomaly_nodes(a, stories)) or a.node or "",
        "tid": {o.call: o.id for o in run.operations},
        "rca": rca_data,
        "rca_md": rca_md,
        "minimal": rca.minimal_core(run),
        "minimal_repro": rca.minimal_reproduction(run),
        "minimal_rows": rca.minimal_rows(run),
        "minimal_how": rca.minimal_how,
        # where the page offers the Markdown: the run directory's file, else a data URL
        "rca_href": "rca.md"
        if rca_file is not None and rca_file.parent == Path(out_path).parent
        else (
            "data:text/markdown;charset=utf-8;base64,"
            + base64.b64encode(rca_md.encode("utf-8", "backslashreplace")).decode()
            if rca_md
            else None
        ),
        "logs": log_section,
        "log_anchor": log_anchor,
        "has_logs": has_logs,
        "files": _files(run),
        "faults": run.faults,
        # one swatch per fault family on the page, in its package's colour
        "fault_legend": [
            (run.looks(f).label, Markup(paint(run.looks(f).colour)))
            for f in dict.fromkeys(w.family for w in run.faults if not w.failed)
        ],
        "events": run.events,
        "crdt": crdt_view,
        "maelstrom": maelstrom_view,
        "clock_svg": Markup(clock_svg) if clock_svg else "",
        "msg_diagram": msg_diagram,
        "msg_svg": Markup(msg_diagram.svg) if msg_diagram is not None else "",
        "short": short,
        "tshort": lambda t: (
            "–" if t is None else (f"pos {t}" if run.logical_time else f"{t / NS:.3f}s")
        ),
        "op_text": anomaly_mod.op_text,
        "css": _asset("report.css"),
        "errors_js": _asset("errors.js"),
        "js": _asset("timeline.js"),
        "csp": report_policy(),
        "start_wall": run.start_wall.isoformat() if run.start_wall else None,
    }
    page = _env().get_template("report.html.j2").render(**ctx)
    return write_whole(Path(out_path), page, mode)


def render_run_report(
    run_dir: str | os.PathLike[str], looks: Mapping[str, Any] | None = None
) -> Path:
    """Write RUN_DIR/report.html from whatever the run left behind; returns its path.
    `looks` draw fault families the run's test.json does not describe (see load_run_dir)."""
    run = load_run_dir(run_dir, looks)
    d = Path(run_dir)
    return render(run, d / "report.html", mode=FILE_MODE, rca_file=d / "rca.md")


def render_check_report(
    history: History,
    result: CheckResult | Mapping[str, Any] | None,
    out_path: str | os.PathLike[str],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Report for a history checked outside a run (`dsjepsen check FILE --report OUT`).

    `meta` may carry test.json-like fields (name, argv, seed, nodes, versions, start_time).
    """
    results: dict[str, Any] | None
    if result is None:
        results = None
    elif isinstance(result, CheckResult):
        results = {
            "valid": result.valid,
            "reason": result.reason,
            "checks": {result.checker: result.to_dict()},
        }
    else:
        results = dict(result)
    test = dict(meta or {})
    title = test.get("name") or Path(history.source).name
    run = build_run_data(history, results, test, run_dir=None, title=str(title))
    return render(run, Path(out_path))
