"""The files dsjepsen reads from the user and writes for the user, as a root harness must.

A root process that renames a temporary file over `--report /dev/null` replaces the device
for everyone on the machine; one that opens `--nodes-file /dev/zero` reads until memory runs
out. So every file option goes through here, once:

* `read_text` reads a user's input file only when it is a regular file (checked with stat
  before the open, and with fstat after a non-blocking open, so a FIFO never blocks), up to
  a size cap, as strict UTF-8.
* `check_output_file` / `check_output_dir` run before any work starts (before a node is
  touched): an output path must be what it is used as (a regular file, a directory) or not
  exist yet, under a directory that exists or can be made, and not on the kernel's pseudo file
  systems. Anything else is a ConfigError (one line, exit 254) naming the option.
* `write_whole` writes a file whole (a hidden temporary name beside it, fsync, rename), and
  renames only over a regular file, whatever happened to the path since it was checked. A
  write that fails (the disk is full) removes its temporary file and says which file system.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from dsjepsen.errors import ConfigError, HarnessError, InputError

#: the mode of files the harness writes into run directories (before the umask)
FILE_MODE = 0o640
#: the kernel's own file systems: nothing the harness makes may go there
PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
#: ... except the shared-memory tmpfs, which is an ordinary place for scratch files
PSEUDO_EXCEPTIONS = ("/dev/shm",)
#: read in pieces of this size (the size cap is checked as the file is read)
_CHUNK = 1 << 20

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def kind_of(mode: int) -> str:
    """What a file of this mode is, in words ("a character device")."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


# ---------------------------------------------------------------------------------------------
# Reading


def read_bytes(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytearray:
    """The bytes of a regular text file of at most `max_bytes`, or InputError naming it
    ("cannot read nodes file: a character device, not a regular file"): `read_blocks`,
    joined."""
    data = bytearray()
    for block in read_blocks(path, what, max_bytes):
        data += block
    return data


def read_blocks(
    path: str | os.PathLike[str], what: str, max_bytes: int, size: int = _CHUNK
) -> Iterator[bytes]:
    """The bytes of a regular text file of at most `max_bytes`, `size` at a time (the last
    block may be shorter), or InputError naming it, for readers that never hold a whole file.

    The type is checked with stat before the open, and again with fstat after a non-blocking
    open (the path may have changed in between); at most max_bytes + 1 bytes are ever read,
    and reading stops at the first NUL byte, which no text file holds (a sparse or binary file
    is refused after its first chunk, not after a gigabyte)."""
    source = str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", source) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"cannot read {what}: {kind_of(st.st_mode)}, not a regular file", source)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", source) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"cannot read {what}: {kind_of(st.st_mode)}, not a regular file", source
            )
        if st.st_size > max_bytes:
            raise InputError(too_big(what, st.st_size, max_bytes), source)
        done = lines = 0
        while done <= max_bytes:
            block = os.read(fd, min(size, max_bytes + 1 - done))
            if not block:
                break
            nul = block.find(b"\x00")
            if nul >= 0:
                line = lines + block.count(b"\n", 0, nul) + 1
                raise InputError(
                    f"cannot read {what}: a NUL byte at byte {done + nul}, line {line} (binary "
                    "data or a sparse file, not text)",
                    source,
                )
            done += len(block)
            if done > max_bytes:  # it grew while we read it
                raise InputError(too_big(what, done, max_bytes), source)
            lines += block.count(b"\n")
            yield block
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", source) from None
    finally:
        os.close(fd)


