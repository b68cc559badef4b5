"""Clocks of nodes: libfaketime (or, for servers libfaketime hangs, the project's own clock
shim, `clockshim.py`) for nodes that share this machine's kernel, and the facts that decide
which nodes those are.

A node that runs on this machine's kernel (a local namespace, a docker container, an SSH
"node" that is in fact this host) shares this machine's CLOCK_REALTIME: setting its clock would
set the controller's, which we must never do. Its processes instead run with libfaketime
preloaded, reading their offset from a per-node control file that the clock nemesis rewrites
while they run (`FAKETIME_TIMESTAMP_FILE` with `FAKETIME_NO_CACHE=1`, so every clock call
sees the file's current content). `FAKETIME_DONT_FAKE_MONOTONIC=1` keeps CLOCK_MONOTONIC
true, as on a machine whose wall clock is stepped with `date -s`: timers and timeouts keep
working, only what the process believes the date is moves. `FAKETIME_DISABLE_SHM=1` asks newer
libfaketime not to create shared-memory segments; 0.9.10 (Debian 12) ignores it and leaves
`/dev/shm/faketime_shm_<pid>` and `sem.faketime_sem_<pid>` behind for a process killed with
SIGKILL (a process that exits cleans up after itself).

Processes whose clock calls bypass libc (Go binaries such as etcd read the vDSO directly;
statically linked binaries have no libc to interpose) cannot be reached this way:
`bypasses_libc` reads a binary's ELF headers to say so before a run starts.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from dsjepsen.cluster import clockshim
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node, Remote

#: Debian's libfaketime (package libfaketime)
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
BOOT_ID = "/proc/sys/kernel/random/boot_id"
TIMEOUT = 20.0


def controller_boot_id() -> str:
    """This machine's kernel boot id: equal on every namespace and container of this kernel."""
    with open(BOOT_ID) as f:
        return f.read().strip()


def node_boot_id(remote: Remote, timeout: float = TIMEOUT) -> str:
    res = remote.run(["cat", BOOT_ID], timeout=timeout, check=False)
    return res.stdout.strip() if res.exit == 0 else ""


def shares_controller_kernel(remote: Remote, timeout: float = TIMEOUT) -> bool:
    """True when the node runs on this machine's kernel, so its clock is this machine's clock.

    An unreadable boot id counts as shared: the safe answer, since a wrong "not shared" would
    let the nemesis set this machine's clock."""
    theirs = node_boot_id(remote, timeout)
    return not theirs or theirs == controller_boot_id()


def format_offset(seconds: float) -> str:
    """libfaketime's relative offset syntax, e.g. "+12.345000" or "-0.250000" (the clock shim
    reads the same)."""
    return f"{seconds:+.6f}"


def offset_path(workdir: str) -> str:
    """The libfaketime control file of the node whose working directory is `workdir`."""
    return f"{workdir.rstrip('/')}/dsj-clock/offset"


def reset_offset_file(path: str | os.PathLike[str]) -> str | None:
    """On a node whose files are this machine's (the local cluster): set the offset in the
    control file back to zero; the offset it held when that was not zero, else None. A
    crashed run's clock fault lives on in this file for every process started with it."""
    try:
        held = Path(path).read_text().strip()
        if float(held) == 0:
            return None
    except (OSError, ValueError):
        return None
    tmp = Path(f"{path}.tmp")
    tmp.write_text(format_offset(0.0) + "\n")
    os.replace(tmp, path)
    return held


