"""dsjepsen from Python: read a history, check it, run a test.

```python
from dsjepsen import check, read_history, run_test, test_config

result = check(read_history("history.jsonl"), model="cas-register")
assert result.valid is True, result.reason

run = run_test(test_config(target="raft-kv", nemesis="partition-majority", time_limit=10))
print(run.verdict, run.report)
```

The same code paths as the CLI: `test_config` parses options exactly as `dsjepsen test` does
(so a bad value raises the same ConfigError with the same one-line message), `run_test`
opens the nodes and runs the phases as `dsjepsen test` does, and `check` runs the registered
checkers as `dsjepsen check` does. Nothing here prints; errors are `dsjepsen.errors.DsjError`
subclasses carrying the CLI's exit code.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsjepsen.checkers.models import NOT_GIVEN
from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, ConfigError, InputError

if TYPE_CHECKING:
    from dsjepsen.checkers.result import CheckResult
    from dsjepsen.harness.config import TestConfig
    from dsjepsen.history import History, Op

__all__ = ["TestRun", "check", "read_history", "run_test", "test_config", "to_history"]


def read_history(path: str | os.PathLike[str], format: str = "auto") -> History:
    """A history file in any registered format (dsjepsen JSONL, Jepsen EDN, Jepsen log
    lines, Porcupine kv lines), detected from the content unless `format` is given."""
    from dsjepsen.formats import read_history as read

    return read(path, format)


def to_history(history: Any, source: str = "<memory>") -> History:
    """A History from a History, a file path, or a list of ops (Op objects or dicts in the
    JSONL line shape: type, f, process, value, optional key / time / index). Dicts are
    validated like a file's lines; a bad one raises InputError naming its position."""
    from dsjepsen.formats.jsonl import op_from_dict
    from dsjepsen.history import History, Op

    if isinstance(history, History):
        return history
    if isinstance(history, str | os.PathLike):
        return read_history(history)
    ops: list[Op] = []
    for i, item in enumerate(history):
        if isinstance(item, Op):
            ops.append(item)
        elif isinstance(item, Mapping):
            d = dict(item)
            d.setdefault("index", i)
            d.setdefault("time", i)
            ops.append(op_from_dict(d, source, i + 1, i))
        else:
            raise InputError(f"op {i}: expected an Op or a dict, got {type(item).__name__}", source)
    return History(ops, source=source)


def check(
    history: Any,
    *,
    model: str | None = None,
    consistency: str = "linearizable",
    checkers: Sequence[str] = ("linearizable",),
    time_limit: float | None = None,
    initial: Any = NOT_GIVEN,
) -> CheckResult:
    """Check a history (see `to_history` for what it may be) and return the CheckResult:
    `valid` is True, False or "unknown", `reason` the one-sentence explanation, `anomalies`
    what was found. With several checkers the result is their composition (any invalid ->
    invalid, else any unknown -> unknown) and `details` holds each one's result. `initial`
    is the state every object starts in, as JSON values (`0`, `{"x": 0, "y": 0}`); default:
    the model's own.

    Bad input (a malformed op, a model that cannot judge the ops, an unknown model or
    checker, an empty history) raises InputError / ConfigError, never a verdict; a history
    of nemesis ops alone is vacuous: unknown, with that reason.
    """
    from dsjepsen import plugins
    from dsjepsen.checkers.base import CheckContext, Checker, run_checkers
    from dsjepsen.checkers.models import get_model
    from dsjepsen.checkers.vacuous import without_client_ops

    if time_limit is not None and not 0 < time_limit < float("inf"):
        raise ConfigError(f"time_limit must be a positive number, got {time_limit}")
    if model is not None:
        get_model(model)
    chosen: list[Checker] = [plugins.get("checkers", name)() for name in dict.fromkeys(checkers)]
    h = to_history(history)
    # Jepsen's process rules, naming the op that breaks them (completions without
    # invocations, Elle's histories, for checkers that take them)
    h.operations(orphans=all(c.orphans for c in chosen))
    vacuous = without_client_ops(h)
    if vacuous is not None:
        return vacuous
    context = CheckContext(
        time_limit=time_limit, model=model, initial=initial, consistency=consistency
    )
    for c in chosen:
        c.validate_input(h, context)
    composed, results = run_checkers(chosen, h, context)
    return results[0] if len(results) == 1 else composed


