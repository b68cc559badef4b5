"""The Nemesis contract.

A nemesis performs one fault op and returns a completion that records what was really done
(which nodes were cut from which, which process got which signal), because the report and the
root-cause analysis are built from that record. `heal` must be idempotent and safe after a
crash of the harness, so that every run can start by healing and end by healing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dsjepsen.harness.cluster import Cluster
    from dsjepsen.history import Op


class Nemesis(ABC):
    name: str = "nemesis"
    #: the f values this nemesis answers, e.g. ("start-partition", "stop-partition")
    fs: tuple[str, ...] = ()

    @abstractmethod
    def invoke(self, cluster: Cluster, op: Op) -> Op:
        """Perform the fault op and return its completion describing what was done."""

    @abstractmethod
    def heal(self, cluster: Cluster) -> None:
        """Undo every fault of this kind on every node. Idempotent."""
