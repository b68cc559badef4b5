"""The command agent that the SSH and docker backends share: one POSIX sh loop per session,
started once and then given one command after another, a few milliseconds each.

Transport-neutral: it speaks to a `Channel`, the few methods of a paramiko channel that it uses
(an SSH exec channel is one; the docker backend's pipe to `docker exec -i` is another), so a
backend that can open a shell session on a node (kubectl exec, a serial console) can reuse it
without importing any SSH library. Also here: `command_line`, the one string a remote shell
runs for an argv.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from dsjepsen.cluster.control.base import Result, env_assignments
from dsjepsen.errors import ConfigError

#: idle command agents kept per connection (more are opened while commands run in parallel)
MAX_IDLE_AGENTS = 8
AGENT_READY = b"DSJ-AGENT-READY"

#: The command agent, one POSIX sh loop per exec channel. The user's shell starts it once (and
#: runs its startup files once: bash sources ~/.bashrc for every command sshd runs, ~390 ms
#: here where it starts pyenv); after that a command costs three forks. Per command it reads
#: one line `LEN_INPUT|- COMMAND_LINE` (newlines inside the command's quoted words travel as
#: `$nl`, see `one_line`) and LEN_INPUT bytes of stdin, runs the command line with `sh` in a
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


def one_line(cmd: str) -> str:
    """The command line without newlines, for the agent's `read`: shlex quoting puts every
    newline inside single quotes, where `'"$nl"'` closes the quote, adds the agent's newline
    variable and reopens it."""
    return cmd.replace("\n", "'\"$nl\"'")


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


class Channel(Protocol):
    """What CommandAgent needs of a session that runs AGENT_SCRIPT (paramiko's Channel has
    these): blocking I/O with a settable timeout (TimeoutError past it), and its state."""

    closed: bool
    eof_received: bool

    def settimeout(self, timeout: float | None) -> None: ...
    def sendall(self, data: bytes) -> None: ...
    def recv(self, n: int) -> bytes: ...
    def recv_stderr(self, n: int) -> bytes: ...
    def exit_status_ready(self) -> bool: ...
    def close(self) -> None: ...


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

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.buf = bytearray()
        self.broken = False

    @classmethod
    def ready(cls, channel: Channel, timeout: float) -> CommandAgent:
        """The agent on an open channel that runs AGENT_SCRIPT (an SSH exec channel,
        or any object with the same few methods, `Channel`: the docker backend's pipe to
        `docker exec -i`), once it said
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
        request = f"{'-' if stdin is None else len(stdin)} {one_line(cmd)}\n".encode()
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
