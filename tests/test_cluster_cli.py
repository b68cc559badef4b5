"""`dsjepsen cluster up && cluster exec n1 -- ip -4 addr && cluster down`, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsjepsen.cluster import localnet

pytestmark = pytest.mark.cluster


def dsj(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *argv], capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def name():
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    n = localnet.random_name()
    yield n
    localnet.down(n)
    assert localnet.remains(n) == []


def test_up_exec_status_down(name):
    up = dsj("cluster", "up", "--cluster-name", name, "--node-count", "3")
    assert up.returncode == 0, up.stderr
    assert up.stdout.count(f"dsj-{name}-n") == 3
    again = dsj("cluster", "up", "--cluster-name", name, "--node-count", "3")
    assert again.returncode == 0 and again.stdout == up.stdout

    addr = dsj("cluster", "exec", "--cluster-name", name, "n1", "--", "ip", "-4", "addr")
    assert addr.returncode == 0, addr.stderr
    n1 = localnet.open_cluster(name).node("n1").address
    assert f"inet {n1}/24" in addr.stdout and "eth0" in addr.stdout

    code = dsj(
        "cluster",
        "exec",
        "--cluster-name",
        name,
        "n2",
        "--",
        "sh",
        "-c",
        "echo o; echo e >&2; exit 9",
    )
    assert (code.returncode, code.stdout, code.stderr) == (9, "o\n", "e\n")

    st = dsj("cluster", "status", "--cluster-name", name, "--json")
    assert st.returncode == 0
    info = json.loads(st.stdout)
    assert [n["name"] for n in info["nodes"]] == ["n1", "n2", "n3"]
    assert info["missing"] == [] and all(n["up"] for n in info["nodes"])
    assert "n3" in dsj("cluster", "status", "--cluster-name", name).stdout

    down = dsj("cluster", "down", "--cluster-name", name)
    assert down.returncode == 0 and "removed 3 namespaces" in down.stdout
    assert localnet.remains(name) == []
    assert dsj("cluster", "down", "--cluster-name", name).returncode == 0  # idempotent
    gone = dsj("cluster", "status", "--cluster-name", name)
    assert gone.returncode == 1 and "not created" in gone.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cluster", "up", "--cluster-name", "Bad-Name"], "invalid cluster name"),
        (
            ["cluster", "up", "--cluster-name", "tbad", "--node-count", "0"],
            "--node-count 0: must be 1-200",
        ),
        (["cluster", "up", "--cluster-name", "tbad", "--subnet", "192.0.2.0/24"], "overlaps"),
        (["cluster", "up", "--cluster-name", "tbad", "--subnet", "10.213.0.0/33"], "--subnet"),
        (
            ["cluster", "exec", "--cluster-name", "tnone", "n1", "--", "true"],
            "no local cluster named tnone",
        ),
        (["cluster", "exec", "--cluster-name", "tnone", "n1"], "no command given"),
    ],
)
def test_errors_are_one_line_exit_254(argv, message):
    if localnet.unsupported_reason():
        pytest.skip(localnet.unsupported_reason())
    res = dsj(*argv)
    assert res.returncode == 254, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert localnet.remains("tbad") == []


def test_exec_on_unknown_node(name):
    assert dsj("cluster", "up", "--cluster-name", name, "--node-count", "1").returncode == 0
    res = dsj("cluster", "exec", "--cluster-name", name, "n7", "--", "true")
    assert res.returncode == 254 and "unknown node 'n7'" in res.stderr
