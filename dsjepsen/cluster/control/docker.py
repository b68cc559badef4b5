"""The docker backend: a node is a running container, reached with `docker exec` / `docker cp`.

The docker CLI takes the argv as is (no shell in between), so hostile strings need no
quoting. What it does parse is options: every command built here puts `--` before the container
name, so no name is ever read as a docker option, and a container name docker itself could not
have created (it must start with a letter or digit) is refused when the remote is made, naming
the node. Local paths given to `docker cp` are made absolute, because docker reads a relative
path with a colon as CONTAINER:PATH and `-` as a tar stream on stdin.

A timeout kills the local `docker exec` client; the process inside the container is then
reaped by docker when its exec session ends.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence

from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteConfigError,
    RemoteError,
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
        cmd = exec_argv(
            self.container, argv, env, cwd, interactive=input is not None, docker=self.docker
        )
        self._need_cli(argv)
        res = run_argv(
            self.node.name, cmd, shown=list(argv), timeout=timeout, check=False, input=input
        )
        self._classify(res, list(argv))
        if check and res.exit != 0:
            last = (res.stderr.strip() or res.stdout.strip()).splitlines()
            detail = f" ({last[-1][:200]})" if last else ""
            raise RemoteError(self.node.name, list(argv), f"exit {res.exit}{detail}", res)
        return res

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
