"""The local backend: a node is a network namespace on this machine.

Namespaces share the host's file system and process table, so commands run through
`ip netns exec` with no shell in between, and put/get are plain file copies.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from dsjepsen.cluster.control.base import (
    DEFAULT_TIMEOUT,
    Node,
    Remote,
    RemoteError,
    RemoteTimeout,
    Result,
    env_assignments,
    exit_failure,
)


def run_argv(
    node: str,
    argv: Sequence[str],
    shown: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    input: str | None = None,
    cwd: str | None = None,
) -> Result:
    """Run argv on this machine in its own process group, so that a timeout kills the whole
    tree (a shell and its children), not just the first process.

    `shown` is the command as the user wrote it (errors name that, not our wrapper)."""
    shown = list(argv if shown is None else shown)
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            start_new_session=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as e:
        raise RemoteError(node, shown, f"cannot run ({e.strerror}: {e.filename})") from None
    except PermissionError as e:
        raise RemoteError(node, shown, f"cannot run ({e.strerror})") from None
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise RemoteTimeout(node, shown, f"timed out after {timeout:g}s") from None
    except BaseException:
        _kill_group(proc)
        raise
    result = Result(proc.returncode, out, err)
    if check and result.exit != 0:
        raise RemoteError(node, shown, exit_failure(result), result)
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # a grandchild that left our group still holds the pipes; stop waiting for it
        proc.kill()


def copy_path(src: str, dst: str) -> None:
    """Copy a file or a directory tree (into an existing or new path), like `cp -r`."""
    source = Path(src)
    target = Path(dst)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
    else:
        if target.is_dir():
            target = target / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


class LocalRemote(Remote):
    """Commands in network namespace `netns` on this machine (`ip netns exec`, no shell).

    With netns=None the command runs in the root namespace: handy for tests and for the
    controller itself, never used for nodes of a cluster."""

    def __init__(self, node: Node, netns: str | None):
        self.node = node
        self.netns = netns

    def wrap(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> list[str]:
        """The host argv: `ip netns exec NS env [-C DIR] K=V... ARGV`. The environment goes
        through env(1) rather than Popen(env=) so that e.g. LD_PRELOAD reaches the command
        and not `ip` itself."""
        if not argv:
            raise RemoteError(self.node.name, [], "empty command")
        inner = list(argv)
        if env or cwd:
            inner = ["env", *(["-C", cwd] if cwd else []), *env_assignments(env), *inner]
        if self.netns is None:
            return inner
        return ["ip", "netns", "exec", self.netns, *inner]

    def run(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        return run_argv(
            self.node.name,
            self.wrap(argv, env, cwd),
            shown=list(argv),
            timeout=timeout,
            check=check,
            input=input,
        )

    def put(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._copy(local, remote, "put")

    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._copy(remote, local, "get")

    def _copy(self, src: str, dst: str, verb: str) -> None:
        try:
            copy_path(src, dst)
        except OSError as e:
            raise RemoteError(self.node.name, [verb, src, dst], f"copy failed ({e})") from None

    def __repr__(self) -> str:
        return f"LocalRemote({self.node.name!r}, netns={self.netns!r})"