@dataclass
class FaketimeControl:
    """Where each node's libfaketime control file lives and the env that makes a process
    read it. Targets ask `env(cluster, node)` when they start a daemon (HttpServerTarget does
    when its `clock_control` is set); nodes that do not share this machine's kernel get no env
    (their real clock is set instead), and the answer is cached per node name.

    `shim` chooses the preloaded library: the project's clock shim (`clockshim.py`) for a
    target whose server libfaketime cannot start (`Target.clock_shim`), else libfaketime. Both
    read the same control file, so everything that writes offsets is the same for both."""

    lib: str = LIBFAKETIME
    shim: bool = False
    _shared: dict[str, bool] = field(default_factory=dict)
    _lib_on_node: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def control_file(node: Node) -> str:
        return offset_path(node.workdir)

    def uses_faketime(self, cluster: Cluster, node: str) -> bool:
        if node not in self._shared:
            self._shared[node] = shares_controller_kernel(cluster.remote(node))
        return self._shared[node]

    @property
    def kind(self) -> str:
        """What moves the clocks of processes on shared-kernel nodes: "shim" or "faketime"."""
        return "shim" if self.shim else "faketime"

    def library(self, cluster: Cluster, node: str) -> str:
        """The preloaded library's path on the node, uploading this machine's copy when the
        node (a container) cannot read it. The shim is compiled here first if need be."""
        if node in self._lib_on_node:
            return self._lib_on_node[node]
        remote = cluster.remote(node)
        here = str(clockshim.build()) if self.shim else self.lib
        name = clockshim.NODE_NAME if self.shim else "libfaketime.so.1"
        path = here
        if remote.run(["test", "-r", path], timeout=TIMEOUT, check=False).exit != 0:
            if not os.path.exists(here):
                raise FileNotFoundError(f"libfaketime is not installed here ({here})")
            path = f"{cluster.node(node).workdir.rstrip('/')}/dsj-clock/{name}"
            remote.run(["mkdir", "-p", os.path.dirname(path)], timeout=TIMEOUT)
            remote.put(here, path, timeout=60.0)
        self._lib_on_node[node] = path
        return path

    def write(self, cluster: Cluster, node: str, seconds: float) -> None:
        """Set the node's offset: every process started with `env` sees it at its next call."""
        path = self.control_file(cluster.node(node))
        remote = cluster.remote(node)
        tmp = f"{path}.tmp"
        # write then rename, so a process never reads a half-written file
        remote.run(
            [
                "sh",
                "-c",
                'mkdir -p "$(dirname "$1")" && printf "%s\\n" "$2" >"$3" && mv "$3" "$1"',
                "dsj-clock",
                path,
                format_offset(seconds),
                tmp,
            ],
            timeout=TIMEOUT,
        )

    def env(self, cluster: Cluster, node: str) -> dict[str, str]:
        """The environment a daemon on `node` needs so that the clock nemesis can move its
        clock; {} on a node with its own kernel. Creates the control file at offset 0 when
        missing, since libfaketime falls back to /etc/faketimerc without it."""
        if not self.uses_faketime(cluster, node):
            return {}
        path = self.control_file(cluster.node(node))
        cluster.remote(node).run(
            [
                "sh",
                "-c",
                '[ -s "$1" ] || { mkdir -p "$(dirname "$1")" && echo +0 >"$1"; }',
                "dsj-clock",
                path,
            ],
            timeout=TIMEOUT,
        )
        if self.shim:
            return {
                "LD_PRELOAD": self.library(cluster, node),
                clockshim.OFFSET_FILE_ENV: path,
            }
        return {
            "LD_PRELOAD": self.library(cluster, node),
            "FAKETIME_TIMESTAMP_FILE": path,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_DISABLE_SHM": "1",
        }


# -- ELF: does a binary's clock go through libc? ------------------------------------------------


def _elf_facts(path: str) -> tuple[bool, set[str]]:
    """(has a PT_INTERP program header, section names) of a 64- or 32-bit ELF file."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[:4] != b"\x7fELF":
            raise ValueError(f"{path} is not an ELF executable")
        is64 = ident[4] == 2
        end = "<" if ident[5] == 1 else ">"
        if is64:
            hdr = struct.unpack(end + "HHIQQQIHHHHHH", f.read(48))
        else:
            hdr = struct.unpack(end + "HHIIIIIHHHHHH", f.read(36))
        phoff, shoff = hdr[4], hdr[5]
        phentsize, phnum, shentsize, shnum, shstrndx = hdr[8], hdr[9], hdr[10], hdr[11], hdr[12]
        interp = False
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (ptype,) = struct.unpack(end + "I", f.read(4))
            interp = interp or ptype == 3  # PT_INTERP
        names: set[str] = set()
        if shoff and shnum and shstrndx < shnum:
            sections = []
            for i in range(shnum):
                f.seek(shoff + i * shentsize)
                raw = f.read(shentsize)
                if is64:
                    name, _t, _fl, _a, off, size = struct.unpack(end + "IIQQQQ", raw[:40])
                else:
                    name, _t, _fl, _a, off, size = struct.unpack(end + "IIIIII", raw[:24])
                sections.append((name, off, size))
            _n, stroff, strsize = sections[shstrndx]
            f.seek(stroff)
            table = f.read(min(strsize, 1 << 20))
            for name, _o, _s in sections:
                names.add(table[name : table.find(b"\0", name)].decode(errors="replace"))
    return interp, names


def bypasses_libc(path: str) -> str | None:
    """Why libfaketime cannot move the clock of the program at `path`, or None when it can.

    A statically linked binary has no dynamic loader, so LD_PRELOAD never applies; a Go
    binary (section .go.buildinfo or .note.go.buildid), even dynamically linked, reads the time
    through the vDSO itself and never calls libc's clock_gettime."""
    interp, sections = _elf_facts(path)
    if not interp:
        return f"{path} is statically linked (no dynamic loader for LD_PRELOAD)"
    if ".go.buildinfo" in sections or ".note.go.buildid" in sections:
        return f"{path} is a Go binary, which reads the clock without libc"
    return None
