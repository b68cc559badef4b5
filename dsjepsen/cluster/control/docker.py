"""The docker backend: a node is a running container, reached with `docker exec` / `docker cp`.

The docker CLI takes the argv as is (no shell in between), so hostile strings need no
quoting. A timeout kills the local `docker exec` client; the process inside the container is
then reaped by docker when its exec session ends.
"""

from __future__ import annotations

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


def exec_argv(
    container: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    interactive: bool = False,
    docker: str = "docker",
) -> list[str]:
    """`docker exec [-i] [-e K=V]... [-w DIR] CONTAINER ARGV...`"""
    if not argv:
        raise RemoteError(container, [], "empty command")
    words = [docker, "exec"]
    if interactive:
        words.append("-i")
    for assignment in env_assignments(env):
        words += ["-e", assignment]
    if cwd:
        words += ["-w", cwd]
    return [*words, container, *argv]


def cp_argv(src: str, dst: str, docker: str = "docker") -> list[str]:
    """`docker cp SRC DST` where one side is `CONTAINER:PATH`."""
    return [docker, "cp", src, dst]


class DockerRemote(Remote):
    """One container; `container` defaults to the node's name."""

    def __init__(self, node: Node, container: str | None = None, docker: str = "docker"):
        self.node = node
        self.container = container or node.name
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
        self._cp(local, f"{self.container}:{remote}", ["put", local, remote], timeout)

    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._cp(f"{self.container}:{remote}", local, ["get", remote, local], timeout)

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
