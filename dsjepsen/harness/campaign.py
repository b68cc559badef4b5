"""Campaigns: a matrix of tests (targets x workloads x nemeses x options x seeds), its shards,
its results grouped into findings, and the merge of shard results.

Why a matrix and not a loop in a shell script: a nightly CI job wants one verdict per
configuration, not per seed. Twenty seeds that hit one bug are one finding with twenty
examples (grouped by signature: checker, anomaly kind, op f, the fault active when the
offending op was invoked), and a configuration that is invalid on some seeds and valid on
others is *flaky*, which is a failure, never a pass. The file format:

```toml
name = "nightly"                       # the campaign's directory under store/campaigns/
[matrix]
targets = ["raft-kv"]
workloads = ["register"]               # optional: default, the target's own
nemeses = ["partition-majority", "kill"]   # each one `--nemesis` value ("none" for none)
seeds = [1, 2, 3]                      # or seed-count = 3 (seeds 1..3)
options = [{}, {bug = "stale-read"}]   # optional: each a set of `dsjepsen test` options
[defaults]                             # `dsjepsen test` options for every test
time-limit = 10
nemesis-interval = 2
[cluster]
node-count = 3                         # size of each local cluster the campaign makes
```

This module is pure bookkeeping (no nodes): the command (`dsjepsen campaign`) runs the
cells; here they are expanded, sharded, turned into rows, grouped and written out.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsjepsen.errors import (
    EXIT_INVALID,
    EXIT_UNKNOWN,
    EXIT_VALID,
    ConfigError,
    DsjError,
    InputError,
)
from dsjepsen.faults import FaultWindow, active_at, windows
from dsjepsen.files import read_text, write_whole
from dsjepsen.formats.jsonl import op_from_dict
from dsjepsen.harness.junit import (
    JUnitCase,
    JUnitSuite,
    append_step_summary,
    markdown_summary,
    verdict_name,
    write_junit,
)
from dsjepsen.harness.store import DIR_MODE, TIMESTAMP, write_json
from dsjepsen.history import NEMESIS
from dsjepsen.options import options_argv

#: a campaign file is a matrix of a few dozen lines; anything this large is not one
MAX_CAMPAIGN_BYTES = 1 << 20

CAMPAIGN_JSON = "campaign.json"
INDEX_HTML = "index.html"
JUNIT_XML = "junit.xml"
#: options a campaign sets itself for every test; a matrix that sets them is refused
RESERVED = frozenset(
    {"seed", "store", "json", "test-count", "junit", "nodes", "nodes-file", "docker", "backend",
     "cluster-name", "node-count", "leave-running"}
)  # fmt: skip
_MATRIX_KEYS = {"targets", "workloads", "nemeses", "seeds", "seed-count", "options"}
_TOP_KEYS = {"name", "description", "matrix", "defaults", "cluster"}


@dataclass(frozen=True)
class Cell:
    """One test of the matrix: a configuration and a seed. `index` is its position in the
    expanded matrix, which is what sharding and ordering use."""

    index: int
    target: str
    workload: str | None
    nemesis: str
    options: tuple[tuple[str, Any], ...]
    seed: int

    @property
    def config_key(self) -> str:
        """The configuration without the seed: what flakiness is judged over."""
        return json.dumps(
            [self.target, self.workload, self.nemesis, [list(o) for o in self.options]],
            sort_keys=True,
            default=str,
        )

    @property
    def id(self) -> str:
        """Stable across machines and shards: the same file gives the same ids."""
        digest = hashlib.sha256(f"{self.config_key}|{self.seed}".encode()).hexdigest()[:12]
        return f"{self.index:04d}-{digest}"

    def test_argv(self) -> list[str]:
        """The `dsjepsen test` arguments of this cell (seed included, no node options)."""
        argv = ["--target", self.target]
        if self.workload:
            argv += ["--workload", self.workload]
        argv += ["--nemesis", self.nemesis]
        argv += options_argv(dict(self.options))
        return [*argv, "--seed", str(self.seed)]


@dataclass
class Campaign:
    """A campaign file, validated: its axes, the defaults every test gets, and the size of
    each local cluster."""

    name: str
    path: str
    targets: list[str]
    workloads: list[str | None]
    nemeses: list[str]
    seeds: list[int]
    options: list[dict[str, Any]]
    defaults: dict[str, Any] = field(default_factory=dict)
    node_count: int | None = None
    description: str = ""

    def cells(self) -> list[Cell]:
        """Every test, in a fixed order (targets, workloads, nemeses, options, seeds): the
        order runs take, and the index each cell keeps in every shard."""
        out = []
        combos = itertools.product(
            self.targets, self.workloads, self.nemeses, self.options, self.seeds
        )
        for i, (t, w, n, o, s) in enumerate(combos):
            merged = {**self.defaults, **o}
            out.append(Cell(i, t, w, n, tuple(merged.items()), s))
        return out

    @property
    def matrix(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "workloads": self.workloads,
            "nemeses": self.nemeses,
            "seeds": self.seeds,
            "options": self.options,
            "defaults": self.defaults,
            "node_count": self.node_count,
        }

    @property
    def fingerprint(self) -> str:
        """Same matrix, same fingerprint: merge refuses shards of different campaigns."""
        return hashlib.sha256(json.dumps(self.matrix, sort_keys=True).encode()).hexdigest()[:16]


def _list(doc: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty list")
    for v in value:
        if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
            raise ConfigError(
                f"{where}: {key} has {v!r}, expected {getattr(kind, '__name__', kind)}"
            )
    return value


def _check_options(opts: Any, where: str) -> dict[str, Any]:
    if not isinstance(opts, dict):
        raise ConfigError(f"{where}: expected a table of dsjepsen test options, got {opts!r}")
    for k, v in opts.items():
        name = str(k).removeprefix("--")
        if name in RESERVED:
            raise ConfigError(f"{where}: {name} is set by the campaign itself, not per test")
        if isinstance(v, dict):
            raise ConfigError(f"{where}: option {name} cannot be a table")
    return {str(k).removeprefix("--"): v for k, v in opts.items()}


def load_campaign(path: str | os.PathLike[str]) -> Campaign:
    """Read and validate a campaign file; ConfigError / InputError name the file and key."""
    p = Path(path)
    where = str(p)
    text = read_text(p, "campaign", MAX_CAMPAIGN_BYTES)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML: {e}", where) from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})"
        )
    name = doc.get("name", p.stem)
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ConfigError(f"{where}: name must be letters, digits, '-', '_' or '.', got {name!r}")
    matrix = doc.get("matrix")
    if not isinstance(matrix, dict):
        raise ConfigError(f"{where}: missing [matrix] table")
    mwhere = f"{where}: [matrix]"
    bad = sorted(set(matrix) - _MATRIX_KEYS)
    if bad:
        raise ConfigError(
            f"{mwhere}: unknown key {bad[0]!r} (known: {', '.join(sorted(_MATRIX_KEYS))})"
        )
    targets = _list(matrix, "targets", mwhere, str)
    workloads: list[str | None] = (
        _list(matrix, "workloads", mwhere, str) if "workloads" in matrix else [None]
    )
    nemeses = _list(matrix, "nemeses", mwhere, str) if "nemeses" in matrix else ["none"]
    if "seeds" in matrix and "seed-count" in matrix:
        raise ConfigError(f"{mwhere}: give seeds or seed-count, not both")
    if "seed-count" in matrix:
        count = matrix["seed-count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(f"{mwhere}: seed-count must be an integer >= 1, got {count!r}")
        seeds = list(range(1, count + 1))
    else:
        seeds = _list(matrix, "seeds", mwhere, int)
        if any(s < 0 for s in seeds):
            raise ConfigError(f"{mwhere}: seeds must be >= 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"{mwhere}: a seed is listed twice")
    options = [
        _check_options(o, f"{mwhere} options[{i}]")
        for i, o in enumerate(matrix.get("options", [{}]))
    ]
    defaults = _check_options(doc.get("defaults", {}), f"{where}: [defaults]")
    cluster = doc.get("cluster", {})
    if not isinstance(cluster, dict) or set(cluster) - {"node-count"}:
        raise ConfigError(f"{where}: [cluster] takes only node-count")
    node_count = cluster.get("node-count")
    if node_count is not None and (not isinstance(node_count, int) or node_count < 1):
        raise ConfigError(f"{where}: [cluster] node-count must be an integer >= 1")
    return Campaign(
        name=name,
        path=where,
        targets=targets,
        workloads=workloads,
        nemeses=nemeses,
        seeds=seeds,
        options=options,
        defaults=defaults,
        node_count=node_count,
        description=str(doc.get("description", "")),
    )


# ---------------------------------------------------------------------------------------------
# Sharding


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (1-based) -> (I, N); ConfigError naming --shard otherwise."""
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard: expected I/N such as 2/3, got {text!r}") from None
    if n < 1 or not 1 <= i <= n:
        raise ConfigError(f"--shard: need 1 <= I <= N, got {text!r}")
    return i, n


