"""Daemon helpers written once over `Remote.run`, so every backend starts, signals and stops
the system under test the same way.

Each helper is one small POSIX sh script run as `sh -c SCRIPT dsj-daemon ARGS...`: the values
travel as positional parameters, never spliced into the script, so hostile paths and
arguments need no quoting beyond what each backend already does for an argv. A daemon runs
under `setsid` (its own session and process group, detached from the command channel), with
stdin from /dev/null and stdout+stderr appended to its log; signals go to its whole process
group so that children are paused or killed with it.

Every daemon also carries `DSJEPSEN_DAEMON=<its pidfile>` in its environment (inherited by its
children). That marker is how `clear_leftovers` finds what an earlier run left on a node even
when the controller died before it could write or read a pidfile: a clean slate must not
depend on the bookkeeping of the run that crashed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dsjepsen.cluster.control.base import Remote, RemoteError, env_assignments
from dsjepsen.errors import ConfigError, HarnessError

SIGNALS = ("KILL", "STOP", "CONT", "TERM", "INT", "HUP")
#: the environment variable that marks a process (and its children) as a dsjepsen daemon
MARKER = "DSJEPSEN_DAEMON"

log = logging.getLogger("dsjepsen.daemon")

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


# Processes of an earlier run: the live pids named by pidfiles ($2...) whose command line or
# environment shows they are ours, plus every process whose environment carries the marker
# under $1 (a path prefix). One line each: pid, state, command line.
_FIND = (
    _ALIVE
    + """scope=$1; shift
marked() { tr '\\0' '\\n' <"/proc/$1/environ" 2>/dev/null | grep -qF "$MARKER=$scope"; }
{
  for pf in "$@"; do
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    case $pid in ''|*[!0-9]*) continue;; esac
    if marked "$pid" || tr '\\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$scope"; then
      echo "$pid"
    fi
  done
  grep -lszF "$MARKER=$scope" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3
} | sort -un | while read -r pid; do
  [ "$pid" = "$$" ] && continue
  alive "$pid" || continue
  st=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  echo "$pid ${st:-?} $(tr '\\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
done
"""
).replace("$MARKER", MARKER)

# SIGKILL each pid ($@) and its process group (a daemon leads its own; SIGKILL needs no CONT
# to end a stopped process); wait until all are gone.
_KILL = (
    _ALIVE
    + """for pid in "$@"; do sig KILL "$pid"; done
i=0
while [ "$i" -lt 100 ]; do
  left=""; for pid in "$@"; do alive "$pid" && left="$left $pid"; done
  [ -z "$left" ] && exit 0
  sleep 0.1; i=$((i+1))
done
echo "survived SIGKILL:$left" >&2; exit 1
"""
)


# Each argument is KIND:PATH: pf (a pidfile: delete), rm (delete, say so), mv (keep as
# PATH.previous, say so). Prints each path that existed and was deleted or kept.
_CLEAR = """for a in "$@"; do
  kind=${a%%:*}; path=${a#*:}
  [ -e "$path" ] || [ -L "$path" ] || continue
  case $kind in
    pf) rm -f -- "$path" || exit 1;;
    rm) rm -rf -- "$path" || exit 1; echo "$path";;
    mv) mv -f -- "$path" "$path.previous" || exit 1; echo "$path";;
  esac
