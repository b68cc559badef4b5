"""dsjepsen's own clock shim (`clockshim.c`): the LD_PRELOAD library that moves a process's
wall clock for servers libfaketime cannot run.

libfaketime initialises itself with dlsym() and malloc(); a server whose allocator reads the
clock while it initialises (Debian's redis-server, with jemalloc built in) recurses into
libfaketime before it is ready and hangs at start. The shim gets the real time from the
clock_gettime system call and reads the offset file with open/read/close system calls, so it
needs neither. It reads the same control file, in the same format, that the clock nemesis
writes for libfaketime (`faketime.offset_path`, `faketime.format_offset`): one writer, one
format, two readers.

The source ships with the package; it is compiled on the controller with gcc, once per
version of the source, into the cache directory the docker node image uses
(`DSJEPSEN_CACHE_DIR`, default /var/cache/dsjepsen), and uploaded to nodes that cannot read
that file (containers).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

from dsjepsen.cluster.docker_cluster import cache_dir
from dsjepsen.errors import HarnessError

SOURCE = Path(__file__).with_name("clockshim.c")
#: the environment variable naming the offset file the shim reads
OFFSET_FILE_ENV = "DSJ_CLOCK_OFFSET_FILE"
#: the file name the shim has on a node it is uploaded to
NODE_NAME = "clockshim.so"
# gettimeofday() accepts a NULL tv at run time although glibc declares it nonnull: keep the check
CFLAGS = ("-O2", "-shared", "-fPIC", "-Wall", "-fno-delete-null-pointer-checks",
          "-Wno-nonnull-compare")  # fmt: skip
COMPILE_TIMEOUT = 120.0
_lock = threading.Lock()


def compiler() -> str | None:
    """The C compiler the shim is built with (gcc, or $CC), when this machine has one."""
    return shutil.which(os.environ.get("CC") or "gcc")


def built_path() -> Path:
    """Where the shim built from this version of the source lives in the cache."""
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    return cache_dir() / f"clockshim-{digest}.so"


def problem() -> str | None:
    """Why the shim cannot be had on this machine, or None: a missing source (a broken
    install) or, when it is not built yet, a missing compiler."""
    if not SOURCE.is_file():
        return f"the clock shim's source is missing ({SOURCE}): reinstall dsjepsen"
    if built_path().is_file() or compiler():
        return None
    return (
        "the clock shim needs gcc to be compiled on this machine (apt-get install gcc): "
        "libfaketime hangs this target's server"
    )


def build() -> Path:
    """The compiled shim, compiling it first when the cache has none for this source.
    HarnessError, one line, when it cannot be built."""
    with _lock:
        dest = built_path()
        if dest.is_file():
            return dest
        why = problem()
        cc = compiler()
        if why or cc is None:
            raise HarnessError(why or "the clock shim needs gcc (apt-get install gcc)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        # compile beside the destination and rename: another run building at the same time
        # never loads a half-written library
        tmp = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        argv = [cc, *CFLAGS, "-o", str(tmp), str(SOURCE)]
        try:
            res = subprocess.run(argv, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            tmp.unlink(missing_ok=True)
            raise HarnessError(f"compiling the clock shim took over {COMPILE_TIMEOUT:g}s") from e
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            first = (res.stderr.strip().splitlines() or ["no output"])[0]
            raise HarnessError(f"compiling the clock shim failed ({cc}): {first}")
        os.replace(tmp, dest)
        return dest


def self_test(timeout: float = 30.0) -> tuple[bool, str]:
    """(works, what was seen): the shim built (or found) and `date` run under it with an
    offset of one hour, read back; for `dsjepsen doctor`."""
    import tempfile
    import time

    try:
        lib = build()
    except HarnessError as e:
        return False, str(e)
    with tempfile.TemporaryDirectory(prefix="dsj-clockshim-") as d:
        path = Path(d) / "offset"
        path.write_text("+3600.000000\n")
        env = {**os.environ, "LD_PRELOAD": str(lib), OFFSET_FILE_ENV: str(path)}
        t0 = time.time()
        try:
            res = subprocess.run(["date", "+%s.%N"], env=env, capture_output=True, text=True,
                                 timeout=timeout, check=False)  # fmt: skip
            seen = float(res.stdout.strip()) - (t0 + time.time()) / 2
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            return False, f"date under {lib} did not answer: {e}"
    if abs(seen - 3600.0) > 5.0:
        return False, f"date under {lib} is off by {seen:+.3f}s, not +3600s"
    return True, f"{lib} (date under it: {seen:+.1f}s for an offset of +3600s)"
