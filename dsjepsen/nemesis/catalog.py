"""The fault catalog: every fault `--nemesis` accepts, gathered from the fault packages.

dsjepsen knows no fault family by name. Each package (a `FaultPackage` subclass registered in
the `dsjepsen.nemeses` entry-point group, built-in or from a pip-installed plugin) offers its
fault names; this module merges them into one catalog, validates `--nemesis`, builds the
composite nemesis of a run and asks the right package whether a completion shows its fault
took effect. Adding a fault family is therefore one module and one entry point, with no edit
here.

Faults of one package share an f (`start-partition` / `stop-partition` for every partition
shape), so schedule ops carry the fault name in `value["fault"]` and the composite dispatches
on that name first and on f second (for hand-written ops without a name).
"""

from __future__ import annotations

import inspect
import random
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dsjepsen import plugins
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.faults import FaultLook
from dsjepsen.nemesis.base import ON_THIS_KERNEL, FaultPackage, Nemesis, NodeFacts
from dsjepsen.nemesis.common import fault_name, not_done

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target

KIND = "nemeses"
#: the word that means "no faults" in --nemesis; no package may claim it
NONE = "none"


class _Catalog:
    """The packages of one load of the entry points, and the fault names they claim."""

    def __init__(self, found: Mapping[str, Any]) -> None:
        self.by_fault: dict[str, FaultPackage] = {}
        self.packages: list[tuple[str, FaultPackage]] = []
        self.broken: list[plugins.Broken] = []
        # built-in packages claim their names first, so a plugin can never take over `kill`;
        # then plugins, in entry-point name order: the later of two claimants is the broken one
        order = sorted(found.items(), key=lambda kv: (not _builtin(kv[1]), kv[0]))
        for entry, cls in order:
            package, error = _instantiate(cls)
            if package is None:
                self.broken.append(plugins.Broken(KIND, entry, _source(cls), error))
                continue
            error = self._conflict(package)
            if error:
                self.broken.append(plugins.Broken(KIND, entry, _source(cls), error))
                continue
            self.packages.append((entry, package))
            for fault in package.faults:
                self.by_fault[fault] = package

    def _conflict(self, package: FaultPackage) -> str:
        """Why this package cannot join the catalog ("" when it can)."""
        for fault in package.faults:
            if not isinstance(fault, str) or not fault or fault == NONE or "," in fault:
                return f"fault name {fault!r} is not usable in --nemesis"
            owner = self.by_fault.get(fault)
            if owner is not None:
                return f"fault {fault!r} is already offered by {_source(type(owner))}"
        return ""

    def claimed_by_broken(self, fault: str) -> plugins.Broken | None:
        """The broken package that offers `fault`, if a loaded-but-refused one does."""
        for b in self.broken:
            cls = plugins.available(KIND).get(b.name)
            if isinstance(cls, type) and fault in (getattr(cls, "faults", None) or {}):
                return b
        return None


def _builtin(cls: Any) -> bool:
    return str(getattr(cls, "__module__", "")).startswith("dsjepsen.")


def _source(cls: Any) -> str:
    if isinstance(cls, type):
        return f"{cls.__module__}:{cls.__qualname__}"
    return repr(cls)


def _instantiate(cls: Any) -> tuple[FaultPackage | None, str]:
    """(package, "") or (None, why it is not a usable fault package)."""
    if not (isinstance(cls, type) and issubclass(cls, FaultPackage)):
        return None, f"not a FaultPackage subclass: {cls!r}"
    try:
        package = cls()
    except Exception as e:  # noqa: BLE001 - a plugin that cannot be built is its own failure
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return None, f"{type(e).__name__}: {text}"
    if not isinstance(package.family, str) or not package.family:
        return None, "family must be a non-empty string"
    return package, ""


_lock = threading.Lock()
_cached: tuple[tuple[tuple[str, int], ...], _Catalog] | None = None


def _catalog() -> _Catalog:
    """The catalog of the entry points loaded now; rebuilt when they change (a test that
    installs a plugin calls `plugins.reset()`), otherwise shared, because `took_effect` is
    asked once per nemesis completion."""
    global _cached
    found = plugins.available(KIND)
    key = tuple((name, id(obj)) for name, obj in found.items())
    with _lock:
        if _cached is None or _cached[0] != key:
            _cached = (key, _Catalog(found))
        return _cached[1]


