"""The SSH backend: real machines, Jepsen's way, through paramiko.

paramiko alone, without fabric on top: what dsjepsen asks of SSH is one connection per node
(`SSHClient.connect` with our host-key policy), exec channels for the command agent, SFTP, and,
on servers where no agent starts, one exec channel per command with a timeout. fabric wrapped
the first and the last in its own Connection and invoke's runner, whose timeout thread could
lose the race to report a timeout (we had to detect that by the clock) and whose config
loading had to be switched off; the direct calls are fewer lines than the workarounds were.

Host keys are checked against known_hosts by default (an unknown or changed key is a
configuration error, exit 254); only an explicit opt-out accepts any key. Passwords never
appear on a command line or in a file of ours: only the *name* of an environment variable is
configured. One connection per node is opened lazily and reused for every command and
transfer; every command, connect and transfer has a timeout.

Accepting any key is never silent: each connection that does so logs one warning on the
`dsjepsen.ssh` logger naming the node, the host and the fingerprint it took on trust, so the
run's log (dsjepsen.log) shows that its commands may have gone to an impostor.
"""

from __future__ import annotations

import argparse
import logging
import os
import posixpath
import shlex
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko

from dsjepsen.cluster.backend import Backend, NodeSettings, NodeSpec
from dsjepsen.cluster.control.agent import (
    AGENT_SCRIPT,
    MAX_IDLE_AGENTS,
    AgentRefused,
    AgentTimeout,
    CommandAgent,
    command_line,
    pop_usable,
)
from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteConfigError,
    RemoteError,
    RemoteTimeout,
    Result,
    exit_failure,
)
from dsjepsen.errors import ConfigError

PASSWORD_ENV_DEFAULT = "DSJEPSEN_SSH_PASSWORD"
log = logging.getLogger("dsjepsen.ssh")


@dataclass(frozen=True)
class SshConfig:
    """How to reach one node. `sudo=None` means: use `sudo -n` unless the user is root."""

    user: str = "root"
    port: int = 22
    key_file: str | None = None
    password_env: str | None = None
    known_hosts: str | None = None
    insecure_host_keys: bool = False
    connect_timeout: float = 10.0
    sudo: bool | None = None
    allow_agent: bool = True

    @property
    def use_sudo(self) -> bool:
        return self.user != "root" if self.sudo is None else self.sudo

    def password(self) -> str | None:
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(
                f"SSH password variable {self.password_env} is not set in the environment"
            )
        return value