def shard_cells(cells: Sequence[Cell], i: int, n: int) -> list[Cell]:
    """The I-th of N slices: cells whose matrix index is I-1 modulo N. Round robin over the
    fixed expansion order keeps the slices within one cell of each other in size, and the
    same file gives every CI job the same assignment."""
    return [c for c in cells if c.index % n == i - 1]


# ---------------------------------------------------------------------------------------------
# Rows: one finished (or failed-to-start) run


def _nemesis_windows(history_path: Path) -> list[FaultWindow]:
    """The fault windows of a run's history (faults.windows), read from its nemesis lines
    alone: a campaign reads many histories and needs only these."""
    source = str(history_path)
    ops = []
    try:
        with open(history_path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if '"nemesis"' not in line:
                    continue
                try:
                    d = json.loads(line)
                except ValueError:
                    continue  # a line cut by a killed run
                if isinstance(d, dict) and d.get("process") == NEMESIS:
                    # the op keeps its own index: windows are compared with client ops' ones
                    ops.append(op_from_dict(d, source, n, int(d.get("index", n - 1))))
        return windows(ops)[0]
    except (OSError, DsjError, TypeError, ValueError):
        return []


def fault_at(found: Sequence[FaultWindow], index: int | None) -> str:
    """The faults surely in effect at a history position (`+`-joined), or "none"."""
    return "+".join(active_at(found, index)) or "none"


def signature_of(results: Mapping[str, Any], run_dir: Path | None) -> dict[str, str] | None:
    """What identifies an invalid run's bug: the first failing checker, its first anomaly's
    kind, the op's f, and the fault in effect when that op was invoked. None for a run that
    is not invalid."""
    if verdict_name(results.get("valid")) != "invalid":
        return None
    checks = results.get("checks") or {}
    windows = _nemesis_windows(run_dir / "history.jsonl") if run_dir else []
    for name, check in checks.items():
        if not isinstance(check, dict) or check.get("valid") is not False:
            continue
        # the earliest anomaly in the history: what went wrong first, whatever the key order
        anomalies = [a for a in check.get("anomalies") or [] if isinstance(a, dict)] or [{}]
        a = min(anomalies, key=_call_position)
        raw = a.get("op")
        op: dict[str, Any] = raw if isinstance(raw, dict) else {}
        call = op.get("call") if isinstance(op.get("call"), int) else None
        return {
            "checker": str(name),
            "anomaly": str(a.get("type") or "invalid"),
            "f": str(op.get("f") or a.get("f") or "-"),
            "fault": fault_at(windows, call),
        }
    return {"checker": "-", "anomaly": "invalid", "f": "-", "fault": "none"}


def _call_position(a: Mapping[str, Any]) -> float:
    op = a.get("op")
    call = op.get("call") if isinstance(op, dict) else None
    return float(call) if isinstance(call, int) else float("inf")


def signature_key(sig: Mapping[str, str]) -> str:
    return f"{sig['checker']} / {sig['anomaly']} / {sig['f']} / fault {sig['fault']}"


def make_row(
    cell: Cell,
    *,
    campaign_dir: Path,
    test_name: str,
    results: Mapping[str, Any] | None,
    run_dir: str | os.PathLike[str] | None,
    seconds: float,
    error: str | None = None,
) -> dict[str, Any]:
    """One run as campaign.json records it. A run that produced no results (refused
    options, a harness error) is unknown with the error as its reason: never a pass."""
    results = results or {}
    rd = Path(run_dir).resolve() if run_dir else None
    total = (results.get("stats") or {}).get("total") or {}
    verdict = verdict_name(results.get("valid")) if results else "unknown"
    rel = os.path.relpath(rd, campaign_dir.resolve()) if rd else None
    report = (Path(rel) / "report.html").as_posix() if rel else None
    return {
        "id": cell.id,
        "index": cell.index,
        "config": cell.config_key,
        "test_name": test_name,
        "target": cell.target,
        "workload": cell.workload,
        "nemesis": cell.nemesis,
        "options": dict(cell.options),
        "seed": cell.seed,
        "verdict": verdict,
        "reason": results.get("reason") or error,
        "counts": {k: int(total.get(k, 0)) for k in ("ok", "fail", "info")},
        "signature": signature_of(results, rd),
        "run_dir": Path(rel).as_posix() if rel else None,
        "report": report,
        "seconds": round(seconds, 3),
    }


# ---------------------------------------------------------------------------------------------
# Grouping


def exit_code_of(rows: Iterable[Mapping[str, Any]]) -> int:
    """1 if any run is invalid, else 2 if any is unknown, else 0 (an empty campaign tested
    nothing: unknown)."""
    verdicts = [r.get("verdict") for r in rows]
    if "invalid" in verdicts:
        return EXIT_INVALID
    if "unknown" in verdicts or not verdicts:
        return EXIT_UNKNOWN
    return EXIT_VALID


def configurations(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration (all seeds of one cell of the matrix): its seeds by verdict and its
    status: passed (all valid), failed (invalid, never valid), flaky (invalid on some seeds,
    valid on others), unknown (no invalid, some unknown)."""
    by: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["index"]):
        c = by.setdefault(
            r["config"],
            {
                "config": r["config"],
                "label": r["test_name"],
                "target": r["target"],
                "workload": r["workload"],
                "nemesis": r["nemesis"],
                "options": r["options"],
                "seeds": {"valid": [], "invalid": [], "unknown": []},
                "runs": [],
            },
        )
        c["seeds"][r["verdict"]].append(r["seed"])
        c["runs"].append(r["id"])
    out = list(by.values())
    labels: dict[str, int] = {}
    for c in out:
        s = c["seeds"]
        if s["invalid"] and s["valid"]:
            c["status"] = "flaky"
        elif s["invalid"]:
            c["status"] = "failed"
        elif s["unknown"]:
            c["status"] = "unknown"
        else:
            c["status"] = "passed"
        labels[c["label"]] = labels.get(c["label"], 0) + 1
    seen: dict[str, int] = {}
    for c in out:  # two configurations with one test name (an unlabelled option) stay apart
        if labels[c["label"]] > 1:
            seen[c["label"]] = seen.get(c["label"], 0) + 1
            extra = " ".join(options_argv(c["options"]))
            c["label"] = f"{c['label']} [{extra or seen[c['label']]}]"
    return out


def findings(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Invalid runs grouped by signature: one finding per bug, with every run as an example,
    the most frequent first."""
    groups: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["index"]):
        if r["verdict"] != "invalid" or not r.get("signature"):
            continue
        key = signature_key(r["signature"])
        g = groups.setdefault(
            key,
            {
                "title": key,
                "signature": r["signature"],
                "runs": [],
                "configurations": [],
                "labels": [],
                "examples": [],
                "example_reason": r.get("reason") or "",
            },
        )
        g["runs"].append(r["id"])
        if r["config"] not in g["configurations"]:
            g["configurations"].append(r["config"])
            g["labels"].append(r["test_name"])
        g["examples"].append(
            {"test_name": r["test_name"], "seed": r["seed"], "report": r.get("report"),
             "reason": r.get("reason")}
        )  # fmt: skip
    return sorted(groups.values(), key=lambda g: -len(g["runs"]))


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Configurations, findings, totals and the exit code of a set of rows."""
    confs = configurations(rows)
    totals = {v: sum(r["verdict"] == v for r in rows) for v in ("valid", "invalid", "unknown")}
    statuses = {
        s: sum(c["status"] == s for c in confs) for s in ("passed", "failed", "flaky", "unknown")
    }
    return {
        "totals": {"runs": len(rows), **totals},
        "statuses": statuses,
        "configurations": confs,
        "findings": findings(rows),
        "exit_code": exit_code_of(rows),
    }


# ---------------------------------------------------------------------------------------------
# Output: campaign.json, index.html, junit.xml


def new_campaign_dir(store: str | os.PathLike[str], name: str, suffix: str = "") -> Path:
    """store/campaigns/<name>/<timestamp><suffix>/, fresh."""
    base = Path(store) / "campaigns" / name
    base.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    stamp = time.strftime(TIMESTAMP) + suffix
    for n in range(1000):
        path = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir(mode=DIR_MODE)
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"cannot create a campaign directory under {base}")  # pragma: no cover


def junit_suites(rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> list[JUnitSuite]:
    """One suite per configuration (its status as a property), one case per seed."""
    by_id = {r["id"]: r for r in rows}
    suites = []
    for c in summary["configurations"]:
        cases = []
        for rid in c["runs"]:
            r = by_id[rid]
            sig = r.get("signature")
            out = [f"verdict: {r['verdict'].upper()}", f"configuration: {c['status']}"]
            if r.get("report"):
                out.append(f"report: {r['report']}")
            if sig:
                out.append(f"signature: {signature_key(sig)}")
            message = r.get("reason") or ""
            if c["status"] == "flaky" and r["verdict"] == "invalid":
                message = f"flaky (invalid on seeds {c['seeds']['invalid']}, valid on "
                message += f"{c['seeds']['valid']}): {r.get('reason') or ''}"
            props = {"seed": str(r["seed"]), "status": c["status"]}
            if r.get("report"):
                props["report"] = r["report"]
            cases.append(
                JUnitCase(
                    name=f"seed {r['seed']}",
                    classname=c["label"],
                    verdict=r["verdict"],
                    message=message,
                    seconds=float(r.get("seconds") or 0),
                    output="\n".join(out),
                    properties=props,
                )
            )
        suites.append(JUnitSuite(c["label"], cases, properties={"status": c["status"]}))
    return suites


#: renders index.html from campaign.json's data (`reports.campaign.render_index`, which the
#: command passes in: the HTML is the reports layer's, above which this module does not reach)
IndexRenderer = Callable[[Mapping[str, Any]], str]


def write_campaign(
    out_dir: Path,
    meta: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    step_summary: bool = True,
    render_index: IndexRenderer | None = None,
) -> dict[str, Any]:
    """campaign.json, junit.xml and (with render_index) index.html in out_dir, all from the
    same rows (so they cannot disagree); the Markdown summary too when GITHUB_STEP_SUMMARY is
    set."""
    ordered = sorted(rows, key=lambda r: r["index"])
    summary = summarize(ordered)
    data = {**meta, "summary": summary, "exit_code": summary["exit_code"], "rows": ordered}
    write_json(out_dir / CAMPAIGN_JSON, data)
    if render_index is not None:
        write_whole(out_dir / INDEX_HTML, render_index(data))
    write_junit(out_dir / JUNIT_XML, junit_suites(ordered, summary))
    if step_summary:
        title = f"dsjepsen campaign {meta.get('name', '')}: " + ", ".join(
            f"{n} {s}" for s, n in summary["statuses"].items() if n
        )
        append_step_summary(markdown_summary(title, ordered, summary["findings"]))
    return data


def read_campaign(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """A campaign directory (or its campaign.json) -> (directory, data)."""
    p = Path(path)
    file = p / CAMPAIGN_JSON if p.is_dir() else p
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no {CAMPAIGN_JSON} here", str(p)) from None
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable campaign result: {e}", str(file)) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise InputError("not a campaign result (no rows)", str(file))
    return file.parent, data


def merge(
    sources: Sequence[str | os.PathLike[str]],
    out_dir: Path,
    render_index: IndexRenderer | None = None,
) -> dict[str, Any]:
    """Merge shard results of one campaign into out_dir. Refuses results of different
    campaigns (another matrix) and a cell that two shards both ran. Report links are
    rewritten relative to out_dir, so shards downloaded side by side still link."""
    if not sources:
        raise ConfigError("campaign merge: give at least one campaign directory")
    rows: dict[str, dict[str, Any]] = {}
    first: dict[str, Any] | None = None
    shards = []
    for src in sources:
        src_dir, data = read_campaign(src)
        if first is None:
            first = data
        elif data.get("fingerprint") != first.get("fingerprint"):
            raise ConfigError(
                f"campaign merge: {src} is another campaign ({data.get('name')}, matrix "
                f"{data.get('fingerprint')}) than {sources[0]} ({first.get('name')}, matrix "
                f"{first.get('fingerprint')})"
            )
        shards.append(data.get("shard"))
        for r in data["rows"]:
            row = dict(r)
            if row.get("run_dir"):
                absolute = (src_dir / row["run_dir"]).resolve()
                rel = Path(os.path.relpath(absolute, out_dir.resolve()))
                row["run_dir"] = rel.as_posix()
                row["report"] = (rel / "report.html").as_posix()
            if row["id"] in rows:
                raise ConfigError(f"campaign merge: run {row['id']} appears in two results ({src})")
            rows[row["id"]] = row
    assert first is not None
    meta = {k: v for k, v in first.items() if k not in ("rows", "summary", "exit_code", "shard")}
    meta["merged_from"] = [str(s) for s in sources]
    meta["shards"] = shards
    meta["shard"] = None
    missing = int(first.get("cells_total", len(rows))) - len(rows)
    meta["missing_cells"] = max(0, missing)
    return write_campaign(out_dir, meta, list(rows.values()), render_index=render_index)
