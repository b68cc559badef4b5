"""SSH failures users hit, against a real sshd in a namespace: each is one line naming the node
and the cause, within the timeout, with exit 254 (configuration) or 255 (unreachable)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from dsjepsen.cluster.control.agent import command_line
from dsjepsen.cluster.control.base import Node, RemoteConfigError, RemoteError, RemoteTimeout
from dsjepsen.cluster.control.ssh import SshConfig, SshRemote
from dsjepsen.errors import EXIT_BAD_CONFIG, EXIT_HARNESS

pytestmark = pytest.mark.cluster


def _fails(remote, exc=RemoteError, within=15.0):
    t0 = time.monotonic()
    with pytest.raises(exc) as e:
        remote.run(["true"])
    elapsed = time.monotonic() - t0
    assert elapsed < within, f"took {elapsed:.1f}s"
    msg = str(e.value)
    assert "\n" not in msg and f"node {remote.node.name}" in msg
    return e.value


def test_good_connection_is_reused(ssh_server):
    remote = ssh_server.remote()
    try:
        assert remote.run(["hostname", "-I"]).stdout.split()[0] == ssh_server.node.address
        transport = remote.transport()
        for _ in range(5):
            remote.run(["true"])
        assert remote.transport() is transport  # one connection for all commands
    finally:
        remote.close()


def test_one_channel_per_command_where_no_agent_runs(ssh_server):
    """Servers that cannot run the command agent get one exec channel per command: output,
    exit status, stdin and a timeout behave as through the agent."""
    remote = ssh_server.remote()
    remote._no_agent = True  # as if the agent had been refused
    try:
        res = remote.run(["sh", "-c", "cat; echo err >&2; exit 3"], input="in\n", check=False)
        assert (res.exit, res.stdout, res.stderr) == (3, "in\n", "err\n")
        big = remote.run(["head", "-c", "300000", "/dev/zero"]).stdout
        assert len(big) == 300000
        t0 = time.monotonic()
        with pytest.raises(RemoteTimeout):
            remote.run(["sleep", "30"], timeout=1.0)
        assert time.monotonic() - t0 < 5
        assert remote.run(["echo", "after"]).stdout == "after\n"  # the connection still works
        assert not remote._idle  # no agent was started
    finally:
        remote.close()


def test_wrong_key_is_an_authentication_error(ssh_server):
    err = _fails(ssh_server.remote(key_file=str(ssh_server.other_key)), RemoteConfigError)
    assert "authentication failed" in str(err) and "root@" in str(err)
    assert err.exit_code == EXIT_BAD_CONFIG


def test_unknown_host_key_is_refused_by_default(ssh_server, caplog):
    caplog.set_level(logging.WARNING, logger="dsjepsen")
    err = _fails(
        ssh_server.remote(known_hosts=str(ssh_server.empty_known_hosts)), RemoteConfigError
    )
    assert "unknown SSH host key" in str(err) and f"[{ssh_server.node.address}]:2222" in str(err)
    assert err.exit_code == EXIT_BAD_CONFIG
    # the explicit opt-out connects, and writes nothing into the known_hosts file
    remote = ssh_server.remote(
        known_hosts=str(ssh_server.empty_known_hosts), insecure_host_keys=True
    )
    try:
        assert remote.run(["echo", "in"]).stdout == "in\n"
        assert remote.run(["true"]).exit == 0
    finally:
        remote.close()
    assert ssh_server.empty_known_hosts.read_text() == ""
    # ...but never silently: one warning for the one connection, naming the node
    warned = [r.getMessage() for r in caplog.records if r.name == "dsjepsen.ssh"]
    assert len(warned) == 1 and warned[0].startswith(f"node {ssh_server.node.name}: ")
    assert f"[{ssh_server.node.address}]:2222 NOT checked" in warned[0]


def test_changed_host_key_is_refused(ssh_server, tmp_path):
    other_pub = (ssh_server.other_key.parent / "other.pub").read_text().split()[:2]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[{ssh_server.node.address}]:{ssh_server.port} {' '.join(other_pub)}\n")
    err = _fails(ssh_server.remote(known_hosts=str(kh)), RemoteConfigError)
    assert "does not match known_hosts" in str(err)


def test_closed_port_is_a_harness_error(ssh_server):
    err = _fails(ssh_server.remote(port=2299))
    assert "refused" in str(err) and err.exit_code == EXIT_HARNESS


def test_unreachable_host_fails_within_the_connect_timeout(shared_cluster):
    # an address of our own cluster's subnet that no namespace holds: nothing answers ARP
    node = Node("ghost", shared_cluster.meta["subnet"].rsplit(".", 1)[0] + ".200", "/tmp")
    remote = SshRemote(node, SshConfig(port=22, connect_timeout=2.0, allow_agent=False))
    err = _fails(remote, within=10.0)
    assert "cannot reach root@" in str(err) and err.exit_code == EXIT_HARNESS


def test_missing_password_variable_is_named(ssh_server, monkeypatch):
    monkeypatch.delenv("DSJ_TEST_NO_SUCH_PW", raising=False)
    remote = ssh_server.remote(password_env="DSJ_TEST_NO_SUCH_PW")
    with pytest.raises(Exception, match="DSJ_TEST_NO_SUCH_PW is not set"):
        remote.run(["true"])


def test_cli_reports_one_line_and_the_exit_code(ssh_server):
    base = [
        sys.executable, "-m", "dsjepsen", "cluster", "exec",
        "--nodes", ssh_server.node.address, "--ssh-port", "2222",
        "--ssh-known-hosts", str(ssh_server.known_hosts),
    ]  # fmt: skip
    ok = subprocess.run(
        [*base, "--ssh-key", str(ssh_server.key), ssh_server.node.address, "--", "sh", "-c", "echo hi; exit 4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (ok.returncode, ok.stdout) == (4, "hi\n"), ok.stderr
    bad = subprocess.run(
        [*base, "--ssh-key", str(ssh_server.other_key), ssh_server.node.address, "--", "true"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 254
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "authentication failed" in lines[0]
    assert f"node {ssh_server.node.address}" in lines[0]


def test_command_line_quoting_and_sudo():
    assert command_line(["echo", "a b", "$(x)"]) == "echo 'a b' '$(x)'"
    assert command_line(["ls"], env={"K": "v w"}, cwd="/d x") == "cd '/d x' && exec env 'K=v w' ls"
    sudo = command_line(["id", "-u"], cwd="/w", sudo=True)
    assert sudo == "sudo -n -- sh -c 'cd /w && exec id -u'"
    assert SshConfig(user="admin").use_sudo and not SshConfig(user="root").use_sudo


def test_parallel_commands_on_one_connection_each_get_their_own_answer(ssh_server):
    """Commands from many threads at once (clients, nemesis, setup) run on agents of one
    connection; each answer is its own command's, and closing removes the agents' files."""
    import concurrent.futures

    remote = ssh_server.remote()
    try:
        transport = remote.transport()
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            results = list(
                pool.map(
                    lambda i: remote.run(
                        ["sh", "-c", 'sleep 0.$0; echo "$0"; echo "e$0" >&2', str(i)]
                    ),
                    range(24),
                )
            )
        assert [(r.stdout, r.stderr) for r in results] == [(f"{i}\n", f"e{i}\n") for i in range(24)]
        assert remote.transport() is transport
        assert 1 <= len(remote._idle) <= 6
        # a command's stdout is a file in its agent's directory
        out = remote.run(["readlink", "/proc/self/fd/1"]).stdout.strip()
        assert out.startswith("/tmp/dsj-ssh.") and out.endswith("/o")
    finally:
        remote.close()
    check = ssh_server.remote()
    try:
        deadline = time.monotonic() + 10
        while check.run(["test", "-e", out], check=False).exit == 0:
            assert time.monotonic() < deadline, f"{out} left behind after close"
            time.sleep(0.2)
    finally:
        check.close()
