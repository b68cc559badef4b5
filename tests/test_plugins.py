"""Third-party extensions: a plugin distribution adds a workload, a fault package and a
checker through entry points only, and a real test runs with them on a local cluster without
any edit to dsjepsen. A broken plugin is named in one line and breaks nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.backend import REMOTE_WORKDIR

EXAMPLE = Path(__file__).resolve().parent / "plugin_example"


def dsjepsen(*args: str, path: Path | str = EXAMPLE, timeout: float = 240):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *args],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


def broken_plugin(tmp_path: Path) -> Path:
    """A distribution whose entry point names a module that does not exist."""
    info = tmp_path / "dsjepsen_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dsjepsen-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dsjepsen.targets]\nbroken-db = no_such_module:Db\n")
    return tmp_path


def test_list_shows_the_plugin_extensions_beside_the_built_ins() -> None:
    p = dsjepsen("list")
    assert p.returncode == 0, p.stderr
    names = {
        line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ") and line.split()
    }
    assert {"write-then-read", "marker", "marker-seen", "register", "raft-kv"} <= names
    assert "--example-keys" in p.stdout  # the plugin's own option, declared in its one file
    help_text = dsjepsen("test", "--help").stdout
    assert "--example-keys" in help_text


def test_a_broken_plugin_is_one_line_and_hides_nothing(tmp_path: Path) -> None:
    path = os.pathsep.join([str(EXAMPLE), str(broken_plugin(tmp_path))])
    p = dsjepsen("list", "targets", path=path)
    assert p.returncode == 0, p.stderr
    broken = [ln for ln in p.stdout.splitlines() if "broken-db" in ln]
    assert len(broken) == 1 and "no_such_module" in broken[0] and "(broken)" in broken[0]
    assert any(ln.startswith("raft-kv") for ln in p.stdout.splitlines())
    doctor = dsjepsen("doctor", path=path)
    assert any("broken-db" in ln and "no_such_module" in ln for ln in doctor.stdout.splitlines())
    assert doctor.returncode in (254, 255)  # 255 only where the local cluster cannot run
    # asking for it fails with one line naming it, a configuration error (exit 254)
    p = dsjepsen("test", "--target", "broken-db", "--time-limit", "1", path=path)
    assert p.returncode == 254 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "broken-db" in p.stderr and "no_such_module" in p.stderr


def test_a_plugin_with_a_syntax_error_names_the_file_and_line_and_the_cause(
    tmp_path: Path,
) -> None:
    """The error is the installation's (exit 254) and says where to look: the file and line
    of a SyntaxError, and the cause of an error raised while importing, never cut before it
    (`dsjepsen doctor` shows a long one whole)."""
    info = tmp_path / "dsjepsen_bad-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dsjepsen-bad\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[dsjepsen.targets]\nbad-syntax = dsj_bad_syntax:Db\n"
        "[dsjepsen.workloads]\nbad-cause = dsj_bad_cause:W\n"
    )
    (tmp_path / "dsj_bad_syntax.py").write_text("x = 1\n\ndef f(:\n    pass\n")
    (tmp_path / "dsj_bad_cause.py").write_text(
        "try:\n    import dsj_no_such_dependency_of_the_plugin\n"
        "except ImportError as e:\n    raise RuntimeError('the plugin needs its driver') from e\n"
    )
    p = dsjepsen("test", "--target", "bad-syntax", "--time-limit", "1", path=tmp_path)
    assert p.returncode == 254 and p.stderr.strip().count("\n") == 0, p.stderr
    assert f"SyntaxError: invalid syntax ({tmp_path / 'dsj_bad_syntax.py'}, line 3)" in p.stderr
    p = dsjepsen("test", "--workload", "bad-cause", "--time-limit", "1", path=tmp_path)
    assert p.returncode == 254, p.stderr
    assert "RuntimeError: the plugin needs its driver; caused by ModuleNotFoundError: No module " \
        "named 'dsj_no_such_dependency_of_the_plugin'" in p.stderr  # fmt: skip
    doctor = dsjepsen("doctor", path=tmp_path)
    assert doctor.returncode in (254, 255), doctor.stderr
    assert "'dsj_no_such_dependency_of_the_plugin'" in doctor.stdout  # the cause, whole
    assert f"{tmp_path / 'dsj_bad_syntax.py'}, line 3" in doctor.stdout


def test_plugin_options_are_validated_like_built_in_ones() -> None:
    p = dsjepsen("test", "--workload", "write-then-read", "--example-keys", "0")
    assert p.returncode == 254 and "--example-keys" in p.stderr, p.stderr
    p = dsjepsen("test", "--workload", "register", "--example-keys", "2")
    assert p.returncode == 254 and "--example-keys: not an option of" in p.stderr, p.stderr


@pytest.mark.cluster
def test_a_real_run_with_the_plugin_workload_fault_and_checker(tmp_path: Path) -> None:
    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN) and iptables for a namespace cluster")
    name = "pl" + os.urandom(2).hex()
    try:
        p = dsjepsen(
            "test", "--target", "raft-kv", "--workload", "write-then-read", "--example-keys", "2",
            "--nemesis", "marker", "--nemesis-interval", "1", "--time-limit", "4",
            "--node-count", "3", "--cluster-name", name, "--store", str(tmp_path),
            "--rate", "50", "--seed", "3", "--json",
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
        results = json.loads(p.stdout)
        assert results["valid"] is True
        assert results["checks"]["marker-seen"]["valid"] is True
        assert results["checks"]["marker-seen"]["details"]["markers"] >= 1
        assert results["checks"]["linearizable"]["valid"] is True
        run = Path(results["run_dir"])
        test = json.loads((run / "test.json").read_text())
        assert test["options"]["options"]["example-keys"] == 2
        assert "write-then-read-marker" in str(run)
        # the family's look is recorded with the run and draws its band in its colour
        assert test["fault_looks"]["marker"]["colour"] == "#0e7c86"
        assert 'fill="#0e7c86"' in (run / "report.html").read_text()
        # the plugin's fault was healed: no marker file is left on any node
        assert not list(Path(localnet.state_root()).glob(f"{name}/**/dsj-example-marker"))
    finally:
        localnet.down(name)
    assert not localnet.status(name)["exists"]


@pytest.mark.cluster
def test_a_plugin_target_is_tested_like_a_built_in_one(tmp_path: Path) -> None:
    """The example target never replicates: the register workload through three nodes must
    find it not linearizable (a write through one node is never read through another)."""
    if not localnet.has_net_admin() or shutil.which("iptables") is None:
        pytest.skip("needs root (CAP_NET_ADMIN) and iptables for a namespace cluster")
    name = "pt" + os.urandom(2).hex()
    try:
        p = dsjepsen(
            "test", "--target", "unreplicated-kv", "--time-limit", "4", "--node-count", "3",
            "--cluster-name", name, "--store", str(tmp_path), "--rate", "80", "--seed", "5",
            "--json",
        )  # fmt: skip
        assert p.returncode == 1, p.stderr[-3000:]
        results = json.loads(p.stdout)
        assert results["checks"]["linearizable"]["valid"] is False
    finally:
        localnet.down(name)
    assert not localnet.status(name)["exists"]


@pytest.mark.cluster
def test_a_plugin_backend_reaches_the_nodes_of_a_real_run(tmp_path: Path) -> None:
    """The example's `nsenter` backend (one file, one entry-point line) lists the namespaces
    of a local cluster as nodes by hand: a raft-kv test under partitions runs on them as on
    any backend, the faults ask its facts (this kernel, these files) and are healed."""
    if not localnet.has_net_admin() or shutil.which("nsenter") is None:
        pytest.skip("needs root (CAP_NET_ADMIN) and nsenter for a namespace cluster")
    name = "pb" + os.urandom(2).hex()
    try:
        localnet.up(name, node_count=3)
        namespaces = [localnet.netns_name(name, i) for i in (1, 2, 3)]
        bad = dsjepsen("test", "--backend", "nsenter", "--nodes", "dsj-no-such-ns")
        assert bad.returncode == 254 and "no network namespace" in bad.stderr, bad.stderr
        assert bad.stderr.strip().count("\n") == 0
        p = dsjepsen(
            "test", "--backend", "nsenter", "--nodes", ",".join(namespaces),
            "--target", "raft-kv", "--nemesis", "partition-majority", "--nemesis-interval", "2",
            "--time-limit", "6", "--store", str(tmp_path), "--rate", "50", "--seed", "7",
            "--json",
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
        results = json.loads(p.stdout)
        assert results["valid"] is True
        run = Path(results["run_dir"])
        test = json.loads((run / "test.json").read_text())
        assert test["cluster"]["kind"] == "nsenter"
        assert [n["name"] for n in test["nodes"]] == namespaces
        history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        cuts = [
            op for op in history
            if op["process"] == "nemesis" and op["type"] == "ok" and op["f"].startswith("start-")
        ]  # fmt: skip
        assert cuts and all(op["value"]["grudge"] for op in cuts)
        for ns in namespaces:  # healed: no partition chain is left in any namespace
            rules = subprocess.run(
                ["ip", "netns", "exec", ns, "iptables", "-w", "-S"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            assert "DSJ-" not in rules
    finally:
        localnet.down(name)
        # the backend's nodes are this machine: their work directories are ours to remove
        for ns in [localnet.netns_name(name, i) for i in (1, 2, 3)]:
            shutil.rmtree(Path(REMOTE_WORKDIR) / ns, ignore_errors=True)
    assert not localnet.status(name)["exists"]


@pytest.mark.cluster
def test_a_plugin_target_started_from_its_own_binary(tmp_path: Path) -> None:
    """The example's Redis target (one file on ProcessTarget, one entry-point line): a real
    redis-server per node, n1 the primary; kills of any node lose nothing acknowledged
    (appendfsync always), the final reads wait until the replicas caught up, and the
    register history is linearizable."""
    if not localnet.has_net_admin() or shutil.which("redis-server") is None:
        pytest.skip("needs root (CAP_NET_ADMIN) and redis-server (scripts/setup installs it)")
    name = "pr" + os.urandom(2).hex()
    try:
        p = dsjepsen(
            "test", "--target", "example-redis", "--node-count", "3", "--cluster-name", name,
            "--nemesis", "kill", "--nemesis-interval", "2", "--time-limit", "8",
            "--store", str(tmp_path), "--rate", "50", "--seed", "3", "--json",
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
        results = json.loads(p.stdout)
        assert results["valid"] is True and results["checks"]["linearizable"]["valid"] is True
        run = Path(results["run_dir"])
        test = json.loads((run / "test.json").read_text())
        assert re.fullmatch(r"\d+\.\d+\.\d+", test["versions"]["target"])  # self.version
        assert "recovered: ready for the final reads" in (run / "dsjepsen.log").read_text()
        assert (run / "nodes" / "n1" / "redis.log").exists()  # its log was collected
        history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
        kills = [op for op in history if op["process"] == "nemesis" and op["type"] == "ok"]
        assert any(op["f"] == "start-kill" for op in kills)
    finally:
        localnet.down(name)
    assert not localnet.status(name)["exists"]
