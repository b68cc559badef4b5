"""Third-party extensions: a plugin distribution adds a workload, a fault package and a
checker through entry points only, and a real test runs with them on a local cluster without
any edit to dsjepsen. A broken plugin is named in one line and breaks nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen.cluster import localnet

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
    # asking for it fails with one line naming it; asking for another target works
    p = dsjepsen("test", "--target", "broken-db", "--time-limit", "1", path=path)
    assert p.returncode == 255 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "broken-db" in p.stderr and "no_such_module" in p.stderr


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