done
"""


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
    shown: Sequence[str] | None = None,
) -> bool:
    """Start argv detached on the node, in cwd, with env added (e.g. LD_PRELOAD for clock
    faults) and the MARKER, its pid in pidfile and its output appended to logfile.

    Like Jepsen's start-daemon!, a daemon whose pidfile names a live process is left alone
    (and logged, as it means a restart found the old process still there): returns True when
    started, False when it was already running. Raises RemoteError when the process exits at
    once (the error carries the last lines of its log). Errors name `shown` instead of argv
    when given, so that an argv holding a secret never reaches a message or a log."""
    if not argv:
        raise ConfigError("start_daemon: empty command")
    shown = list(argv if shown is None else shown)
    command = ["env", *env_assignments({MARKER: pidfile, **(env or {})}), *argv]
    try:
        res = remote.run(_sh(_START, pidfile, logfile, cwd, *command), timeout=timeout, check=False)
    except RemoteError as e:  # a timeout: its message would show the whole command line
        what = f"cannot start daemon ({type(e).__name__})"
        raise RemoteError(remote.node.name, shown, what) from None
    if res.exit == 3:
        tail = " | ".join(res.stderr.strip().splitlines()[1:])[-300:]
        raise RemoteError(
            remote.node.name, shown, f"daemon exited at once (log {logfile}: {tail})", res
        )
    if res.exit != 0:
        raise RemoteError(
            remote.node.name, shown, f"cannot start daemon ({res.stderr.strip()[-200:]})", res
        )
    out = res.stdout.strip()
    if out.startswith("already"):
        log.warning(
            "node %s: %s is already running (pid %s, from %s): left alone",
            remote.node.name, shown[0], out.split()[-1], pidfile,
        )  # fmt: skip
        return False
    return out.startswith("started")


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


def find_leftovers(
    remote: Remote, scope: str, pidfiles: Sequence[str] = (), timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The live processes of earlier runs on the node: every process whose MARKER names a
    pidfile under `scope` (a directory, e.g. the node's workdir: so a daemon of any target,
    and its children, count), and the live pid of each of `pidfiles` when that process is
    marked or names `scope` on its command line (daemons started before the marker existed;
    a pid that was reused by an unrelated process is never claimed).

    Each as {"pid", "state" (R, S, T = stopped, ...), "command"}."""
    scope = scope.rstrip("/") + "/"
    res = remote.run(_sh(_FIND, scope, *pidfiles), timeout=timeout, check=False)
    found: list[dict[str, Any]] = []
    for line in res.stdout.splitlines():
        pid, _, rest = line.partition(" ")
        state, _, command = rest.partition(" ")
        if pid.isdigit():
            found.append({"pid": int(pid), "state": state, "command": command.strip()})
    return found


def clear_leftovers(
    remote: Remote,
    scope: str,
    *,
    pidfiles: Sequence[str] = (),
    remove: Sequence[str] = (),
    rotate: Sequence[str] = (),
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Make the node a clean slate for a new run: SIGKILL every leftover process of earlier
    runs (see find_leftovers; paused ones too), delete `pidfiles` and the `remove` paths (the
    old data, which an old server may have written after the run that owned it died) and move
    each `rotate` file (old logs) to `<file>.previous`, so that evidence of a crashed run is
    kept but never mixed into the next run's logs.

    Returns what was found: {"node", "processes": [...], "removed": [paths that existed]}.
    Raises RemoteError when a process survives SIGKILL."""
    node = remote.node.name
    found = find_leftovers(remote, scope, pidfiles, timeout=timeout)
    if found:
        pids = [str(p["pid"]) for p in found]
        res = remote.run(_sh(_KILL, *pids), timeout=timeout, check=False)
        if res.exit != 0:
            raise RemoteError(node, ["kill", *pids], res.stderr.strip()[-200:], res)
    args = [f"pf:{p}" for p in pidfiles] + [f"rm:{p}" for p in remove]
    args += [f"mv:{p}" for p in rotate]
    res = remote.run(_sh(_CLEAR, *args), timeout=timeout, check=False)
    if res.exit != 0:
        raise RemoteError(node, ["clear", *remove], res.stderr.strip()[-200:], res)
    removed = [line for line in res.stdout.splitlines() if line]
    return {"node": node, "processes": found, "removed": removed}


def describe_leftovers(found: dict[str, Any]) -> str:
    """One log line for clear_leftovers' answer (empty when there was nothing)."""
    procs = found.get("processes") or []
    removed = found.get("removed") or []
    if not procs and not removed:
        return ""
    parts = []
    if isinstance(procs, list) and procs:
        shown = ", ".join(
            f"pid {p['pid']}{' (paused)' if p['state'] in ('T', 't') else ''}: "
            f"{str(p['command'])[:500]}"
            for p in procs
        )
        parts.append(f"stopped {len(procs)} process(es) left by an earlier run ({shown})")
    if isinstance(removed, list) and removed:
        parts.append(f"cleared {', '.join(map(str, removed))}")
    return f"node {found.get('node')}: " + "; ".join(parts)


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