def too_big(what: str, size: int, max_bytes: int) -> str:
    return f"{what} of {_size(size)} is larger than the limit of {_size(max_bytes)}; refused"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int = 1 << 20) -> str:
    """A small text file a user gave (a nodes file, a campaign, a key): `read_bytes` decoded as
    strict UTF-8, with the line of a bad byte named."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputError(
            f"cannot read {what}: not UTF-8 text ({e.reason} at byte {e.start})", str(path), line
        ) from None


# ---------------------------------------------------------------------------------------------
# Checking output paths before any work


def _on_pseudo_fs(path: Path) -> str | None:
    """The pseudo file system `path` would be on (after resolving links), or None."""
    real = str(path.resolve())
    for root in PSEUDO_ROOTS:
        if real == root or real.startswith(root + "/"):
            if any(real == e or real.startswith(e + "/") for e in PSEUDO_EXCEPTIONS):
                return None
            return root
    return None


def _check_parents(path: Path, option: str) -> None:
    """The nearest existing ancestor of `path` must be a directory (a path under a regular
    file, `/etc/passwd/x`, can never be made), on a real file system."""
    parent = path.parent
    while True:
        try:
            st = parent.stat()
        except (FileNotFoundError, NotADirectoryError):
            if parent == parent.parent:
                break
            parent = parent.parent
            continue
        except OSError as e:
            raise ConfigError(f"{option} {path}: cannot reach {parent}: {e.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise ConfigError(
                f"{option} {path}: {parent} is {kind_of(st.st_mode)}, not a directory"
            )
        break
    pseudo = _on_pseudo_fs(path)
    if pseudo is not None:
        raise ConfigError(f"{option} {path}: under {pseudo}, the kernel's own file system")


def _nonempty(path: str | os.PathLike[str] | None, option: str) -> Path:
    if path is None or not str(path).strip():
        raise ConfigError(f"{option}: empty path")
    if "\x00" in str(path):
        raise ConfigError(f"{option}: a path cannot contain a NUL character")
    return Path(path)


def check_output_file(path: str | os.PathLike[str] | None, option: str) -> Path:
    """`path` may be written as a file: a regular file (or a link to one) or nothing yet,
    under a directory. ConfigError (one line naming `option`) otherwise."""
    p = _nonempty(path, option)
    try:
        st = p.stat()  # follows a link: what would be replaced is what it points to
    except (FileNotFoundError, NotADirectoryError):
        if p.is_symlink():
            raise ConfigError(f"{option} {p}: a dangling symbolic link") from None
        st = None
    except OSError as e:
        raise ConfigError(f"{option} {p}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = kind_of(st.st_mode)
        hint = " (give a file name inside it)" if stat.S_ISDIR(st.st_mode) else ""
        raise ConfigError(f"{option} {p}: {what}, not a regular file{hint}")
    _check_parents(p, option)
    return p


def check_output_dir(path: str | os.PathLike[str] | None, option: str) -> Path:
    """`path` may hold files the harness makes: a directory (or a link to one) or nothing yet,
    under a directory. ConfigError (one line naming `option`) otherwise."""
    p = _nonempty(path, option)
    try:
        st = p.stat()
    except (FileNotFoundError, NotADirectoryError):
        if p.is_symlink():
            raise ConfigError(f"{option} {p}: a dangling symbolic link") from None
        st = None
    except OSError as e:
        raise ConfigError(f"{option} {p}: {e.strerror}") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{option} {p}: {kind_of(st.st_mode)}, not a directory")
    _check_parents(p, option)
    return p


# ---------------------------------------------------------------------------------------------
# Writing


def _target(path: Path) -> Path:
    """Where a write of `path` lands: through a link to the file it names."""
    return path.resolve() if path.is_symlink() else path


def write_whole(path: str | os.PathLike[str], data: str | bytes, mode: int = 0o644) -> Path:
    """Write `data` to `path` whole: a hidden temporary file beside it, fsynced, then renamed
    over it, so a reader sees the old file or the new one, never half of one. Never renames
    over anything but a regular file; a failed write (a full disk) removes its temporary file
    and is one HarnessError line naming the file system. Returns the path written."""
    target = _target(Path(path))
    try:
        st = target.lstat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise HarnessError(f"{target}: {kind_of(st.st_mode)}, not a regular file; not replaced")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # a lone surrogate (JSON's "\ud800" in a key) cannot be UTF-8: written as its escape
    payload = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(target, e) from None
    return target


def write_error(path: Path, e: OSError) -> HarnessError:
    """One line for a failed write, naming the file system when it is full."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return HarnessError(f"{path}: no space left on {mount_point(path)} ({e.strerror})")
    return HarnessError(f"{path}: cannot write: {e.strerror}")


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the file system that holds `path` (or its nearest ancestor)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)
