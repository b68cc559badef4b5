"""Cluster: the opened set of nodes a test runs on, whichever backend reaches them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.cluster.control.base import Node, Remote
from dsjepsen.errors import ConfigError

log = logging.getLogger("dsjepsen.cluster")


@dataclass
class Cluster:
    """Nodes in a fixed order plus one Remote per node.

    `kind` is the name of the backend that opened it ("local", "ssh", "docker", a plugin's;
    "mixed" for a nodes file naming several); `name` identifies a local namespace cluster (so that
    several can coexist, e.g. in parallel tests) and is informational for the others.

    What differs between kinds is said here as facts, so nothing above this package asks which
    kind a cluster is: `shares_controller_files` (the nodes see the controller's own files, so
    a target can run from the installed package instead of uploading it), `heal_leftovers()`
    (undo whatever faults a crashed run may have left, beyond what the fault packages know),
    and the lifetime: used as a context manager, a cluster made on demand for one test
    (`created_here`) is removed again on exit unless `keep` is set.
    """

    kind: str
    nodes: list[Node]
    remotes: dict[str, Remote]
    name: str = "default"
    meta: dict[str, object] = field(default_factory=dict)
    shares_controller_files: bool = False
    created_here: bool = False
    keep: bool = False
    #: the backend's own heal of leftovers (local: reset each namespace's firewall, qdiscs and
    #: stopped processes; listed nodes: the DSJ-* chains, netem qdiscs, clock offsets and
    #: stopped daemons), called with stop_processes; None when it has none beyond the fault
    #: packages' heals
    healer: Callable[..., Any] | None = None
    #: removes a cluster made on demand
    remover: Callable[[], Any] | None = None

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

    def heal_leftovers(self, stop_processes: bool = False) -> Any:
        """Undo every fault the backend knows how to find (None when it knows none); with
        stop_processes also stop the processes a crashed run left (never in a run's own heal,
        which must keep its target running)."""
        return self.healer(stop_processes=stop_processes) if self.healer is not None else None

    def close(self) -> None:
        for r in self.remotes.values():
            r.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        """Close every connection; remove the cluster if this process made it for one test
        (a cluster brought up beforehand stays for the next)."""
        self.close()
        if self.created_here and not self.keep and self.remover is not None:
            self.remover()
            log.info("removed the local cluster %s created for this run", self.name)