class _RaisingParser(argparse.ArgumentParser):
    """Parses options given from Python: a bad one raises ConfigError instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def test_config(argv: Sequence[str] | None = None, /, **options: Any) -> TestConfig:
    """A validated TestConfig from `dsjepsen test` options, either as command-line tokens
    (`test_config(["--target", "etcd", "--nemesis", "kill"])`) or as keywords with `_` for
    `-` (`test_config(target="etcd", nemesis="kill", time_limit=10, bug=["stale-read"])`);
    True is a flag, a list repeats the option. Raises ConfigError exactly as the CLI does."""
    from dsjepsen.harness.config import add_test_options, config_from_args
    from dsjepsen.options import options_argv

    tokens = [*(argv or []), *options_argv(options)]

    parser = _RaisingParser(prog="dsjepsen test", add_help=False)
    add_test_options(parser)
    args = parser.parse_args(tokens)
    return config_from_args(args, argv=["dsjepsen", "test", *tokens])


test_config.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, whatever its name


@dataclass
class TestRun:
    """One finished test: its verdict, results.json as a dict, and where it is."""

    __test__ = False  # not a pytest test class

    valid: Any
    exit_code: int
    results: dict[str, Any]
    run_dir: Path
    seed: int
    test_name: str
    report: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """VALID, INVALID or UNKNOWN."""
        return {EXIT_VALID: "VALID", EXIT_INVALID: "INVALID"}.get(self.exit_code, "UNKNOWN")

    @property
    def reason(self) -> str | None:
        return self.results.get("reason")

    def sentence(self) -> str:
        """One line for a failing assertion: verdict, reason and where the report is."""
        where = self.report or self.run_dir
        reason = f": {self.reason}" if self.reason else ""
        return f"{self.verdict} {self.test_name} (seed {self.seed}){reason} (report: {where})"


def run_test(
    config: TestConfig | Sequence[str] | Mapping[str, Any],
    *,
    nodes: Sequence[str] | None = None,
    node_count: int | None = None,
    cluster_name: str | None = None,
    report: bool = True,
    **node_options: Any,
) -> TestRun:
    """Run one test and return its TestRun (verdict, results, run directory, report).

    `config` is a TestConfig (`test_config(...)`), command-line tokens, or a dict of
    options. Nodes as in the CLI: the local namespace cluster by default (`cluster_name`,
    `node_count`; created on demand and removed afterwards when this call created it), or
    `nodes=[...]` SSH hosts with `ssh_user=`, `ssh_key=`, ... (`backend="docker"` or
    `docker=True` for containers; any node option of `dsjepsen test`, `_` for `-`).
    The report is rendered as `dsjepsen test` does unless `report=False`.
    """
    from dsjepsen.cluster import localnet
    from dsjepsen.cluster.nodes import add_node_options, node_option_dests, open_nodes
    from dsjepsen.harness.config import TestConfig
    from dsjepsen.harness.runner import Runner
    from dsjepsen.options import options_argv

    if isinstance(config, TestConfig):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = test_config(**dict(config))
    else:
        cfg = test_config(list(config))
    given = {
        "nodes": ",".join(nodes) if nodes else None,
        "node_count": node_count,
        "cluster_name": cluster_name or localnet.DEFAULT_NAME,
        **node_options,
    }
    known = node_option_dests()
    for name in given:
        if name not in known:
            raise ConfigError(f"run_test: unknown option {name!r}")
    parser = _RaisingParser(prog="dsjepsen test", add_help=False)
    add_node_options(parser)
    ns = parser.parse_args(options_argv(given))
    from dsjepsen import plugins

    with open_nodes(ns, node_cost=plugins.get("targets", cfg.target).node_cost) as cluster:
        cluster.keep = cfg.leave_running
        outcome = Runner(cfg, cluster).run()
    out = outcome.run_dir / "report.html"
    if report:
        from dsjepsen.reports.html import render_run_report

        try:
            out = Path(render_run_report(outcome.run_dir) or out)
        except Exception:  # noqa: BLE001 - the verdict stands whatever the report does
            pass
    return TestRun(
        valid=outcome.valid,
        exit_code=outcome.exit_code
        if outcome.exit_code in (EXIT_VALID, EXIT_INVALID)
        else EXIT_UNKNOWN,
        results=outcome.results,
        run_dir=outcome.run_dir,
        seed=cfg.seed,
        test_name=cfg.test_name,
        report=out if out.exists() else None,
    )