class SshRemote(Remote):
    """One node over SSH; `host` defaults to node.address."""

    def __init__(self, node: Node, config: SshConfig | None = None, host: str | None = None):
        self.node = node
        self.config = config or SshConfig()
        self.host = host or node.address
        self._conn: paramiko.SSHClient | None = None
        self._sftp_session: paramiko.SFTPClient | None = None
        self._sftp_for: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self._idle: list[CommandAgent] = []
        #: set when this server cannot run the command agent: one exec channel per command
        self._no_agent = False

    # ------------------------------------------------------------------ connection

    @property
    def where(self) -> str:
        return f"{self.config.user}@{self.host}:{self.config.port}"

    def connection(self) -> paramiko.SSHClient:
        """The open connection, opened (and checked) on first use."""
        with self._lock:
            if self._conn is not None:
                transport = self._conn.get_transport()
                if transport is not None and transport.is_active():
                    return self._conn
            self._conn = self._open()
            return self._conn

    def transport(self) -> paramiko.Transport:
        transport = self.connection().get_transport()
        if transport is None:
            raise OSError("the SSH connection closed")
        return transport

    def _open(self) -> paramiko.SSHClient:
        cfg = self.config
        connect_kwargs: dict[str, Any] = {
            "username": cfg.user,
            "port": cfg.port,
            "timeout": cfg.connect_timeout,
            "banner_timeout": cfg.connect_timeout,
            "auth_timeout": cfg.connect_timeout,
            "allow_agent": cfg.allow_agent,
            "look_for_keys": cfg.key_file is None,
        }
        if cfg.key_file:
            if not Path(cfg.key_file).expanduser().is_file():
                raise ConfigError(f"node {self.node.name}: SSH key file {cfg.key_file} not found")
            connect_kwargs["key_filename"] = str(Path(cfg.key_file).expanduser())
        password = cfg.password()
        if password is not None:
            connect_kwargs["password"] = password
        client = paramiko.SSHClient()
        keys = client.get_host_keys()
        if cfg.insecure_host_keys:
            client.set_missing_host_key_policy(_AcceptAnyKey(self.node.name))
        else:
            # load into the key table without recording a file name: nothing ever writes to
            # the user's known_hosts on our behalf
            path = Path(cfg.known_hosts or "~/.ssh/known_hosts").expanduser()
            if path.is_file():
                try:
                    keys.load(str(path))
                except (OSError, paramiko.SSHException) as e:
                    raise ConfigError(f"known_hosts file {path}: {e}") from None
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(self.host, **connect_kwargs)
        except paramiko.BadHostKeyException:
            client.close()
            raise RemoteConfigError(
                self.node.name,
                "",
                f"host key of {self.host} does not match known_hosts "
                "(possible man-in-the-middle; fix known_hosts)",
            ) from None
        except paramiko.AuthenticationException as e:
            client.close()
            how = f"key {cfg.key_file}" if cfg.key_file else "agent/default keys"
            if password is not None:
                how += f" or password from ${cfg.password_env}"
            raise RemoteConfigError(
                self.node.name, "", f"SSH authentication failed for {self.where} with {how} ({e})"
            ) from None
        except paramiko.SSHException as e:
            client.close()
            if "known_hosts" in str(e):
                shown = self.host if cfg.port == 22 else f"[{self.host}]:{cfg.port}"
                raise RemoteConfigError(
                    self.node.name,
                    "",
                    f"unknown SSH host key for {shown} (not in "
                    f"{cfg.known_hosts or '~/.ssh/known_hosts'}; add it, e.g. with "
                    "ssh-keyscan, or pass --ssh-insecure-host-keys)",
                ) from None
            raise RemoteError(
                self.node.name, "", f"SSH connection to {self.where} failed ({e})"
            ) from None
        except TimeoutError:
            client.close()
            raise RemoteError(
                self.node.name,
                "",
                f"cannot reach {self.where}: no answer within {cfg.connect_timeout:g}s",
            ) from None
        except OSError as e:
            client.close()
            reason = e.strerror or str(e)
            if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
                reason = "connection refused (is sshd running on that port?)"
            raise RemoteError(self.node.name, "", f"cannot reach {self.where}: {reason}") from None
        return client

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            for agent in idle:
                agent.close()
            if self._sftp_session is not None:
                self._sftp_session.close()
                self._sftp_session = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ commands

    def run(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        """Run argv through a command agent of this connection (see `CommandAgent`), or, on a server
        where no agent can start, as one exec channel per command."""
        shown = list(argv)
        started = time.monotonic()
        agent = None if self._no_agent else self._take_agent(shown, max(timeout, 5.0))
        if agent is None:
            result = self._run_plain(argv, timeout, input, env, cwd)
        else:
            cmd = command_line(argv, env, cwd, sudo=False)  # the agent already runs as root
            remaining = max(0.05, timeout - (time.monotonic() - started))
            try:
                result = agent.run(cmd, input, remaining)
            except AgentTimeout as e:
                self._kill_after_timeout(agent, e.pgid)
                raise RemoteTimeout(
                    self.node.name, shown, f"timed out after {timeout:g}s"
                ) from None
            except (OSError, EOFError, paramiko.SSHException) as e:
                agent.close()
                self.close()
                raise RemoteError(self.node.name, shown, f"SSH connection lost ({e})") from None
            self._give_agent(agent)
        if check and result.exit != 0:
            raise RemoteError(self.node.name, shown, exit_failure(result), result)
        return result

    def _take_agent(self, shown: list[str], timeout: float) -> CommandAgent | None:
        """An idle agent, or a new one (one exec channel; the only place that pays for the
        remote login shell's startup files). None when this server cannot run one."""
        with self._lock:
            idle = pop_usable(self._idle)
        if idle is not None:
            return idle
        try:
            return start_agent(self.transport(), self.config.use_sudo, timeout)
        except AgentRefused as e:
            if self.config.use_sudo and e.stderr:
                raise RemoteConfigError(
                    self.node.name,
                    shown,
                    f"sudo -n refused for {self.config.user} ({e.stderr.splitlines()[-1][:200]}; "
                    "passwordless sudo is needed for a non-root SSH user)",
                ) from None
            log.info(
                "node %s: no command agent (%s); one exec channel per command", self.node.name, e
            )
            self._no_agent = True
            return None
        except (OSError, EOFError, paramiko.SSHException) as e:
            self.close()
            raise RemoteError(self.node.name, shown, f"SSH connection lost ({e})") from None

    def _give_agent(self, agent: CommandAgent) -> None:
        with self._lock:
            if self._conn is not None and len(self._idle) < MAX_IDLE_AGENTS and agent.usable():
                self._idle.append(agent)
                return
        agent.close()

    def _kill_after_timeout(self, agent: CommandAgent, pgid: int | None) -> None:
        """SIGKILL the timed-out command's process group from another agent (the timed-out one
        is busy waiting for it), then drop the timed-out agent: no remote process outlives
        its timeout. A daemon that the command detached into a session of its own lives on."""
        agent.close()
        if pgid is None:
            return
        try:
            killer = self._take_agent(["kill"], 10.0)
            if killer is None:
                return
            killer.kill_group(pgid, 10.0)
            self._give_agent(killer)
        except Exception as e:  # noqa: BLE001 - the timeout is what the caller must hear about
            log.warning(
                "node %s: could not kill timed-out command (pgid %s): %s", self.node.name, pgid, e
            )

    def _run_plain(
        self,
        argv: Sequence[str],
        timeout: float,
        input: str | None,
        env: Mapping[str, str] | None,
        cwd: str | None,
    ) -> Result:
        """One exec channel per command (servers where no agent runs): the command goes
        through the user's shell, and a timeout closes the channel without killing it."""
        cmd = command_line(argv, env, cwd, sudo=self.config.use_sudo)
        deadline = time.monotonic() + timeout
        try:
            channel = self.transport().open_session(timeout=max(0.05, timeout))
            channel.exec_command(cmd)
            if input is not None:
                channel.sendall(input.encode())
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                if time.monotonic() >= deadline:
                    channel.close()
                    raise RemoteTimeout(self.node.name, list(argv), f"timed out after {timeout:g}s")
                channel.settimeout(min(0.2, max(0.01, deadline - time.monotonic())))
                got = False
                for buf, ready, read in (
                    (out, channel.recv_ready, channel.recv),
                    (err, channel.recv_stderr_ready, channel.recv_stderr),
                ):
                    if ready():
                        buf += read(1 << 16)
                        got = True
                if not got:
                    # done at end of data, not at the exit status: a server may send the exit
                    # status before the last of the output (a loaded sshd did: 221,184 of
                    # 300,000 bytes were read)
                    if (
                        channel.exit_status_ready()
                        and (channel.eof_received or channel.closed)
                        and not (channel.recv_ready() or channel.recv_stderr_ready())
                    ):
                        break
                    time.sleep(0.005)
            code = channel.recv_exit_status()
            channel.close()
        except RemoteTimeout:
            raise
        except (OSError, EOFError, paramiko.SSHException) as e:
            self.close()
            raise RemoteError(self.node.name, list(argv), f"SSH connection lost ({e})") from None
        return Result(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    # ------------------------------------------------------------------ files

    def _sftp(self, timeout: float) -> paramiko.SFTPClient:
        """The connection's one SFTP session, opened on first use."""
        client = self.connection()
        with self._lock:
            if self._sftp_session is None or self._sftp_for is not client:
                self._sftp_session = client.open_sftp()
                self._sftp_for = client
            sftp = self._sftp_session
        sftp.get_channel().settimeout(timeout)
        return sftp

    def _tmp(self, suffix: str) -> str:
        return f"/tmp/dsj-{uuid.uuid4().hex}{suffix}"

    def put(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Files go by SFTP; a directory travels as one tar file. With sudo the upload lands
        in /tmp first and is moved into place as root."""
        src = Path(local)
        if not src.exists():
            raise RemoteError(self.node.name, ["put", local, remote], "no such local file")
        try:
            if src.is_dir():
                with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
                    with tarfile.open(tmp.name, "w") as tar:
                        tar.add(str(src), arcname=".")
                    staged = self._tmp(".tar")
                    self._sftp(timeout).put(tmp.name, staged)
                script = 'mkdir -p -- "$1" && tar -xf "$2" -C "$1"; rc=$?; rm -f -- "$2"; exit $rc'
                self.run(["sh", "-c", script, "dsj-put", remote, staged], timeout=timeout)
            elif self.config.use_sudo:
                staged = self._tmp("")
                self._sftp(timeout).put(str(src), staged)
                script = 'mkdir -p -- "$(dirname -- "$1")" && mv -f -- "$2" "$1"'
                self.run(["sh", "-c", script, "dsj-put", remote, staged], timeout=timeout)
            else:
                self.run(["mkdir", "-p", posixpath.dirname(remote) or "."], timeout=timeout)
                self._sftp(timeout).put(str(src), remote)
        except (OSError, EOFError) as e:
            raise RemoteError(
                self.node.name, ["put", local, remote], f"SFTP failed ({e})"
            ) from None

    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        dst = Path(local)
        try:
            is_dir = self.run(["test", "-d", remote], timeout=timeout, check=False).exit == 0
            if not is_dir and not self.config.use_sudo:
                dst.parent.mkdir(parents=True, exist_ok=True)
                self._sftp(timeout).get(remote, str(dst))
                return
            staged = self._tmp(".tar" if is_dir else "")
            if is_dir:
                script = 'tar -cf "$2" -C "$1" . && chown "$3" "$2"'
            else:
                script = 'cp -- "$1" "$2" && chown "$3" "$2"'
            self.run(
                ["sh", "-c", script, "dsj-get", remote, staged, self.config.user], timeout=timeout
            )
            try:
                if is_dir:
                    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
                        self._sftp(timeout).get(staged, tmp.name)
                        dst.mkdir(parents=True, exist_ok=True)
                        with tarfile.open(tmp.name) as tar:
                            tar.extractall(dst, filter="data")
                else:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    self._sftp(timeout).get(staged, str(dst))
            finally:
                self.run(["rm", "-f", staged], timeout=timeout, check=False)
        except (OSError, EOFError) as e:
            raise RemoteError(
                self.node.name, ["get", remote, local], f"SFTP failed ({e})"
            ) from None

    def __repr__(self) -> str:
        return f"SshRemote({self.node.name!r}, {self.where})"


def start_agent(transport: paramiko.Transport, sudo: bool, timeout: float) -> CommandAgent:
    """Open an exec channel that runs the command agent and wait for its ready line (skipping
    whatever the user's startup files print). With sudo the whole agent runs as root through
    one `sudo -n`."""
    channel = transport.open_session(timeout=timeout)
    prefix = "exec sudo -n -- /bin/sh -c " if sudo else "exec /bin/sh -c "
    channel.exec_command(prefix + shlex.quote(AGENT_SCRIPT))
    return CommandAgent.ready(channel, timeout)


class _AcceptAnyKey(paramiko.MissingHostKeyPolicy):
    """--ssh-insecure-host-keys: accept any host key and record it nowhere, but say so.

    The key table is emptied before every connect, so paramiko asks this policy on every
    connection: one warning line per connection made without a check."""

    def __init__(self, node: str) -> None:
        self.node = node

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        # hostname is paramiko's known_hosts form: `host`, or `[host]:port` off port 22
        log.warning(
            "node %s: SSH host key of %s NOT checked (insecure_host_keys / "
            "--ssh-insecure-host-keys); accepted %s %s on trust",
            self.node,
            hostname,
            key.get_name(),
            key.fingerprint,
        )


#: seconds an SSH connection may take to open, at most
MAX_SSH_TIMEOUT = 300.0


class SshBackend(Backend):
    """Real machines over SSH: each has its own kernel and files; a login per node."""

    name = "ssh"
    description = "machines over SSH (paramiko): --nodes [user@]host[:port],..."
    shares_kernel = False
    shares_files = False
    entry = "[user@]host[:port]"
    metavar = "HOST"
    takes_login = True
    node_keys = frozenset(
        {"user", "port", "key", "password_env", "known_hosts", "insecure_host_keys", "sudo",
         "timeout"}
    )  # fmt: skip

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--ssh-user", default="root", help="SSH user (default root; others use sudo -n)"
        )
        group.add_argument(
            "--ssh-key", metavar="FILE", help="SSH private key (default: agent and ~/.ssh)"
        )
        group.add_argument("--ssh-port", type=int, default=22, help="SSH port (default 22)")
        group.add_argument(
            "--ssh-password-env",
            metavar="VAR",
            help="read the SSH password from this environment variable "
            f"(e.g. {PASSWORD_ENV_DEFAULT})",
        )
        group.add_argument(
            "--ssh-known-hosts", metavar="FILE", help="known_hosts (default ~/.ssh/known_hosts)"
        )
        group.add_argument(
            "--ssh-insecure-host-keys",
            action="store_true",
            help="accept any SSH host key (only on networks you trust)",
        )
        group.add_argument(
            "--ssh-timeout", type=float, default=10.0, metavar="SEC", help="SSH connect timeout"
        )

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        super().__init__(args)
        a = self.args
        port = getattr(a, "ssh_port", 22)
        if not 1 <= port <= 65535:
            raise ConfigError(f"--ssh-port {port}: must be 1-65535")
        timeout = getattr(a, "ssh_timeout", 10.0)
        if not 0 < timeout <= MAX_SSH_TIMEOUT:  # also refuses nan
            raise ConfigError(f"--ssh-timeout {timeout}: must be a number of seconds up to 300")
        #: the login every node has unless its nodes file says otherwise
        self.defaults = SshConfig(
            user=getattr(a, "ssh_user", "root"),
            port=port,
            key_file=getattr(a, "ssh_key", None),
            password_env=getattr(a, "ssh_password_env", None),
            known_hosts=getattr(a, "ssh_known_hosts", None),
            insecure_host_keys=getattr(a, "ssh_insecure_host_keys", False),
            connect_timeout=timeout,
        )

    def default_port(self) -> int | None:
        return self.defaults.port

    def node_spec(self, name: str, host: str, settings: NodeSettings, workdir: str) -> NodeSpec:
        d = self.defaults
        get = settings.get
        port = get("port", int, d.port)
        if not 1 <= port <= 65535:
            settings.invalid("port", f"must be 1-65535, not {port}")
        config = SshConfig(
            user=get("user", str, d.user),
            port=port,
            key_file=get("key", str, d.key_file),
            password_env=get("password_env", str, d.password_env),
            known_hosts=get("known_hosts", str, d.known_hosts),
            insecure_host_keys=get("insecure_host_keys", bool, d.insecure_host_keys),
            connect_timeout=float(get("timeout", (int, float), d.connect_timeout)),
            sudo=get("sudo", bool, None),
        )
        return NodeSpec(name, self.name, host, workdir, {"ssh": config})

    def open_node(self, spec: NodeSpec) -> Remote:
        return SshRemote(Node(spec.name, spec.host, spec.workdir), spec.settings["ssh"], spec.host)

    @classmethod
    def machine_problems(cls) -> list[tuple[str, str | None, str]]:
        return [("paramiko", None, f"paramiko {paramiko.__version__}")]
