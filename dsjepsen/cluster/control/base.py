"""The Remote contract: the only way any other part of dsjepsen touches a node.

Targets, nemeses and the runner speak to nodes through `Remote` alone, so the same test runs
unchanged on local network namespaces, over SSH, or through docker exec. Commands are argument
lists, never shell strings: each backend quotes them for its own transport.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from dsjepsen.errors import EXIT_BAD_CONFIG, ConfigError, HarnessError

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Node:
    """A node of the cluster under test.

    `address` is what other nodes and the controller use to reach it (an IP of a namespace the
    harness created, or a real machine's host name); `workdir` holds its data and logs.
    """

    name: str
    address: str
    workdir: str
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    exit: int
    stdout: str
    stderr: str


class RemoteError(HarnessError):
    """A remote command failed; names the node and the command."""

    def __init__(
        self, node: str, cmd: Sequence[str] | str, message: str, result: Result | None = None
    ):
        self.node = node
        self.cmd = cmd
        self.result = result
        shown = cmd if isinstance(cmd, str) else " ".join(cmd)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        super().__init__(f"node {node}: {message}: {shown}" if shown else f"node {node}: {message}")


class RemoteTimeout(RemoteError):
    """A remote command did not finish within its timeout."""


class RemoteConfigError(RemoteError):
    """The node cannot be used as configured (authentication refused, unknown host key, no
    such container): the user must fix the configuration, so it exits 254 like ConfigError."""

    exit_code = EXIT_BAD_CONFIG


def exit_failure(result: Result) -> str:
    """How a command's non-zero exit is told: its status and the last line it printed, which
    usually says why."""
    last = (result.stderr.strip() or result.stdout.strip()).splitlines()
    detail = f" ({last[-1][:200]})" if last else ""
    return f"exit {result.exit}{detail}"


def env_assignments(env: Mapping[str, str] | None) -> list[str]:
    """`NAME=value` words for `env(1)`; names are checked so that a value can never be
    mistaken for an option or a command."""
    words = []
    for key, value in (env or {}).items():
        if (
            not key
            or not (key[0].isalpha() or key[0] == "_")
            or not all(c.isalnum() or c == "_" for c in key)
        ):
            raise ConfigError(f"invalid environment variable name {key!r}")
        words.append(f"{key}={value}")
    return words


class Remote(ABC):
    """One node's command channel. Every call has a timeout; every argument is quoted."""

    node: Node

    @abstractmethod
    def run(
        self,
        argv: Sequence[str],
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Result:
        """Run argv on the node. check=True raises RemoteError on a non-zero exit;
        RemoteTimeout is raised when the timeout passes (whatever check says)."""

    @abstractmethod
    def put(self, local: str, remote: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Copy a local file or directory to the node."""

    @abstractmethod
    def get(self, remote: str, local: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Copy a file from the node to the controller."""

    def close(self) -> None:  # noqa: B027 - backends without connections need nothing
        """Release any connection held for this node."""
