"""`dsjepsen doctor` tells the truth: its verdicts match independent probes of this machine,
it leaves no namespace behind, and it exits 0 exactly when the local cluster can run."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.commands import doctor


def _doctor(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", "doctor", *extra],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _netem_works() -> bool:
    """An independent probe: a netem qdisc on a veth inside a throwaway namespace."""
    ns = f"dsj-tdoc-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "ip",
                "link",
                "add",
                "a0",
                "type",
                "veth",
                "peer",
                "name",
                "a1",
            ],
            check=True,
            timeout=30,
        )
        res = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                "a0",
                "root",
                "netem",
                "delay",
                "5ms",
            ],
            capture_output=True,
            timeout=30,
        )
        return res.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], timeout=30)


@pytest.mark.cluster
def test_doctor_matches_this_machine():
    if localnet.unsupported_reason():
        pytest.skip(localnet.unsupported_reason())
    res = _doctor("--json")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert res.returncode == 0, res.stderr  # root, ip netns, veth, iptables all work here
    for name in ("root / CAP_NET_ADMIN", "ip netns", "veth + bridge", "iptables"):
        assert checks[name]["ok"] and checks[name]["required"]
    assert checks["tc netem"]["ok"] == _netem_works()
    if not checks["tc netem"]["ok"]:
        assert "no sch_netem" in checks["tc netem"]["detail"]
        assert "delay" in checks["tc netem"]["disables"]
    docker = (
        subprocess.run(["docker", "info"], capture_output=True, timeout=60)
        if _has("docker")
        else None
    )
    assert checks["docker engine"]["ok"] == (docker is not None and docker.returncode == 0)
    assert checks["etcd"]["ok"] == _has("etcd")
    assert not [ns for ns in localnet.list_netns() if ns.startswith("dsj-doctor-")]

    table = _doctor()
    assert table.returncode == 0
    assert "the default local cluster can run here" in table.stdout
    for name, c in checks.items():
        line = next(ln for ln in table.stdout.splitlines() if ln.startswith(name))
        status = re.split(r"\s{2,}", line)[1]
        assert status == ("ok" if c["ok"] else "missing"), line
        if not c["ok"]:
            assert c["disables"] in line


def _has(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


def test_without_net_admin_doctor_fails_and_up_says_why(monkeypatch, capsys):
    monkeypatch.setattr(localnet, "has_net_admin", lambda: False)
    checks = doctor.run_checks()
    root = next(c for c in checks if c.name == "root / CAP_NET_ADMIN")
    assert not root.ok and root.required
    assert not doctor.can_run_local(checks)
    assert "MISSING*" in doctor.render(checks)
    from dsjepsen.errors import ConfigError

    with pytest.raises(ConfigError, match=r"needs root \(CAP_NET_ADMIN\)"):
        localnet.up("tnoroot", node_count=1)
