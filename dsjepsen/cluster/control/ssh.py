"""The SSH backend: real machines, Jepsen's way, through fabric (paramiko).

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

import io
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

from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteConfigError,
    RemoteError,
    RemoteTimeout,
    Result,
    env_assignments,
    exit_failure,
)
from dsjepsen.errors import ConfigError

PASSWORD_ENV_DEFAULT = "DSJEPSEN_SSH_PASSWORD"
log = logging.getLogger("dsjepsen.ssh")
#: idle command agents kept per connection (more are opened while commands run in parallel)
MAX_IDLE_AGENTS = 8
AGENT_READY = b"DSJ-AGENT-READY"

#: The command agent, one POSIX sh loop per exec channel. The user's shell starts it once (and
#: runs its startup files once: bash sources ~/.bashrc for every command sshd runs, ~390 ms
#: here where it starts pyenv); after that a command costs three forks. Per command it reads
#: one line `LEN_INPUT|- COMMAND_LINE` (newlines inside the command's quoted words travel as
#: `$nl`, see `_one_line`) and LEN_INPUT bytes of stdin, runs the command line with `sh` in a
#: session of its own (so that a timeout can kill its whole process group), its output in
#: files (a daemon the command leaves running holds no pipe of ours), and answers `P PID`,
#: then `R EXIT`, `wc -c` of stdout and stderr (three lines) and their bytes. Its one
#: directory, `dsj-ssh.<its pid>.<random>`, is removed when it exits; one whose agent was
#: killed outright (SIGKILL) is removed by the next agent that starts there.
AGENT_SCRIPT = r"""exec 2>/dev/null
umask 077
t=${TMPDIR:-/tmp}
for o in "$t"/dsj-ssh.*.*; do
  [ -d "$o" ] || continue
  q=${o##*/dsj-ssh.}
  q=${q%%.*}
  case $q in '' | *[!0-9]*) continue ;; esac
  kill -0 "$q" 2>/dev/null || [ -d "/proc/$q" ] || rm -rf "$o"
