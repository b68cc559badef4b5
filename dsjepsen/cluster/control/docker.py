"""The docker backend: a node is a running container, reached with `docker exec` / `docker cp`.

The docker CLI takes the argv as is (no shell in between), so hostile strings need no
quoting. What it does parse is options: every command built here puts `--` before the container
name, so no name is ever read as a docker option, and a container name docker itself could not
have created (it must start with a letter or digit) is refused when the remote is made, naming
the node. Local paths given to `docker cp` are made absolute, because docker reads a relative
path with a colon as CONTAINER:PATH and `-` as a tar stream on stdin.

Killing the local `docker exec` client does not stop the process inside the container (docker
keeps an exec session running without its client). So every command runs under a small
wrapper, `setsid -w sh -c WRAPPER PIDFILE ARGV...`, that puts it in a session of its own and
records the session's id; a command that times out is then killed, with its whole process
group, by a second `docker exec`. A daemon the command detached into a session of its own
(daemon.start_daemon) is not touched. The container needs `sh` and util-linux's `setsid`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Mapping, Sequence

from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteConfigError,
    RemoteError,
    RemoteTimeout,
    Result,
    env_assignments,
)
from dsjepsen.cluster.control.local import run_argv
from dsjepsen.errors import ConfigError

#: docker's own rule for container names (and IDs are hex): first a letter or digit
CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def validate_container(node: str, container: str) -> str:
    """The container name, or ConfigError (exit 254) naming the node.

    A name starting with `-` would be an option to docker wherever `--` is missing (a nodes
    file is configuration a user may have been handed); other characters docker never allows
    in a name could only select the wrong thing (a `:` splits `docker cp` arguments)."""
    if container.startswith("-"):
        raise ConfigError(
            f"node {node}: container name {container!r} starts with '-' "
            "(docker would read it as an option)"
        )
    if not CONTAINER_RE.match(container):
        raise ConfigError(
            f"node {node}: invalid container name {container!r} "
            "(docker names are letters, digits, '_', '.' and '-', starting with a letter or digit)"
        )
    return container


#: records its own pid (the new session's id, as `setsid` made it the leader) in $0, runs the
#: argv, removes the record and passes the exit status on
WRAPPER = 'echo $$ >"$0" || exit 125; "$@"; r=$?; rm -f -- "$0"; exit $r'
#: kills the process group recorded by WRAPPER
KILLER = 'p=$(cat -- "$0" 2>/dev/null) && kill -s KILL -- "-$p" 2>/dev/null; rm -f -- "$0"'


def wrapped(argv: Sequence[str], pidfile: str) -> list[str]:
    """argv in a session of its own whose id lands in pidfile (inside the container)."""
    return ["setsid", "-w", "sh", "-c", WRAPPER, pidfile, *argv]


def exec_argv(
    container: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    interactive: bool = False,
    docker: str = "docker",
) -> list[str]:
    """`docker exec [-i] [-e K=V]... [-w DIR] -- CONTAINER ARGV...`"""
    if not argv:
        raise RemoteError(container, [], "empty command")
    words = [docker, "exec"]
    if interactive:
        words.append("-i")
    for assignment in env_assignments(env):
        words += ["-e", assignment]
    if cwd:
        words += ["-w", cwd]
    return [*words, "--", container, *argv]


def cp_argv(src: str, dst: str, docker: str = "docker") -> list[str]:
    """`docker cp -- SRC DST` where one side is `CONTAINER:PATH` and the other a local path."""
    return [docker, "cp", "--", src, dst]


def inspect_argv(container: str, fmt: str, docker: str = "docker") -> list[str]:
    """`docker inspect -f FORMAT -- CONTAINER`."""
    return [docker, "inspect", "-f", fmt, "--", container]


def local_path(path: str) -> str:
    """An absolute local path: docker cp reads `a:b` as a container's file and `-` as stdin."""
    return os.path.abspath(path)


