"""Clusters of docker containers that dsjepsen makes itself: the node image, a network, the
containers, and removing them again.

For a user who has a docker engine but no root network namespaces (`dsjepsen docker up 3`),
and for the test suite. No registry is used: the node image is a minimal Debian root file
system built from Debian's packages (mmdebstrap, else debootstrap; python3 for raft-kv,
iproute2 and iptables for partitions, procps for process faults, fuse3 for disk faults),
cached as a tar file in
`/var/cache/dsjepsen` and loaded with `docker import`. Each cluster gets a user-defined bridge
network of its own, so the containers reach each other and the controller by address, and
NET_ADMIN, so the iptables partitions inside them are real. Every container runs `sleep
infinity` under docker's init, which reaps the processes that kill faults leave behind (a
zombie would still answer `kill -0`).

Names: cluster NAME has containers `NAME-n1`... and network `NAME-net`, all labelled
`dsjepsen.cluster=NAME`; removal goes by that label, so it needs no state file and also
cleans up after a crash half-way through `up`.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import stat
import tarfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dsjepsen.cluster.control.base import RemoteError, Result
from dsjepsen.cluster.control.local import run_argv
from dsjepsen.errors import ConfigError, HarnessError

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
#: fuse3 (fusermount3, libfuse3) for the disk faults' file system, which runs in the container
PACKAGES = ("python3", "iproute2", "iptables", "procps", "fuse3")
#: the image's tag and the cached tar's name carry a digest of the package list, so that an
#: image built from an older list is never taken for the current one
FLAVOUR = f"{SUITE}-{hashlib.sha256(','.join(PACKAGES).encode()).hexdigest()[:8]}"
IMAGE = f"dsjepsen-node:{FLAVOUR}"
LABEL = "dsjepsen.cluster"
DEFAULT_NAME = "dsj"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,23}$")
MAX_NODES = 9

log = logging.getLogger("dsjepsen.docker")


def cache_dir() -> Path:
    """Where the root file system tar is kept between runs (DSJEPSEN_CACHE_DIR moves it)."""
    return Path(os.environ.get("DSJEPSEN_CACHE_DIR", "/var/cache/dsjepsen"))


def rootfs_path() -> Path:
    return cache_dir() / f"node-rootfs-{FLAVOUR}.tar"


def docker_cmd(docker: str, *args: str, timeout: float = 120.0, check: bool = True) -> Result:
    """One docker CLI call; a failure is one line naming the docker command."""
    if shutil.which(docker) is None:
        raise ConfigError(f"{docker} CLI not found (install docker.io)")
    res = run_argv("docker", [docker, *args], timeout=timeout, check=False)
    if check and res.exit != 0:
        last = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise HarnessError(
            f"docker {' '.join(args[:2])} failed: {last[-1][:200] if last else res.exit}"
        )
    return res


@contextmanager
def _lock(what: str, where: Path | None = None) -> Iterator[None]:
    """Serialise image builds and imports between processes (parallel tests)."""
    where = where or cache_dir()
    where.mkdir(parents=True, exist_ok=True)
    with open(where / f".{what}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cache_entry_problem(path: Path) -> str | None:
    """Why `path` cannot be used as the cached root file system, or None when it can.

    A usable entry is a non-empty regular file that starts like a tar archive. Anything else
    at that name (a directory an older build renamed there, an empty file, a device, a file
    that is not a tar) is a broken cache entry: it is removed and the image built again."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not a tar file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "an empty file"
    if not tarfile.is_tarfile(path):
        return "not a tar archive"
    return None


def _remove_cache_entry(path: Path, why: str) -> None:
    """Remove a broken cache entry (one log line saying what and why)."""
    log.warning("node image cache: removing %s (%s); it will be built again", path, why)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _clear_broken(dest: Path) -> None:
    """Remove what a killed or broken build left beside `dest`: a broken `dest` itself, and
    its temporary files (`.part.tar`, the older `.part`, debootstrap's `.dir`)."""
    problem = _cache_entry_problem(dest)
    if problem is not None:
        _remove_cache_entry(dest, problem)
    for leftover in (_tmp_path(dest), dest.with_name(dest.name + ".part"), _dir_path(dest)):
        if leftover.exists() or leftover.is_symlink():
            _remove_cache_entry(leftover, "left by an interrupted build")


