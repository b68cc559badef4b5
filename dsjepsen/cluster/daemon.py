"""Daemon helpers written once over `Remote.run`, so every backend starts, signals and stops
the system under test the same way.

Each helper is one small POSIX sh script run as `sh -c SCRIPT dsj-daemon ARGS...`: the values
travel as positional parameters, never spliced into the script, so hostile paths and
arguments need no quoting beyond what each backend already does for an argv. A daemon runs
under `setsid` (its own session and process group, detached from the command channel), with
stdin from /dev/null and stdout+stderr appended to its log; signals go to its whole process
group so that children are paused or killed with it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from dsjepsen.cluster.control.base import Remote, RemoteError, env_assignments
from dsjepsen.errors import ConfigError, HarnessError

SIGNALS = ("KILL", "STOP", "CONT", "TERM", "INT", "HUP")

# `kill -0` succeeds on a zombie: a daemon that died but was not yet reaped is not running
_ALIVE = """alive() {
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
sig() { kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" "$2" 2>/dev/null; }
"""

_START = (
    _ALIVE
    + """pf=$1; log=$2; dir=$3; shift 3
if [ -s "$pf" ] && alive "$(cat "$pf")"; then echo "already $(cat "$pf")"; exit 0; fi
mkdir -p -- "$dir" "$(dirname -- "$pf")" "$(dirname -- "$log")" || exit 1
cd -- "$dir" || exit 1
setsid "$@" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pf" || exit 1
sleep 0.2
if ! alive "$pid"; then
  echo "exited at once; last lines of $log:" >&2; tail -n 5 -- "$log" >&2; exit 3
fi
echo "started $pid"
"""
)

_SIGNAL = (
    _ALIVE
    + """pf=$1
[ -s "$pf" ] || exit 1
pid=$(cat "$pf")
alive "$pid" || exit 1
sig "$2" "$pid"
"""
)

_RUNNING = (
    _ALIVE
    + """pf=$1
[ -s "$pf" ] || exit 1
alive "$(cat "$pf")"
"""
)

_STOP = (
    _ALIVE
    + """pf=$1; ticks=$2
[ -s "$pf" ] || exit 0
pid=$(cat "$pf")
if alive "$pid"; then
  sig TERM "$pid"; sig CONT "$pid"
  i=0; while alive "$pid" && [ "$i" -lt "$ticks" ]; do sleep 0.1; i=$((i+1)); done
fi
sig KILL "$pid"
i=0; while alive "$pid" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if alive "$pid"; then echo "pid $pid survived SIGKILL" >&2; exit 1; fi
rm -f -- "$pf"
"""
)


def _sh(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, "dsj-daemon", *args]


def start_daemon(
    remote: Remote,
    argv: Sequence[str],
    *,
    pidfile: str,
    logfile: str,
    cwd: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> bool:
    """Start argv detached on the node, in cwd, with env added (e.g. LD_PRELOAD for clock
    faults), its pid in pidfile and its output appended to logfile.

    Like Jepsen's start-daemon!, a daemon whose pidfile names a live process is left alone:
    returns True when started, False when it was already running. Raises RemoteError when the
    process exits at once (the error carries the last lines of its log)."""
    if not argv:
        raise ConfigError("start_daemon: empty command")
    command = [*(["env", *env_assignments(env)] if env else []), *argv]
    res = remote.run(_sh(_START, pidfile, logfile, cwd, *command), timeout=timeout, check=False)
    if res.exit == 3:
        tail = " | ".join(res.stderr.strip().splitlines()[1:])[-300:]
        raise RemoteError(
            remote.node.name, list(argv), f"daemon exited at once (log {logfile}: {tail})", res
        )
    if res.exit != 0:
        raise RemoteError(
            remote.node.name, list(argv), f"cannot start daemon ({res.stderr.strip()[-200:]})", res
        )
    return res.stdout.strip().startswith("started")


def signal_daemon(remote: Remote, pidfile: str, sig: str, timeout: float = 10.0) -> bool:
    """Send sig ("KILL", "STOP", "CONT", "TERM", ...) to the daemon's process group.
    Returns False when no live daemon is recorded in pidfile."""
    sig = sig.upper().removeprefix("SIG")
    if sig not in SIGNALS:
        raise ConfigError(f"unknown signal {sig!r} (one of {', '.join(SIGNALS)})")
    res = remote.run(_sh(_SIGNAL, pidfile, sig), timeout=timeout, check=False)
    return res.exit == 0


def daemon_running(remote: Remote, pidfile: str, timeout: float = 10.0) -> bool:
    """True when pidfile names a live process (a paused one counts as running)."""
    return remote.run(_sh(_RUNNING, pidfile), timeout=timeout, check=False).exit == 0


def daemon_pid(remote: Remote, pidfile: str, timeout: float = 10.0) -> int | None:
    """The pid recorded in pidfile, if any."""
    res = remote.run(["cat", pidfile], timeout=timeout, check=False)
    text = res.stdout.strip()
    return int(text) if res.exit == 0 and text.isdigit() else None


def stop_daemon(remote: Remote, pidfile: str, grace: float = 5.0) -> None:
    """TERM (and CONT, so a paused daemon can act on it), up to `grace` seconds to exit, then
    KILL the whole group; removes the pidfile. A daemon that is not running is fine."""
    ticks = max(1, int(grace * 10))
    res = remote.run(_sh(_STOP, pidfile, str(ticks)), timeout=grace + 20.0, check=False)
    if res.exit != 0:
        raise RemoteError(
            remote.node.name,
            ["stop", pidfile],
            f"cannot stop daemon ({res.stderr.strip()[-200:]})",
            res,
        )


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Poll from the controller until a TCP connect to host:port succeeds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise HarnessError(
                f"{host}:{port} did not accept connections within {timeout:g}s ({last})"
            )
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(left, 0.05))):
                return
        except OSError as e:
            last = e
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


def fetch_files(
    remote: Remote, paths: Iterable[str], local_dir: str | os.PathLike, timeout: float = 30.0
) -> list[Path]:
    """Copy each existing remote file (or directory) into local_dir under its base name.

    Missing files are skipped (a node that crashed before writing its log is not an error, and
    collecting logs must not hide the test's result): the returned list says what arrived."""
    dest = Path(local_dir)
    dest.mkdir(parents=True, exist_ok=True)
    fetched = []
    for path in paths:
        with contextlib.suppress(RemoteError):
            if remote.run(["test", "-e", path], timeout=timeout, check=False).exit != 0:
                continue
            target = dest / Path(path).name
            remote.get(path, str(target), timeout=timeout)
            fetched.append(target)
    return fetched
