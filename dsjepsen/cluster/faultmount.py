"""The controller's side of the fault file system (faultfs.py): mounting one over a data
directory, commanding it, and taking it away again whatever state it is in.

Every path that heals (a run's teardown, `dsjepsen cluster heal` and `cluster down`, the next
run's clean slate) ends here, so a crashed FUSE process or a killed controller never leaves a
mount that hangs whoever touches it: the process is stopped by its pidfile (checked to be a
fault file system, since pids are reused) and the mount detached with `fusermount3 -u -z`,
then `umount -l`. `self_test` is what `dsjepsen doctor` reports for the disk faults.

Two kinds, one protocol: `FaultMount` runs the process on the controller, for nodes that share
its files and mount table (local namespaces); `NodeFaultMount` runs it on the node through the
node's Remote (SSH hosts, docker containers), reaching the same control commands by a one-shot
`faultfs.py control` there. Both answer `start`, `command`, `probe`, `stop` and `log_file`;
`for_node` picks the kind from what the cluster shares (`shares_controller_files`).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsjepsen.cluster import faultfs
from dsjepsen.cluster.control.base import Remote, RemoteError
from dsjepsen.cluster.daemon import start_daemon
from dsjepsen.cluster.faultfs import CONTROL, FSNAME, control

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster

#: one rule for what "mounted" means, read where the mount table is (faultfs.py runs on nodes)
is_mounted = faultfs.is_mounted


def unmount(mount: str, timeout: float = 15.0) -> bool:
    """Detach whatever is mounted at `mount`, also a dead FUSE mount; whether one was.
    fusermount3 -u -z first (the FUSE way), umount -l when that is missing or fails."""
    if not is_mounted(mount):
        return False
    for argv in (["fusermount3", "-u", "-z", mount], ["umount", "-l", mount]):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        if not is_mounted(mount):
            return True
    return not is_mounted(mount)


PIDFILE = "faultfs.pid"
LOGFILE = "faultfs.log"


@dataclass(frozen=True)
class FaultMount:
    """One node's fault file system: mounted at `mount` (the target's data directory), data
    in `backing`, control socket, pidfile, log and trash in `state`.

    The process is started on the controller, never through the node's Remote: a local node's
    commands run under `ip netns exec`, which gives them a mount namespace of their own, so a
    mount made there would be invisible to the controller. Mounted from the controller's
    namespace before the target starts, it is inherited by the target's (ip netns exec copies
    the mount table it starts from), and the backing directory is the same files everywhere."""

    mount: str
    backing: str
    state: str

    @classmethod
    def beside(cls, data_dir: str) -> FaultMount:
        """The layout the harness uses: `<data>` mounted over `<data>.backing`, state in
        `<data>.faultfs`."""
        d = data_dir.rstrip("/")
        return cls(d, d + ".backing", d + ".faultfs")

    @property
    def socket(self) -> str:
        return os.path.join(self.state, CONTROL)

    @property
    def log_file(self) -> str:
        return os.path.join(self.state, LOGFILE)

    def probe(self) -> dict[str, Any]:
        """Write and fsync a file through the mount, timed (faultfs.probe): here, since the
        controller and the node see the same mount."""
        return faultfs.probe(self.mount)

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.state, PIDFILE)) as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def running(self) -> bool:
        """Mounted, and its process answers on the control socket."""
        if not is_mounted(self.mount):
            return False
        try:
            return bool(control(self.socket, "ping", timeout=2.0).get("ok"))
        except (OSError, ValueError):
            return False

    def start(self, timeout: float = 15.0) -> int:
        """Mount it (the data already in `mount` moves to `backing` first, so a node keeps
        what it had); its pid. A dead mount left by a crash is detached first."""
        if self.running():
            return self.pid() or 0
        self.stop()
        os.makedirs(self.state, exist_ok=True)
        os.makedirs(self.mount, exist_ok=True)
        if not os.path.isdir(self.backing):
            os.rename(self.mount, self.backing)
            os.makedirs(self.mount)
        with open(os.path.join(self.state, LOGFILE), "ab") as logf:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dsjepsen.cluster.faultfs", "serve", "--backing",
                 self.backing, "--mount", self.mount, "--state", self.state],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            )  # fmt: skip
        with open(os.path.join(self.state, PIDFILE), "w") as fh:
            fh.write(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while not self.running():
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = _tail(os.path.join(self.state, LOGFILE))
                raise OSError(errno.EIO, f"fault file system did not mount {self.mount}: {tail}")
            time.sleep(0.05)
        return proc.pid

    def command(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        """A control command (see the module docstring); OSError if it is not running, or
        when it answers that the command failed."""
        answer = control(self.socket, line, timeout=timeout)
        if not answer.get("ok"):
            raise OSError(errno.EIO, f"fault file system {self.mount}: {answer.get('error')}")
        return answer

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop its process and detach the mount, whatever state they are in (idempotent:
        what heal calls); what was done, one line each."""
        done: list[str] = []
        pid = self.pid()
        if pid is not None and _is_faultfs(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 15)
                deadline = time.monotonic() + timeout
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if alive(pid):
                    os.kill(pid, 9)
                done.append(f"stopped fault file system pid {pid}")
        if unmount(self.mount, timeout):
            done.append(f"unmounted {self.mount}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.state, PIDFILE))
        return done


#: Stop every fault file system mounted at or under $1 on a node and detach its mount, also a
#: dead one: the process by its pidfile (checked to be a fault file system: pids are reused),
#: TERM then KILL, then `fusermount3 -u -z`, else `umount -l`. One `KIND WHAT` line per thing
#: done. Read from the node's own mount table, so it finds what that node's mount namespace
#: holds (a container's, an SSH host's).
_HEAL_SH = r"""top=${1%/}/
awk -v top="$top" '$1 == "dsj-faultfs" && index($2 "/", top) == 1 { print $2 }' /proc/self/mounts |
while IFS= read -r m; do
  pf="$m.faultfs/faultfs.pid"
  p=$(cat -- "$pf" 2>/dev/null)
  case $p in ''|*[!0-9]*) p= ;; esac
  if [ -n "$p" ] && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q faultfs; then
    kill -s TERM "$p" 2>/dev/null
    n=0
    while [ -d "/proc/$p" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
    [ -d "/proc/$p" ] && kill -s KILL "$p" 2>/dev/null
    echo "stopped fault file system pid $p"
  fi
  rm -f -- "$pf"
  fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  awk -v m="$m" '$2 == m { found = 1 } END { exit !found }' /proc/self/mounts || echo "unmounted $m"
done
exit 0
"""

#: What a node needs for a fault file system of its own, tried there: prints one line saying
#: what is missing, or "ok". A FUSE mount needs the device, root (or fusermount3 with
#: user_allow_other), CAP_SYS_ADMIN (bit 21 of the effective set: a container has it only when
#: made for disk faults) and libfuse 3, which mfusepy loads with ctypes.
_CHECK_SH = r"""[ -c /dev/fuse ] || { echo "/dev/fuse is missing (a container needs --device /dev/fuse and --cap-add SYS_ADMIN: dsjepsen docker up --disk-faults)"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "not root on the node"; exit 0; }
cap=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
[ $(( (0x$cap >> 21) & 1 )) = 1 ] || { echo "no CAP_SYS_ADMIN (a container needs --cap-add SYS_ADMIN)"; exit 0; }
command -v fusermount3 >/dev/null 2>&1 || { echo "fusermount3 is not installed (apt-get install fuse3)"; exit 0; }
"$1" -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("fuse3") else 1)' 2>/dev/null ||
  { echo "libfuse 3 is not installed (apt-get install fuse3) or $1 does not run"; exit 0; }
echo ok
"""


def _mfusepy_file() -> str:
    """mfusepy's one module file, found without importing it (importing loads libfuse, which
    the controller of SSH or docker nodes need not have)."""
    spec = importlib.util.find_spec("mfusepy")
    if spec is None or not spec.origin:
        raise OSError(
            errno.ENOENT, "mfusepy is not installed on the controller (pip install mfusepy)"
        )
    return spec.origin


@dataclass(frozen=True)
class NodeFaultMount:
    """A fault file system that runs ON its node, started and commanded through the node's
    Remote: for nodes that do not share the controller's files and mount table (SSH hosts,
    docker containers), where a mount made by the controller would not be seen.

    faultfs.py (which imports nothing of dsjepsen) and mfusepy's single module are uploaded
    into the state directory and run with the node's python3: `serve` as a daemon (marked as
    every dsjepsen daemon is, so `cluster heal` and the next run's clean slate stop it),
    `control` for each command (the same line protocol the controller speaks to a local one
    over its socket), `probe` for the probe. The node needs python3, fuse3 and root."""

    remote: Remote = field(compare=False, repr=False)
    node: str
    mount: str
    backing: str
    state: str
    python: str = "python3"

    @classmethod
    def beside(cls, remote: Remote, data_dir: str, python: str = "python3") -> NodeFaultMount:
        local = FaultMount.beside(data_dir)
        return cls(remote, remote.node.name, local.mount, local.backing, local.state, python)

    @property
    def script(self) -> str:
        return f"{self.state}/faultfs.py"

    @property
    def log_file(self) -> str:
        return f"{self.state}/{LOGFILE}"

    def _json(self, argv: list[str], timeout: float) -> dict[str, Any]:
        """One faultfs one-shot on the node; its JSON answer (OSError when there is none)."""
        try:
            res = self.remote.run([self.python, self.script, *argv], timeout=timeout, check=False)
        except RemoteError as e:
            raise OSError(errno.EIO, str(e)) from None
        try:
            answer = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            why = (res.stderr.strip() or res.stdout.strip())[-300:]
            raise OSError(errno.EIO, f"node {self.node}: faultfs {argv[0]}: {why}") from None
        if not isinstance(answer, dict):
            raise OSError(errno.EPROTO, f"node {self.node}: faultfs answered {answer!r:.100}")
        return answer

    def start(self, timeout: float = 15.0) -> int:
        """Mount it on the node (what `mount` held moves to `backing` first); its pid there.
        One already running is kept; a dead one is detached first."""
        if self.running():
            return self.pid() or 0
        self.stop()
        prepare = (
            'mkdir -p -- "$1" "$3" && { [ -d "$2" ] || { mv -- "$1" "$2" && mkdir -- "$1"; }; }'
        )
        self.remote.run(["sh", "-c", prepare, "dsj-faultfs", self.mount, self.backing,
                         self.state], timeout=30.0)  # fmt: skip
        self.remote.put(faultfs.__file__, self.script, timeout=60.0)
        self.remote.put(_mfusepy_file(), f"{self.state}/mfusepy.py", timeout=60.0)
        argv = [self.python, self.script, "serve", "--backing", self.backing,
                "--mount", self.mount, "--state", self.state]  # fmt: skip
        try:
            start_daemon(self.remote, argv, pidfile=f"{self.state}/{PIDFILE}",
                         logfile=self.log_file, cwd=self.state)  # fmt: skip
        except RemoteError as e:
            self.stop()
            raise OSError(
                errno.EIO, f"fault file system did not start on {self.node}: {e}"
            ) from None
        answer = self._json(
            ["wait", "--state", self.state, "--mount", self.mount, "--timeout", str(timeout)],
            timeout + 15.0,
        )
        if not answer.get("ok"):
            tail = self.remote.run(["tail", "-c", "300", self.log_file], timeout=10.0,
                                   check=False).stdout  # fmt: skip
            self.stop()
            raise OSError(
                errno.EIO,
                f"fault file system did not mount {self.mount} on {self.node}: "
                f"{answer.get('error')} | {tail.strip().replace(chr(10), ' | ')}",
            )
        return int(answer.get("pid") or 0)

    def pid(self) -> int | None:
        res = self.remote.run(["cat", f"{self.state}/{PIDFILE}"], timeout=10.0, check=False)
        text = res.stdout.strip()
        return int(text) if res.exit == 0 and text.isdigit() else None

    def running(self) -> bool:
        """Mounted on the node, and its process answers."""
        try:
            return bool(self._json(["control", "--state", self.state, "ping"], 15.0).get("ok"))
        except OSError:
            return False

    def command(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        """A control command, sent by a one-shot on the node; OSError as FaultMount.command."""
        answer = self._json(["control", "--state", self.state, *line.split()], timeout + 15.0)
        if not answer.get("ok"):
            raise OSError(errno.EIO, f"fault file system {self.mount} on {self.node}: "
                                     f"{answer.get('error')}")  # fmt: skip
        return answer

    def probe(self) -> dict[str, Any]:
        answer = self._json(["probe", self.mount], 60.0)
        answer.pop("ok", None)
        return answer

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop its process and detach the mount on the node, whatever state they are in."""
        return heal_node_under(self.remote, self.mount, timeout + 20.0)


def heal_node_under(remote: Remote, root: str, timeout: float = 60.0) -> list[str]:
    """Stop and unmount every fault file system at or under `root` on a node, through its
    Remote (`cluster heal` and the clean slate on SSH and docker nodes); one line per thing
    done. Needs only sh and awk there."""
    res = remote.run(["sh", "-c", _HEAL_SH, "dsj-faultfs-heal", root], timeout=timeout,
                     check=False)  # fmt: skip
    return [line for line in res.stdout.splitlines() if line.strip()]


def node_problem(remote: Remote, python: str = "python3", timeout: float = 30.0) -> str | None:
    """Why a fault file system cannot run on this node, tried there; None when it can."""
    try:
        res = remote.run(["sh", "-c", _CHECK_SH, "dsj-faultfs-check", python], timeout=timeout,
                         check=False)  # fmt: skip
    except RemoteError as e:
        return str(e)
    said = res.stdout.strip().splitlines()
    if said and said[-1] == "ok":
        return None
    return said[-1] if said else f"the check did not run ({res.stderr.strip()[-200:]})"


#: through the mount: 4 bytes written and fsynced, 5 more written and never fsynced
_WRITE_PY = (
    "import os, sys; fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600); "
    "os.write(fd, b'kept'); os.fsync(fd); os.write(fd, b' lost'); os.close(fd)"
)


def node_self_test(remote: Remote, python: str = "python3") -> tuple[bool, str]:
    """`self_test` on a node that runs its own fault file system (SSH, docker), through its
    Remote: mounted in a scratch directory under the node's workdir, a power failure cut, and
    everything removed again. (works, what was seen). What `dsjepsen doctor` says per node."""
    why = node_problem(remote, python)
    if why:
        return False, why
    scratch = f"{remote.node.workdir.rstrip('/')}/dsj-doctor-faultfs"
    m = NodeFaultMount.beside(remote, f"{scratch}/data", python)
    try:
        m.start()
        path = f"{m.mount}/probe"
        remote.run([python, "-c", _WRITE_PY, path], timeout=30.0)
        dropped = m.command("drop-unsynced")["bytes_dropped"]
        got = remote.run(["cat", path], timeout=30.0).stdout
        if got != "kept" or dropped != 5:
            return False, f"a power failure kept {got!r} (dropped {dropped} B)"
        return True, f"mounted on the node, a power failure dropped {dropped} B"
    except (OSError, RemoteError) as e:
        return False, str(e)
    finally:
        m.stop()
        remote.run(["rm", "-rf", "--", scratch], timeout=30.0, check=False)


def alive_on(remote: Remote, pid: int | None) -> bool:
    """Whether `pid` runs on the node (a zombie does not): asked through its Remote, so it
    holds in a container's process table as in this machine's."""
    if pid is None:
        return False
    res = remote.run(["cat", f"/proc/{pid}/stat"], timeout=10.0, check=False)
    return res.exit == 0 and res.stdout.split(") ")[-1][:1] not in ("Z", "X", "")


def fatal_signal_pending(remote: Remote, pid: int | None) -> bool:
    """Whether SIGKILL is pending on `pid` on the node (/proc's ShdPnd or SigPnd, mask 0x100):
    it was sent. True when it is gone."""
    if pid is None:
        return False
    res = remote.run(["cat", f"/proc/{pid}/status"], timeout=10.0, check=False)
    if res.exit != 0:
        return True
    for line in res.stdout.splitlines():
        if line.startswith(("ShdPnd:", "SigPnd:")):
            with contextlib.suppress(ValueError, IndexError):
                if int(line.split()[1], 16) & 0x100:
                    return True
    return False


def for_node(cluster: Cluster, node: str, data_dir: str) -> FaultMount | NodeFaultMount:
    """The fault file system over `data_dir` on `node`: on the controller when the nodes share
    its files and mounts, else on the node (see the module docstring)."""
    if cluster.shares_controller_files:
        return FaultMount.beside(data_dir)
    return NodeFaultMount.beside(cluster.remote(node), data_dir)


def heal_for(cluster: Cluster, node: str, root: str) -> list[str]:
    """Stop and unmount every fault file system under `root` of `node`, wherever it runs."""
    if cluster.shares_controller_files:
        return heal_under(root)
    return heal_node_under(cluster.remote(node), root)


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie whose parent died and was never reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


def _is_faultfs(pid: int) -> bool:
    """Whether `pid` is a fault file system process (a pidfile may outlive its process and
    its number be reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"dsjepsen.cluster.faultfs" in fh.read()
    except OSError:
        return False


def _tail(path: str, n: int = 300) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read()[-n:].decode(errors="replace").strip().replace("\n", " | ")
    except OSError:
        return "(no log)"


def mounts_under(root: str) -> list[str]:
    """Every fault file system mounted at or under `root` (dead ones too)."""
    top = os.path.realpath(root).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) > 1 and parts[0] == FSNAME and (parts[1] + "/").startswith(top):
                    found.append(parts[1])
    except OSError:
        pass
    return found


def heal_under(root: str) -> list[str]:
    """Stop and unmount every fault file system under `root` (`cluster heal`, `cluster down`
    and a run's clean slate after a crashed controller); one line per thing done."""
    done: list[str] = []
    for mount in mounts_under(root):
        done += FaultMount.beside(mount).stop()
    return done


def available() -> str | None:
    """Why the fault file system cannot work on this machine, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (the fuse kernel module)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return f"mfusepy does not load: {e} (pip install mfusepy; apt-get install fuse3)"
    return None


def self_test() -> tuple[bool, str]:
    """Mount one in a temporary directory and cut its power: (works, what was seen). What
    `dsjepsen doctor` reports for the disk faults: tried, not guessed from installed files."""
    import tempfile

    why = available()
    if why:
        return False, why
    with tempfile.TemporaryDirectory(prefix="dsj-faultfs-") as tmp:
        m = FaultMount.beside(os.path.join(tmp, "data"))
        try:
            m.start()
            path = os.path.join(m.mount, "probe")
            with open(path, "wb", buffering=0) as fh:
                fh.write(b"kept")
                os.fsync(fh.fileno())
                fh.write(b" lost")
            dropped = m.command("drop-unsynced")["bytes_dropped"]
            with open(path, "rb") as fh:
                got = fh.read()
            if got != b"kept" or dropped != 5:
                return False, f"a power failure kept {got!r} (dropped {dropped} B)"
            return True, f"mounted with fusermount3, a power failure dropped {dropped} B"
        except OSError as e:
            return False, str(e)
        finally:
            m.stop()
