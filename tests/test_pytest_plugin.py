"""The pytest plugin in a throwaway project (pytester): assert_linearizable on recorded
histories, and the dsjepsen_test fixture failing with a buggy store's verdict and report."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from dsjepsen.cluster import localnet

pytest_plugins = ["pytester"]


def _plugin_args() -> list[str]:
    """Load the plugin explicitly unless its pytest11 entry point is installed (loading it
    twice under two names is an error)."""
    installed = any(ep.value == "dsjepsen.pytest_plugin" for ep in entry_points(group="pytest11"))
    return ["-p", "no:cacheprovider"] + ([] if installed else ["-p", "dsjepsen.pytest_plugin"])


USER_TESTS = """
from dsjepsen.pytest_plugin import assert_linearizable

STALE = [
    {"process": 0, "type": "invoke", "f": "write", "value": 1},
    {"process": 0, "type": "ok", "f": "write", "value": 1},
    {"process": 1, "type": "invoke", "f": "read", "value": None},
    {"process": 1, "type": "ok", "f": "read", "value": 0},
]

def test_client_reads_its_own_write():
    assert_linearizable(STALE[:2] + [dict(STALE[2]), dict(STALE[3], value=1)], model="register")

def test_stale_read_is_caught():
    assert_linearizable(STALE, model="register")

def test_file(tmp_path):
    import json
    f = tmp_path / "h.jsonl"
    f.write_text("".join(json.dumps(dict(op, index=i, time=i)) + "\\n" for i, op in enumerate(STALE)))
    assert_linearizable(str(f))
"""


def test_assert_linearizable_in_a_user_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_store=USER_TESTS)
    result = pytester.runpytest_subprocess(*_plugin_args(), "-q")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        ["*AssertionError: not linearizable: *read returned 0, but the register could only hold 1*"]
    )


@pytest.mark.cluster
@pytest.mark.slow
def test_fixture_reports_a_buggy_stores_verdict(pytester: pytest.Pytester) -> None:
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name("p")
    pytester.makepyfile(
        test_buggy=f"""
def test_raft_kv_with_stale_reads(dsjepsen_test):
    dsjepsen_test(target="raft-kv", bug="stale-read", nemesis="partition-majority",
                  time_limit=5, nemesis_interval=1, seed=1, node_count=3, cluster_name="{name}")
"""
    )
    try:
        result = pytester.runpytest_subprocess(*_plugin_args(), "-q", timeout=240)
    finally:
        localnet.down(name)
    result.assert_outcomes(failed=1)
    # the first anomaly is a stale read, or an op a stale read made impossible to order (once
    # "cas from 8 to 9 succeeded, but the register could only hold 7"): each names its key
    result.stdout.fnmatch_lines(
        [
            "*dsjepsen: expected VALID, got INVALID raft-kv-bug-stale-read-register-partition-"
            "majority (seed 1): linearizable: key *: * (report: */report.html)"
        ]
    )
    assert not localnet.remains(name)