class DockerRemote(Remote):
    """One container; `container` defaults to the node's name, and is validated here (so every
    way of selecting nodes, --nodes, a nodes file or the API, gets the same check)."""

    def __init__(self, node: Node, container: str | None = None, docker: str = "docker"):
        self.node = node
        self.container = validate_container(node.name, container or node.name)
        self.docker = docker

    def run(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        if not argv:
            raise RemoteError(self.node.name, [], "empty command")
        pidfile = f"/tmp/dsj-exec-{secrets.token_hex(8)}.pid"
        cmd = exec_argv(
            self.container,
            wrapped(argv, pidfile),
            env,
            cwd,
            interactive=input is not None,
            docker=self.docker,
        )
        self._need_cli(argv)
        try:
            res = run_argv(
                self.node.name, cmd, shown=list(argv), timeout=timeout, check=False, input=input
            )
        except RemoteTimeout:
            self._kill(pidfile)
            raise
        self._classify(res, list(argv))
        if check and res.exit != 0:
            last = (res.stderr.strip() or res.stdout.strip()).splitlines()
            detail = f" ({last[-1][:200]})" if last else ""
            raise RemoteError(self.node.name, list(argv), f"exit {res.exit}{detail}", res)
        return res

    def _kill(self, pidfile: str) -> None:
        """Kill a timed-out command's process group inside the container (best effort: the
        timeout is what the caller hears about)."""
        argv = exec_argv(self.container, ["sh", "-c", KILLER, pidfile], docker=self.docker)
        try:
            run_argv(self.node.name, argv, timeout=15.0, check=False)
        except RemoteError:
            pass

    def put(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cp(local_path(local), f"{self.container}:{remote}", ["put", local, remote], timeout)

    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cp(f"{self.container}:{remote}", local_path(local), ["get", remote, local], timeout)

    def _cp(self, src: str, dst: str, shown: list[str], timeout: float) -> None:
        self._need_cli(shown)
        res = run_argv(
            self.node.name,
            cp_argv(src, dst, self.docker),
            shown=shown,
            timeout=timeout,
            check=False,
        )
        self._classify(res, shown)
        if res.exit != 0:
            raise RemoteError(
                self.node.name, shown, f"docker cp failed ({res.stderr.strip()[:200]})", res
            )

    def _need_cli(self, shown: Sequence[str]) -> None:
        if shutil.which(self.docker) is None:
            raise RemoteConfigError(self.node.name, list(shown), f"{self.docker} CLI not found")

    def _classify(self, res: Result, shown: list[str]) -> None:
        """docker's own failures (exit 125-127 with a daemon message) are not the command's."""
        first = res.stderr.lstrip().splitlines()[0] if res.stderr.strip() else ""
        if res.exit == 0 or not (
            first.startswith("Error response from daemon") or "Docker daemon" in first
        ):
            return
        if "No such container" in first:
            raise RemoteConfigError(
                self.node.name, "", f"container {self.container} does not exist"
            )
        if "is not running" in first:
            raise RemoteConfigError(
                self.node.name, "", f"container {self.container} is not running"
            )
        if "Cannot connect to the Docker daemon" in first:
            raise RemoteError(
                self.node.name, "", "docker engine is not answering (is dockerd running?)"
            )

    def __repr__(self) -> str:
        return f"DockerRemote({self.node.name!r}, container={self.container!r})"


def docker_engine_answers(docker: str = "docker", timeout: float = 10.0) -> str | None:
    """None when `docker info` answers, else the reason (for doctor and test skips)."""
    if shutil.which(docker) is None:
        return "docker CLI not installed"
    try:
        res = run_argv(
            "docker",
            [docker, "info", "--format", "{{.ServerVersion}}"],
            timeout=timeout,
            check=False,
        )
    except RemoteError as e:
        return str(e)
    if res.exit != 0:
        last = (res.stderr.strip() or res.stdout.strip()).splitlines()
        return f"docker engine not answering ({last[-1][:160] if last else f'exit {res.exit}'})"
    return None
