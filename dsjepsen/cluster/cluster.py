"""Cluster: the opened set of nodes a test runs on, whichever backend reaches them."""

from __future__ import annotations

from dataclasses import dataclass, field

from dsjepsen.errors import ConfigError
from dsjepsen.cluster.control.base import Node, Remote


@dataclass
class Cluster:
    """Nodes in a fixed order plus one Remote per node.

    `kind` is "local", "ssh" or "docker"; `name` identifies a local namespace cluster (so that
    several can coexist, e.g. in parallel tests) and is informational for the others.
    """

    kind: str
    nodes: list[Node]
    remotes: dict[str, Remote]
    name: str = "default"
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigError(f"unknown node {name!r} (nodes: {', '.join(self.names)})")

    def remote(self, name: str) -> Remote:
        try:
            return self.remotes[name]
        except KeyError:
            raise ConfigError(f"unknown node {name!r} (nodes: {', '.join(self.names)})") from None

    def close(self) -> None:
        for r in self.remotes.values():
            r.close()