done
d=$(mktemp -d "$t/dsj-ssh.$$.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 1' HUP INT TERM PIPE
S=
command -v setsid >/dev/null && S=setsid
R='nl="
"; eval "$1"'
echo DSJ-AGENT-READY
while IFS= read -r l; do
  m=${l%%" "*}
  i=/dev/null
  if [ "$m" != - ]; then head -c "$m" >"$d/i"; i=$d/i; fi
  $S sh -c "$R" sh "${l#*" "}" <"$i" >"$d/o" 2>"$d/e" &
  p=$!
  echo "P $p"
  wait "$p"
  echo "R $?"
  wc -c "$d/o" "$d/e"
  cat "$d/o" "$d/e"
done
"""


def _one_line(cmd: str) -> str:
    """The command line without newlines, for the agent's `read`: shlex quoting puts every
    newline inside single quotes, where `'"$nl"'` closes the quote, adds the agent's newline
    variable and reopens it."""
    return cmd.replace("\n", "'\"$nl\"'")


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


def command_line(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    sudo: bool = False,
) -> str:
    """The one string the remote login shell runs: every word shlex-quoted; with sudo the
    whole command (cd and env included) runs as root via `sudo -n sh -c`, so that a missing
    sudo rule fails at once instead of waiting for a password."""
    if not argv:
        raise ConfigError("empty command")
    words = list(argv)
    if env:
        words = ["env", *env_assignments(env), *words]
    cmd = shlex.join(words)
    if cwd:
        cmd = f"cd {shlex.quote(cwd)} && exec {cmd}"
    if sudo:
        cmd = shlex.join(["sudo", "-n", "--", "sh", "-c", cmd])
    return cmd


class SshRemote(Remote):
    """One node over SSH; `host` defaults to node.address."""

    def __init__(self, node: Node, config: SshConfig | None = None, host: str | None = None):
        self.node = node
        self.config = config or SshConfig()
        self.host = host or node.address
        self._conn = None
        self._lock = threading.Lock()
        self._idle: list[CommandAgent] = []
        #: set when this server cannot run the command agent: one exec channel per command
        self._no_agent = False

    # ------------------------------------------------------------------ connection

    @property
    def where(self) -> str:
        return f"{self.config.user}@{self.host}:{self.config.port}"

    def connection(self):
        """The open fabric Connection, opened (and checked) on first use."""
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return self._conn
            self._conn = self._open()
            return self._conn

    def _open(self):
        from fabric import Config, Connection

        cfg = self.config
        connect_kwargs: dict[str, object] = {
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
        conn = Connection(
            self.host,
            user=cfg.user,
            port=cfg.port,
            config=Config(overrides={"load_ssh_configs": False}),
            connect_kwargs=connect_kwargs,
        )
        client = conn.client
        keys = client.get_host_keys()
        keys.clear()
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
            conn.open()
        except paramiko.BadHostKeyException:
            raise RemoteConfigError(
                self.node.name,
                "",
                f"host key of {self.host} does not match known_hosts "
                "(possible man-in-the-middle; fix known_hosts)",
            ) from None
        except paramiko.AuthenticationException as e:
            how = f"key {cfg.key_file}" if cfg.key_file else "agent/default keys"
            if password is not None:
                how += f" or password from ${cfg.password_env}"
            raise RemoteConfigError(
                self.node.name, "", f"SSH authentication failed for {self.where} with {how} ({e})"
            ) from None
        except paramiko.SSHException as e:
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
            raise RemoteError(
                self.node.name,
                "",
                f"cannot reach {self.where}: no answer within {cfg.connect_timeout:g}s",
            ) from None
        except OSError as e:
            reason = e.strerror or str(e)
            if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
                reason = "connection refused (is sshd running on that port?)"
            raise RemoteError(self.node.name, "", f"cannot reach {self.where}: {reason}") from None
        return conn

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            for agent in idle:
                agent.close()
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
        conn = self.connection()
        try:
            return CommandAgent.start(conn.transport, self.config.use_sudo, timeout)
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
        from invoke.exceptions import CommandTimedOut

        cmd = command_line(argv, env, cwd, sudo=self.config.use_sudo)
        conn = self.connection()
        started = time.monotonic()
        try:
            r = conn.run(
                cmd,
                hide=True,
                warn=True,
                pty=False,
                timeout=timeout,
                in_stream=io.StringIO(input) if input is not None else False,
                encoding="utf-8",
            )
        except CommandTimedOut:
            raise RemoteTimeout(
                self.node.name, list(argv), f"timed out after {timeout:g}s"
            ) from None
        except (OSError, EOFError) as e:
            self.close()
            raise RemoteError(self.node.name, list(argv), f"SSH connection lost ({e})") from None
        if r.exited in (None, -1) and time.monotonic() - started >= timeout:
            # invoke's timer closed the channel but lost the race to report it (its
            # timed_out flag is read before the timer thread ends): no exit status = timeout
            raise RemoteTimeout(self.node.name, list(argv), f"timed out after {timeout:g}s")
        return Result(r.exited if r.exited is not None else -1, r.stdout, r.stderr)

    # ------------------------------------------------------------------ files

    def _sftp(self, timeout: float):
        sftp = self.connection().sftp()
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


class AgentTimeout(Exception):
    """The command outlived its timeout; `pgid` is its process group (None if not yet known)."""

    def __init__(self, pgid: int | None) -> None:
        super().__init__(pgid)
        self.pgid = pgid


class AgentRefused(Exception):
    """The agent's channel ended before it was ready (no sh, sudo refused, a server that
    runs no commands); `stderr` is what the remote side said."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def pop_usable(idle: list[CommandAgent]) -> CommandAgent | None:
    """The most recently idle agent that still works, closing the dead ones passed over (a
    remote's idle agents, under the lock that guards them); None when none is left."""
    while idle:
        agent = idle.pop()
        if agent.usable():
            return agent
        agent.close()
    return None


