"""What `dsjepsen test` can run: targets, workloads and nemeses, by name.

Implementations are named as lazily imported "module:Class" strings, so the CLI (and
`dsjepsen list`) keeps working when one piece is missing or broken: only a test that asks for it
fails, with one line saying what could not be loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dsjepsen.errors import ConfigError, HarnessError


def load(path: str) -> Any:
    """Import "package.module:Attr" and return the attribute; HarnessError when impossible."""
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise HarnessError(f"cannot import {module_name}: {e}") from e
    try:
        return getattr(module, attr) if attr else module
    except AttributeError:
        raise HarnessError(f"{module_name} has no {attr}") from None


@dataclass(frozen=True)
class TargetSpec:
    """A target by name: where its class lives, what it accepts, which workloads fit it."""

    name: str
    path: str
    description: str
    default_workload: str = "register"
    workloads: tuple[str, ...] = ("register",)
    #: the target's own list of bug switches ("module:ATTR", a name -> description dict), which
    #: lives in a module that imports nothing heavy so `dsjepsen list` stays fast
    bugs_source: str | None = None
    supports_serializable_reads: bool = False
    #: TestConfig fields passed to the constructor, as (config field, keyword) pairs
    config_kwargs: tuple[tuple[str, str], ...] = ()
    #: "module:function" called with those keywords to validate them (raises ConfigError)
    options_check: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def bugs(self) -> tuple[str, ...]:
        """The bug switches this target knows, asked of the target's own code."""
        return tuple(load(self.bugs_source)) if self.bugs_source else ()

    def validate_options(self, *, bugs: Sequence[str], serializable_reads: bool) -> None:
        if bugs:
            known = self.bugs()
            if not known:
                raise ConfigError(f"--bug: target {self.name} has no bug switches")
            for b in bugs:
                if b not in known:
                    raise ConfigError(
                        f"--bug: unknown bug {b!r} for target {self.name} "
                        f"(known: {', '.join(known)})"
                    )
        if serializable_reads and not self.supports_serializable_reads:
            raise ConfigError(f"--serializable-reads: not an option of target {self.name}")

    def config_options(self, config: Any) -> dict[str, Any]:
        """The constructor keywords taken from a TestConfig (unset ones left out)."""
        values = {kw: getattr(config, f, None) for f, kw in self.config_kwargs}
        return {kw: v for kw, v in values.items() if v is not None}

    def build(
        self, *, bugs: Sequence[str] = (), serializable_reads: bool = False, config: Any = None
    ) -> Any:
        cls = load(self.path)
        kwargs: dict[str, Any] = self.config_options(config) if config is not None else {}
        if self.bugs_source:
            kwargs["bugs"] = tuple(bugs)
        if self.supports_serializable_reads:
            kwargs["serializable_reads"] = serializable_reads
        return cls(**kwargs)


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    path: str
    description: str


TARGETS: dict[str, TargetSpec] = {
    "raft-kv": TargetSpec(
        name="raft-kv",
        path="dsjepsen.targets.raft_kv.target:RaftKvTarget",
        description="the reference Raft key-value store shipped with dsjepsen (HTTP contract, "
        "switchable bugs)",
        bugs_source="dsjepsen.targets.raft_kv.bugs:BUGS",
    ),
    "etcd": TargetSpec(
        name="etcd",
        path="dsjepsen.targets.etcd:EtcdTarget",
        description="etcd (Debian's etcd-server) through its v3 JSON gateway; "
        "--serializable-reads for local reads",
        supports_serializable_reads=True,
    ),
    "http-kv": TargetSpec(
        name="http-kv",
        path="dsjepsen.targets.http_kv:HttpKvTarget",
        description="your own server implementing docs/http-kv-contract.md, started on every "
        "node from --server-cmd (placeholders {node} {address} {port} {peers} {data_dir} ...)",
        config_kwargs=(("server_cmd", "server_cmd"), ("server_port", "port")),
        options_check="dsjepsen.targets.http_kv:check_options",
    ),
}

WORKLOADS: dict[str, WorkloadSpec] = {
    "register": WorkloadSpec(
        name="register",
        path="dsjepsen.workloads.register:RegisterWorkload",
        description="read / write / cas on independent integer registers, checked for "
        "linearizability per key",
    ),
}


def target_spec(name: str) -> TargetSpec:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(
            f"--target: unknown target {name!r} (known: {', '.join(TARGETS)})"
        ) from None


def workload_spec(name: str) -> WorkloadSpec:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ConfigError(
            f"--workload: unknown workload {name!r} (known: {', '.join(WORKLOADS)})"
        ) from None


def nemesis_catalog() -> dict[str, str]:
    """name -> one-line description, from dsjepsen.nemesis.catalog."""
    try:
        catalog = importlib.import_module("dsjepsen.nemesis.catalog")
    except ImportError as e:
        raise HarnessError(f"the nemesis catalog cannot be loaded: {e}") from e
    return dict(catalog.NEMESES)


def validate_nemeses(names: Sequence[str]) -> None:
    if not names:
        return
    known = nemesis_catalog()
    for n in names:
        if n not in known:
            raise ConfigError(f"--nemesis: unknown fault {n!r} (known: none, {', '.join(known)})")
