"""pytest plugin (entry point `pytest11`): dsjepsen inside your own test suite.

Two things, both failing with the verdict's sentence so that a red test says what broke:

- `assert_linearizable(history, model=...)`: for unit tests of a store's client code with
  recorded histories (a list of op dicts, a History, or a history file).
- the `dsjepsen_test` fixture: a callable that runs a real dsjepsen test against your system
  (any `dsjepsen test` option as a keyword, e.g. `target="http-kv", server_cmd="..."`) and
  fails the test with the verdict, the reason and the report path unless the run is valid.

Importing this module costs nothing: dsjepsen's harness loads only when a test uses it, so
a project that merely has dsjepsen installed pays no time at pytest start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["assert_linearizable", "dsjepsen_test"]


def assert_linearizable(
    history: Any,
    model: str | None = None,
    *,
    time_limit: float | None = 60.0,
) -> None:
    """Fail (AssertionError) unless the history is linearizable against `model` (None:
    inferred from the ops). The message is the checker's sentence, e.g. "key 1: read
    returned 2, but the register could only hold 0, 1 or 3 at that point"; an undecided
    check (time limit) fails too, saying so: unknown is not a pass."""
    from dsjepsen.api import check

    result = check(history, model=model, time_limit=time_limit)
    if result.valid is True:
        return
    verdict = "not linearizable" if result.valid is False else "linearizability unknown"
    __tracebackhide__ = True
    raise AssertionError(f"{verdict}: {result.reason or 'no reason given'}")


@pytest.fixture
def dsjepsen_test(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """`dsjepsen_test(**options) -> TestRun`: run one dsjepsen test and fail unless VALID.

    Options are `dsjepsen test`'s, with `_` for `-` (`time_limit=10`, `nemesis=
    "partition-majority"`, `server_cmd=...`); node options (`node_count=3`, `cluster_name=`,
    `nodes=[...]`, `ssh_user=`, ...) go to the cluster as in `dsjepsen.run_test`. The store
    defaults to the test's tmp_path; pass `store=` to keep runs elsewhere. `expect="invalid"`
    asserts that the run finds a bug instead (for a store with a known, seeded bug).
    """
    from dsjepsen.api import run_test, test_config
    from dsjepsen.cluster.nodes import node_option_dests

    node_keys = node_option_dests()  # every backend's node options, `_` for `-`

    def run(*, expect: str = "valid", **options: Any) -> Any:
        __tracebackhide__ = True
        node_options = {k: options.pop(k) for k in list(options) if k in node_keys}
        options.setdefault("store", str(tmp_path / "store"))
        outcome = run_test(test_config(**options), **node_options)
        wanted = {"valid": "VALID", "invalid": "INVALID"}.get(expect, expect.upper())
        if outcome.verdict != wanted:
            pytest.fail(f"dsjepsen: expected {wanted}, got {outcome.sentence()}", pytrace=False)
        return outcome

    yield run


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker users put on tests that start namespaces (they need root)."""
    config.addinivalue_line(
        "markers", "dsjepsen: runs a dsjepsen test against a real cluster (needs root)"
    )
