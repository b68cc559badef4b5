"""What this machine gives a process here: CPU cores and memory, as limits apply them.

Budgets are judged against these (how many local nodes a machine can host, how large a
history can be read), so that a container or a `ulimit` is judged by its own share, not the
host's, and a request that cannot fit is refused with the figures instead of being killed by
the kernel half-way.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def _meminfo(field: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _cgroup_memory_left() -> int | None:
    """memory.max less memory.current of this process's cgroup (v2), or None when unlimited."""
    with contextlib.suppress(OSError, ValueError):
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((_CGROUP / "memory.current").read_text().strip())
        return max(0, int(limit) - used)
    return None


def resources() -> tuple[int, int]:
    """(usable CPU cores, memory bytes): the CPU affinity mask and MemTotal, each lowered by a
    cgroup v2 limit (cpu.max, memory.max) when one is set."""
    cores = len(os.sched_getaffinity(0)) or 1
    memory = _meminfo("MemTotal") or 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        quota, period = (_CGROUP / "cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = max(1, min(cores, -(-int(quota) // int(period))))
    with contextlib.suppress(OSError, ValueError):
        limit = (_CGROUP / "memory.max").read_text().strip()
        if limit != "max":
            memory = min(memory, int(limit)) if memory else int(limit)
    return cores, memory


def memory_available() -> int | None:
    """Bytes this process can still take: the least of MemAvailable, what the cgroup's
    memory.max leaves, and the address-space and data limits (ulimit -v / -d) less what the
    process already uses. None when nothing can be read."""
    bounds = [b for b in (_meminfo("MemAvailable"), _cgroup_memory_left()) if b is not None]
    used = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    for limit in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft, _ = resource.getrlimit(limit)
        if soft != resource.RLIM_INFINITY:
            bounds.append(max(0, soft - used))
    return min(bounds) if bounds else None