class CommandAgent:
    """One exec channel running AGENT_SCRIPT: one command at a time, a few ms each."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.buf = bytearray()
        self.broken = False

    @classmethod
    def start(cls, transport: paramiko.Transport, sudo: bool, timeout: float) -> CommandAgent:
        """Open a channel and wait for the ready line (skipping whatever the user's startup
        files print). With sudo the whole agent runs as root through one `sudo -n`."""
        channel = transport.open_session(timeout=timeout)
        prefix = "exec sudo -n -- /bin/sh -c " if sudo else "exec /bin/sh -c "
        channel.exec_command(prefix + shlex.quote(AGENT_SCRIPT))
        return cls.ready(channel, timeout)

    @classmethod
    def ready(cls, channel: Any, timeout: float) -> CommandAgent:
        """The agent on an open channel that runs AGENT_SCRIPT (paramiko's, or any object
        with the same methods: the docker backend's pipe to `docker exec -i`), once it said
        it is ready."""
        agent = cls(channel)
        deadline = time.monotonic() + timeout
        try:
            while not agent._line(deadline).endswith(AGENT_READY):
                pass
        except EOFError:
            err = agent._stderr()
            channel.close()
            raise AgentRefused(f"agent exited at once: {err or 'no output'}", err) from None
        except TimeoutError:
            channel.close()
            raise OSError(f"the remote shell did not start within {timeout:g}s") from None
        return agent

    def kill_group(self, pgid: int, timeout: float) -> None:
        """SIGKILL another agent's timed-out command: its process group, or the process alone
        where it is no group leader. That agent is busy waiting for it, so this one sends it."""
        self.run(f"kill -s KILL -- -{pgid} 2>/dev/null || kill -s KILL {pgid}", None, timeout)

    def usable(self) -> bool:
        ch = self.channel
        return not (self.broken or ch.closed or ch.eof_received or ch.exit_status_ready())

    def run(self, cmd: str, input: str | None, timeout: float) -> Result:
        """Send one command, wait for its answer. Raises AgentTimeout past `timeout`."""
        stdin = None if input is None else input.encode()
        request = f"{'-' if stdin is None else len(stdin)} {_one_line(cmd)}\n".encode()
        deadline = time.monotonic() + timeout
        pgid: int | None = None
        self.broken = True  # until the whole answer is read
        try:
            self.channel.settimeout(max(0.01, timeout))
            self.channel.sendall(request + (stdin or b""))
            pgid = int(self._field(deadline, b"P"))
            code = int(self._field(deadline, b"R"))
        except TimeoutError:
            raise AgentTimeout(pgid) from None
        rest = max(deadline, time.monotonic() + 30.0)  # it has finished: the bytes follow
        sizes = [self._line(rest).split() for _ in range(3)]  # out, err, total
        n_out, n_err = int(sizes[0][0]), int(sizes[1][0])
        out = self._exact(n_out, rest)
        err = self._exact(n_err, rest)
        self.broken = False
        return Result(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    def _field(self, deadline: float, tag: bytes) -> bytes:
        line = self._line(deadline).split()
        if len(line) != 2 or line[0] != tag:
            raise EOFError(f"unexpected answer from the command agent: {line!r}")
        return line[1]

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.channel.settimeout(remaining)
        chunk = self.channel.recv(1 << 16)
        if not chunk:
            raise EOFError("the command agent's channel closed")
        self.buf += chunk

    def _line(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return line
            self._fill(deadline)

    def _exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _stderr(self) -> str:
        chunks = []
        self.channel.settimeout(2.0)
        try:
            while True:
                chunk = self.channel.recv_stderr(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks).decode("utf-8", "replace").strip()

    def close(self) -> None:
        self.broken = True
        self.channel.close()


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
