"""The controller's side of the fault file system (faultfs.py): mounting one over a data
directory, commanding it, and taking it away again whatever state it is in.

Every path that heals (a run's teardown, `dsjepsen cluster heal` and `cluster down`, the next
run's clean slate) ends here, so a crashed FUSE process or a killed controller never leaves a
mount that hangs whoever touches it: the process is stopped by its pidfile (checked to be a
fault file system, since pids are reused) and the mount detached with `fusermount3 -u -z`,
then `umount -l`. `self_test` is what `dsjepsen doctor` reports for the disk faults.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from dsjepsen.cluster.faultfs import CONTROL, FSNAME, control


def is_mounted(mount: str) -> bool:
    """Whether anything is mounted at `mount` (also a dead FUSE mount, which os.path.ismount
    cannot stat)."""
    target = os.path.realpath(mount)
    try:
        with open("/proc/self/mounts") as fh:
            return any(line.split()[1] == target for line in fh if len(line.split()) > 1)
    except OSError:
        return False


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
        sock = self.socket
        if len(sock.encode()) > 107:
            raise OSError(errno.ENAMETOOLONG, f"control socket path too long: {sock}")
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