def fault_catalog() -> dict[str, FaultPackage]:
    """{fault name: the package that offers it}, built-in packages first."""
    return dict(_catalog().by_fault)


def descriptions() -> dict[str, str]:
    """{fault name: one sentence}, for `dsjepsen list nemeses`."""
    return {name: package.faults[name] for name, package in _catalog().by_fault.items()}


def broken() -> list[plugins.Broken]:
    """Fault packages that do not load or that the catalog refused (a fault name another
    package already offers), one line each via `Broken.line()`, for list and doctor."""
    refused = _catalog().broken
    return [*plugins.broken(KIND), *refused]


def _split(names: str | Sequence[str]) -> list[str]:
    items = [names] if isinstance(names, str) else list(names)
    return [part.strip() for item in items for part in str(item).split(",")]


def resolve(names: str | Sequence[str] | Mapping[str, FaultPackage]) -> dict[str, FaultPackage]:
    """{fault name: its package}, in order: the one validation of `--nemesis` (check_names'
    rules and errors). A mapping already resolved is returned as it is, so the schedule and
    the nemesis can take what the config resolved without validating it again."""
    if isinstance(names, Mapping):
        return dict(names)
    catalog = _catalog().by_fault
    return {name: catalog[name] for name in check_names(names)}


def fault_looks(packages: Iterable[FaultPackage] | None = None) -> dict[str, dict[str, Any]]:
    """{family: look as a dict} of these packages (default: every installed one), as a
    run's test.json records them for its report (faults.FaultLook)."""
    chosen = list(_catalog().by_fault.values()) if packages is None else list(packages)
    out: dict[str, dict[str, Any]] = {}
    for package in chosen:
        look = getattr(package, "look", None)
        if isinstance(look, FaultLook) and package.family not in out:
            out[package.family] = look.to_dict()
    return out


def check_names(names: str | Sequence[str]) -> list[str]:
    """The fault names asked for, in order, without "none" and without repeats.

    Accepts the raw option ("kill,pause") or a list (each item may hold commas). `none` means
    no faults. A list that names nothing at all ("", ",,,") is a ConfigError rather than a
    silent "no faults", because it is almost always a shell variable that came out empty.
    Unknown names are a ConfigError listing the known ones; so is a name offered only by a
    refused package, naming that package and why it does not load (the installation is
    misconfigured: exit 254, as for any broken plugin).
    """
    given = _split(names)
    if given and not any(given):
        raise ConfigError("--nemesis: empty fault list (use none for no faults)")
    catalog = _catalog()
    out: list[str] = []
    for name in given:
        if not name or name == NONE:
            continue
        if name not in catalog.by_fault:
            refused = catalog.claimed_by_broken(name)
            if refused is not None:
                raise ConfigError(
                    f"--nemesis {name}: the fault package is broken: {refused.line()}"
                )
            known = ", ".join([NONE, *catalog.by_fault])
            not_loading = [b.name for b in plugins.broken(KIND)]
            more = (
                f"; fault packages that do not load: {', '.join(not_loading)}"
                if not_loading
                else ""
            )
            raise ConfigError(f"--nemesis: unknown fault {name!r} (known: {known}){more}")
        if name not in out:
            out.append(name)
    return out