def _tmp_path(dest: Path) -> Path:
    # The name must end in .tar: mmdebstrap picks its output format from the target's name
    # and writes a directory for a name it does not know (--format=tar says it as well).
    return dest.with_name(dest.stem + ".part.tar")


def _dir_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".dir")


def cached_rootfs(dest: Path | None = None) -> Path | None:
    """The cached root file system tar when it is usable, else None."""
    dest = dest or rootfs_path()
    if dest.exists() and _cache_entry_problem(dest) is None:
        return dest
    return None


def build_rootfs(dest: Path | None = None, timeout: float = 1800.0) -> Path:
    """The node root file system as a tar (built once; a usable cached one is returned as is).

    mmdebstrap writes the tar directly; debootstrap needs a directory that is then packed.
    Both fetch only Debian's own packages. Written to a temporary name and renamed, so an
    interrupted build never leaves a truncated tar to be imported later; whatever a broken or
    interrupted build left at those names is removed first, with a log line."""
    dest = dest or rootfs_path()
    if cached_rootfs(dest):
        return dest
    with _lock("rootfs", dest.parent):
        if cached_rootfs(dest):
            return dest
        _clear_broken(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_path(dest)
        include = ",".join(PACKAGES)
        builder = next((b for b in ("mmdebstrap", "debootstrap") if shutil.which(b)), None)
        if not builder:
            raise ConfigError(
                "neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap)"
            )
        log.info(
            "building the node image's root file system from Debian's packages into %s "
            "(once; a few minutes)", dest,
        )  # fmt: skip
        started = time.monotonic()
        if builder == "mmdebstrap":
            argv = [
                "mmdebstrap", "--variant=minbase", "--format=tar", f"--include={include}",
                "--mode=root", SUITE, str(tmp), MIRROR,
            ]  # fmt: skip
            res = run_argv("build", argv, timeout=timeout, check=False)
        else:
            root = _dir_path(dest)
            argv = [
                "debootstrap",
                "--variant=minbase",
                f"--include={include}",
                SUITE,
                str(root),
                MIRROR,
            ]
            res = run_argv("build", argv, timeout=timeout, check=False)
            if res.exit == 0:
                res = run_argv(
                    "build",
                    ["tar", "-C", str(root), "-cf", str(tmp), "."],
                    timeout=600,
                    check=False,
                )
            shutil.rmtree(root, ignore_errors=True)
        problem = _cache_entry_problem(tmp) if res.exit == 0 else None
        if res.exit != 0 or problem is not None or not tmp.exists():
            _clear_broken(dest)
            last = (res.stderr.strip() or res.stdout.strip()).splitlines()
            why = (
                problem or "no output" if res.exit == 0 else (last[-1][:200] if last else res.exit)
            )
            raise HarnessError(f"building the node image failed ({argv[0]}: {why})")
        tmp.rename(dest)
        log.info(
            "node image root file system built in %.0f s: %s", time.monotonic() - started, dest
        )
    return dest


def image_present(image: str = IMAGE, docker: str = "docker") -> bool:
    return docker_cmd(docker, "image", "inspect", "--", image, check=False).exit == 0


def ensure_image(image: str = IMAGE, docker: str = "docker", rootfs: Path | None = None) -> str:
    """The node image, imported from the cached root file system (built first when the cache
    lacks it) when the engine lacks the image."""
    if image_present(image, docker):
        return image
    tar = build_rootfs(rootfs)
    with _lock("import", tar.parent):
        if not image_present(image, docker):
            log.info("importing %s into the docker engine as %s", tar, image)
            docker_cmd(
                docker, "import", "--change", 'CMD ["sleep", "infinity"]', str(tar), image,
                timeout=900,
            )  # fmt: skip
    return image


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"docker cluster name {name!r}: 1-24 lowercase letters, digits or '-', "
            "starting with a letter or digit"
        )
    return name


def container_names(name: str, count: int) -> list[str]:
    return [f"{name}-n{i}" for i in range(1, count + 1)]


def network_name(name: str) -> str:
    return f"{name}-net"


