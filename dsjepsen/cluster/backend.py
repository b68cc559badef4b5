"""Backends: how the nodes of a cluster are reached. The sixth extension kind
(`dsjepsen.backends`), built in as `local`, `ssh` and `docker`, registered in pyproject.toml
exactly as a third party's would be.

A backend opens nodes as `Remote`s and says, as facts, what its nodes share with the
controller, so that faults and targets ask instead of testing a backend's name:

- `shares_kernel`: the nodes run on this machine's kernel (namespaces, containers): clock
  faults act per process through libfaketime, and the kernel's modules are this machine's;
- `shares_files`: the nodes see the controller's files, so a target can run from the
  installed package instead of uploading it.

Two shapes of backend exist. A backend that *lists* nodes (`lists_nodes`: ssh, docker, a
plugin's `kubectl exec` or `nsenter` backend) is given them by `--nodes` / `--nodes-file`, one
entry per node, and opens one node at a time (`open_node`); node selection (`cluster/nodes.py`)
does the parsing, the checks and the assembly for all of them alike. A backend that makes its
own cluster (`local`: namespaces it creates on demand) opens the whole cluster from its own
options (`open_cluster`).

A backend's own options (`--ssh-user`, `--node-count`, ...) are argparse arguments it adds to
the "nodes" group of every command that takes node options (`add_arguments`), read and checked
when the backend is made from the parsed options (`__init__`), before any node is touched.
They configure how to reach machines rather than what to test, so they are not recorded in
test.json and never reach a test's name.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from dsjepsen import plugins
from dsjepsen.errors import ConfigError

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Remote

#: where a listed node keeps its data and logs unless its nodes file says otherwise
REMOTE_WORKDIR = "/var/lib/dsjepsen"


class NodeSettings(ABC):
    """A node's settings as configured: the table of a TOML nodes file (type-checked; errors
    name the file, the node's line and the key), or the parts of a plain entry (`user`,
    `port` of `[user@]host[:port]`)."""

    @abstractmethod
    def get(self, key: str, kinds: type | tuple[type, ...], default: Any) -> Any:
        """The setting `key`, of one of these types, else `default`."""

    @abstractmethod
    def invalid(self, key: str, message: str) -> NoReturn:
        """Raise the configuration error for a setting that has the right type but cannot work
        (`port: must be 1-65535, not 0`), naming where it was given."""


@dataclass(frozen=True)
class NodeSpec:
    """One listed node as configured, before any connection is made: its name, its backend,
    the host (or container, pod, namespace) it is reached at, its working directory, and the
    backend's own settings for it (an SSH login, a container name)."""

    name: str
    backend: str
    host: str
    workdir: str
    settings: Mapping[str, Any] = field(default_factory=dict)


class Backend:
    """How nodes are reached. Subclass it in one file, register the class in the
    `dsjepsen.backends` entry-point group, and `--backend NAME` selects it."""

    name: ClassVar[str] = "backend"
    description: ClassVar[str] = ""
    #: the nodes run on this machine's kernel
    shares_kernel: ClassVar[bool] = False
    #: the nodes see the controller's files
    shares_files: ClassVar[bool] = False
    #: its nodes are named by --nodes / --nodes-file; False: it makes its own cluster
    lists_nodes: ClassVar[bool] = True
    #: what one entry of --nodes (one line of a plain nodes file) is, for help and errors
    entry: ClassVar[str] = "node name"
    #: the word of `--nodes X1,X2,...` in messages
    metavar: ClassVar[str] = "NODE"
    #: an entry may carry a login and a port (`[user@]host[:port]`); else it is a bare name
    takes_login: ClassVar[bool] = False
    #: per-node keys of a TOML nodes file this backend reads, beyond host, workdir, backend
    node_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Add this backend's own options to the node options group (none by default)."""

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        """Read and check this backend's options (ConfigError naming the option); None: the
        defaults, for use from Python."""
        self.args = args if args is not None else argparse.Namespace()

    # -- listed nodes ---------------------------------------------------------------------------

    def default_port(self) -> int | None:
        """The port an entry without one is reached at, for backends that take a login (two
        entries naming one host at two ports are two nodes)."""
        return None

    def node_spec(self, name: str, host: str, settings: NodeSettings, workdir: str) -> NodeSpec:
        """The spec of one listed node from its entry or its nodes-file table; raise
        InputError / ConfigError for a setting that cannot work, before any node is touched."""
        return NodeSpec(name=name, backend=self.name, host=host, workdir=workdir)

    def open_node(self, spec: NodeSpec) -> Remote:
        """The Remote of one listed node (its `node` carries the address others reach it at).
        Connections may open lazily: the node selection runs `true` on every node next."""
        raise NotImplementedError(f"backend {self.name} lists no nodes")

    # -- a cluster of its own -------------------------------------------------------------------

    def open_cluster(self, create: bool, node_cost: Any = None) -> Cluster:
        """The whole cluster, for a backend that makes its own (create: make it when it does
        not exist, and mark it `created_here`); `node_cost`, what one node of the target
        costs, sizes its capacity estimate (None: the backend's default)."""
        raise NotImplementedError(f"backend {self.name} makes no cluster of its own")

    def planned_node_count(self) -> int:
        """How many nodes open_cluster will give, known before anything is made."""
        raise NotImplementedError(f"backend {self.name} makes no cluster of its own")

    def heal_cluster(self, stop_processes: bool) -> Any:
        """`dsjepsen cluster heal` of a cluster of its own, also a damaged one: undo every
        fault dsjepsen left and, with stop_processes, stop whatever a crashed run left."""
        raise NotImplementedError(f"backend {self.name} makes no cluster of its own")

    def describe_cluster(self) -> str:
        """Which cluster of its own the options select, for people ("cluster default")."""
        return f"{self.name} cluster"

    # -- this machine ---------------------------------------------------------------------------

    @classmethod
    def machine_problems(cls) -> list[tuple[str, str | None, str]]:
        """What this machine needs for the backend, tried: (what, None when it works else why
        not, detail when it works), for `dsjepsen doctor`. Nothing by default."""
        return []


def backend_class(name: str) -> type[Backend]:
    """The registered backend `name`; ConfigError (exit 254) listing the known ones."""
    cls = plugins.get("backends", name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"--backend {name}: {cls!r} is not a dsjepsen Backend")
    return cls


def backend_classes() -> dict[str, type[Backend]]:
    """Every backend that loads, by name (a broken plugin is listed by `dsjepsen list`)."""
    return {
        name: cls
        for name, cls in plugins.available("backends").items()
        if isinstance(cls, type) and issubclass(cls, Backend)
    }