def _package_options(package: FaultPackage, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Exactly the options the package declares, defaulted when the run did not pass them."""
    given = options or {}
    return {o.name: given.get(o.name, o.default) for o in package.options}


class CompositeNemesis(Nemesis):
    """Several faults behind one nemesis; heals all of them, in their packages' heal order."""

    name = "composite"

    def __init__(
        self, members: dict[str, Nemesis], heal_order: Mapping[str, int] | None = None
    ) -> None:
        self.members = members
        self.heal_order = dict(heal_order or {})
        self.fs = tuple(dict.fromkeys(f for m in members.values() for f in m.fs))

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        name = fault_name(op, "")
        member = self.members.get(name)
        if member is None and not name:
            member = next((m for m in self.members.values() if op.f in m.fs), None)
        if member is None or op.f not in member.fs:
            known = ", ".join(self.members) or "none"
            return not_done(
                op, name or op.f, f"no fault here handles f={op.f!r} {name!r} (have: {known})"
            )
        return member.invoke(cluster, op)

    def heal(self, cluster: Cluster) -> None:
        """Heal every member, all of them even when one fails; then report the failures.

        Lower heal order first (the network before processes, so restarted nodes can rejoin);
        members of one order heal in the order they were asked for.
        """
        errors = []
        default = FaultPackage.heal_order
        ordered = sorted(self.members.items(), key=lambda kv: self.heal_order.get(kv[0], default))
        for _name, member in ordered:
            try:
                member.heal(cluster)
            except Exception as e:
                errors.append(str(e))
        if errors:
            raise HarnessError("healing failed: " + "; ".join(errors))


def build_nemesis(
    names: str | Sequence[str] | Mapping[str, FaultPackage],
    target: Target,
    rng: random.Random,
    options: Mapping[str, Any] | None = None,
    cluster: Cluster | None = None,
) -> CompositeNemesis:
    """The composite for `--nemesis a,b,...`.

    Each fault gets its own rng derived from `rng` in the order given, so that one seed gives
    one schedule of cuts and victims whatever else is installed. `options` are the run's
    option values by option name; each package receives the ones it declares. A fault its
    package says cannot work with this target on these nodes is refused here, before setup:
    with `cluster`, on what the nodes answer (`node_facts`); without, as if the nodes were on
    this machine's kernel.
    """
    wanted = resolve(names)
    nodes = node_facts(cluster) if cluster is not None and wanted else ON_THIS_KERNEL
    for name, package in wanted.items():
        why = unsupported(package, name, target, nodes)
        if why:
            raise ConfigError(f"--nemesis {name}: {why}")
    members: dict[str, Nemesis] = {}
    order: dict[str, int] = {}
    for name, package in wanted.items():
        member_rng = random.Random(rng.getrandbits(64))
        member = package.nemesis(name, target, member_rng, _package_options(package, options))
        start_f, stop_f = package.start_op(name)[0], package.stop_op(name)[0]
        if not isinstance(member, Nemesis) or not {start_f, stop_f} <= set(member.fs):
            raise HarnessError(
                f"--nemesis {name}: {_source(type(package))} built {member!r}, which is not a "
                f"Nemesis answering {start_f} and {stop_f}"
            )
        members[name] = member
        order[name] = package.heal_order
    return CompositeNemesis(members, order)


def node_facts(cluster: Cluster) -> NodeFacts:
    """The facts of an opened cluster: whether every node runs a kernel of its own, asked of
    each node (its kernel boot id against this machine's)."""
    from dsjepsen.cluster.faketime import shares_controller_kernel

    shared = [shares_controller_kernel(cluster.remote(n)) for n in cluster.names]
    return NodeFacts(own_kernels=not any(shared), cluster=cluster)


def unsupported(
    package: FaultPackage, name: str, target: Any, nodes: NodeFacts = ON_THIS_KERNEL
) -> str | None:
    """Why `package` refuses its fault `name` against `target` on `nodes`, or None.

    A package whose `unsupported` was written before the `nodes` parameter existed (two
    parameters) is asked without it, so that older plugins keep loading."""
    if _takes_nodes(package.unsupported):
        return package.unsupported(name, target, nodes=nodes)
    return package.unsupported(name, target)


def _takes_nodes(method: Any) -> bool:
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "nodes" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def took_effect(name: str, completion: Op) -> bool:
    """Whether `completion` is a start of fault `name` that really happened, as its package
    judges it (what the vacuous-run check counts; pass it as CheckContext.fault_took_effect).

    A completion of another fault, a stop, or a fault no package offers never counts.
    """
    package = _catalog().by_fault.get(name)
    if package is None or completion.f != package.start_op(name)[0]:
        return False
    value = completion.value
    if isinstance(value, dict) and value.get("fault", name) != name:
        return False
    return bool(package.took_effect(completion))


def check_cluster_size(names: Sequence[str], node_count: int) -> None:
    """ConfigError naming the first fault that cannot do anything on node_count nodes."""
    catalog = fault_catalog()
    for name in names:
        need = catalog[name].min_nodes(name)
        if node_count < need:
            raise ConfigError(
                f"--nemesis: {name} needs at least {need} nodes, the cluster has {node_count} "
                f"(use --node-count {need} or more)"
            )