def up(
    name: str = DEFAULT_NAME,
    count: int = 3,
    image: str | None = None,
    docker: str = "docker",
    disk_faults: bool = False,
) -> list[str]:
    """Create the network and `count` running containers; returns the container names.
    An existing complete cluster of that name is returned as is; when `up` fails, what it made
    is removed again. `disk_faults`: the containers get what the disk faults' file system
    needs to mount inside them (`disk_fault_flags`), and nothing more without it."""
    check_name(name)
    if not 1 <= count <= MAX_NODES:
        raise ConfigError(f"docker cluster: node count {count}: must be 1-{MAX_NODES}")
    names = container_names(name, count)
    present = running(name, docker)
    if present == names:
        return names
    if present:
        raise ConfigError(
            f"docker cluster {name} exists with {len(present)} containers "
            f"({', '.join(present)}); remove it first: dsjepsen docker down --name {name}"
        )
    image = image or ensure_image(docker=docker)
    try:
        docker_cmd(
            docker, "network", "create", "--driver", "bridge", "--label", f"{LABEL}={name}",
            network_name(name),
        )  # fmt: skip
        for i, c in enumerate(names, 1):
            docker_cmd(
                docker, "run", "-d", "--init", "--name", c, "--hostname", f"n{i}",
                "--network", network_name(name), "--cap-add", "NET_ADMIN",
                *(disk_fault_flags() if disk_faults else []),
                "--label", f"{LABEL}={name}", image, "sleep", "infinity",
            )  # fmt: skip
    except BaseException:
        down(name, docker)
        raise
    return names


def disk_fault_flags() -> list[str]:
    """What a container needs for a FUSE mount of its own: the fuse device and CAP_SYS_ADMIN
    (mount(2)), and where AppArmor confines containers, no profile (docker's default one denies
    mount). Given only when a cluster is made for disk faults: SYS_ADMIN is a wide capability."""
    flags = ["--device", "/dev/fuse", "--cap-add", "SYS_ADMIN"]
    try:
        with open("/sys/module/apparmor/parameters/enabled") as fh:
            if fh.read().strip() == "Y":
                flags += ["--security-opt", "apparmor=unconfined"]
    except OSError:
        pass
    return flags


def _listed(docker: str, *args: str) -> list[str]:
    res = docker_cmd(docker, *args)
    return sorted(line.strip() for line in res.stdout.splitlines() if line.strip())


def containers(name: str, docker: str = "docker") -> list[str]:
    """Every container of the cluster, running or not."""
    return _listed(
        docker, "ps", "-a", "--filter", f"label={LABEL}={name}", "--format", "{{.Names}}"
    )


def running(name: str, docker: str = "docker") -> list[str]:
    return _listed(docker, "ps", "--filter", f"label={LABEL}={name}", "--format", "{{.Names}}")


def networks(name: str, docker: str = "docker") -> list[str]:
    return _listed(
        docker, "network", "ls", "--filter", f"label={LABEL}={name}", "--format", "{{.Name}}"
    )


def down(name: str = DEFAULT_NAME, docker: str = "docker") -> list[str]:
    """Remove the cluster's containers (killing what runs in them) and its network; returns
    what was removed. Removing nothing is fine."""
    check_name(name)
    removed: list[str] = []
    found = containers(name, docker)
    if found:
        docker_cmd(docker, "rm", "-f", "--", *found, timeout=300)
        removed += [f"container {c}" for c in found]
    for net in networks(name, docker):
        docker_cmd(docker, "network", "rm", "--", net)
        removed.append(f"network {net}")
    left = remains(name, docker)
    if left:
        raise HarnessError(f"docker cluster {name}: could not remove {', '.join(left)}")
    return removed


def remains(name: str, docker: str = "docker") -> list[str]:
    """What of the cluster is still there (nothing after `down`)."""
    return [f"container {c}" for c in containers(name, docker)] + [
        f"network {n}" for n in networks(name, docker)
    ]


def addresses(names: Sequence[str], docker: str = "docker") -> dict[str, str]:
    """Each container's address on its network."""
    out = {}
    for c in names:
        res = docker_cmd(
            docker, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            "--", c,
        )  # fmt: skip
        ips = res.stdout.split()
        if not ips:
            raise RemoteError(c, "", "container has no address on a docker network")
        out[c] = ips[0]
    return out
