"""Issue 10: a connection whose host key is not checked says so, once, naming the node.

The server is paramiko's own, in this process, on a real loopback socket (no namespaces
needed): a full SSH exchange (key exchange, password authentication, an exec channel that
exits 0), so the warning is tested where it happens, at key exchange. tests/test_control_ssh.py
checks the same against OpenSSH's sshd in a namespace.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from dsjepsen.cluster.control.base import Node, RemoteConfigError
from dsjepsen.cluster.control.ssh import SshConfig, SshRemote

PASSWORD = "dsj-test-password"


class _Server(paramiko.ServerInterface):
    """Password auth; every exec request exits 0 at once."""

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        ok = username == "root" and password == PASSWORD
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        def finish() -> None:
            channel.send_exit_status(0)
            channel.shutdown_write()
            channel.close()

        threading.Timer(0.05, finish).start()
        return True


@dataclass
class Sshd:
    port: int
    key: paramiko.PKey

    def known_hosts(self, path: Path) -> Path:
        path.write_text(f"[127.0.0.1]:{self.port} {self.key.get_name()} {self.key.get_base64()}\n")
        return path


@pytest.fixture
def sshd() -> Iterator[Sshd]:
    key = paramiko.ECDSAKey.generate()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(key)
            transports.append(t)
            try:
                t.start_server(server=_Server())
            except (paramiko.SSHException, EOFError, OSError):
                continue  # a client that refused our key hung up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Sshd(listener.getsockname()[1], key)
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
        for t in transports:
            t.close()


def _remote(sshd: Sshd, monkeypatch: pytest.MonkeyPatch, **cfg: object) -> SshRemote:
    monkeypatch.setenv("DSJ_TEST_SSH_PASSWORD", PASSWORD)
    config = SshConfig(
        port=sshd.port,
        password_env="DSJ_TEST_SSH_PASSWORD",
        allow_agent=False,
        connect_timeout=10,
        **cfg,  # type: ignore[arg-type]
    )
    return SshRemote(Node("db7", "127.0.0.1", "/tmp"), config)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name.startswith("dsjepsen")
    ]


def test_unchecked_host_key_warns_once_per_connection_naming_the_node(
    sshd: Sshd, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING, logger="dsjepsen")
    remote = _remote(sshd, monkeypatch, insecure_host_keys=True, known_hosts=str(tmp_path / "kh"))
    try:
        for _ in range(3):
            assert remote.run(["true"]).exit == 0
        (rec,) = _warnings(caplog)  # three commands, one connection, one line
        msg = rec.getMessage()
        assert rec.name == "dsjepsen.ssh" and "\n" not in msg
        assert msg.startswith("node db7: SSH host key of ")
        assert f"[127.0.0.1]:{sshd.port}" in msg and "NOT checked" in msg
        assert sshd.key.fingerprint in msg  # what was taken on trust
        remote.close()
        assert remote.run(["true"]).exit == 0  # a new connection: said again
        assert len(_warnings(caplog)) == 2
    finally:
        remote.close()
    assert not (tmp_path / "kh").exists()  # and the key was recorded nowhere


def test_checked_host_key_is_silent(
    sshd: Sshd, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="dsjepsen")
    remote = _remote(sshd, monkeypatch, known_hosts=str(sshd.known_hosts(tmp_path / "kh")))
    try:
        assert remote.run(["true"]).exit == 0
    finally:
        remote.close()
    assert _warnings(caplog) == []
    # an unknown key is refused, not warned about
    other = _remote(sshd, monkeypatch, known_hosts=str(tmp_path / "empty"))
    with pytest.raises(RemoteConfigError, match="node db7: unknown SSH host key"):
        other.run(["true"])
    other.close()
    assert _warnings(caplog) == []
