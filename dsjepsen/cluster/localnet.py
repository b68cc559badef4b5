"""The embedded default cluster: one Linux network namespace per node on a private bridge.

Each cluster has a short name; every namespace, link, bridge and root iptables chain it makes
is named `dsj-<name>-...`, and its metadata lives in a state file, so that `open_cluster`,
`heal` and `down` work from a fresh process, including after a crashed run. Nodes only get
addresses inside the cluster's own /24 (from 10.213.0.0/16 unless --subnet says otherwise) and
no default route: nothing they do can reach beyond the bridge.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import string
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from dsjepsen import machine
from dsjepsen.cluster import faketime, faultmount
from dsjepsen.cluster.backend import Backend
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node, RemoteError, Result
from dsjepsen.cluster.control.local import LocalRemote, run_argv
from dsjepsen.errors import ConfigError, HarnessError

PREFIX = "dsj"
DEFAULT_NAME = "default"
#: Linux interface names hold 15 characters: "dsj-" + name + "-" + up to 3 digits
NAME_MAX = 7
NAME_RE = re.compile(r"^[a-z0-9]{1,7}$")
POOL = ipaddress.ip_network("10.213.0.0/16")
MAX_NODES = 200
DEFAULT_NODE_COUNT = 5
GIB = 1 << 30
MIB = 1 << 20
#: the capacity rule of max_node_count (see its docstring for where the figures come from)
NODES_PER_CORE = 8
MEMORY_PER_NODE = 128 * MIB
CONTROLLER_RESERVE = 1 * GIB
#: node n<i> gets host number FIRST_NODE_HOST + i - 1 of the subnet; the bridge gets host 1
FIRST_NODE_HOST = 11
HOST = "controller"
TABLES = ("filter", "nat", "mangle", "raw")


def state_root() -> Path:
    """Where cluster state and node workdirs live (DSJEPSEN_STATE_DIR overrides it)."""
    return Path(os.environ.get("DSJEPSEN_STATE_DIR", "/var/lib/dsjepsen")) / "clusters"


def netns_name(name: str, i: int) -> str:
    return f"{PREFIX}-{name}-n{i}"


def bridge_name(name: str) -> str:
    return f"{PREFIX}-{name}-br"


def veth_name(name: str, i: int) -> str:
    return f"{PREFIX}-{name}-{i}"


def chain_name(name: str) -> str:
    return f"{PREFIX}-{name}"


@dataclass(frozen=True)
class NodeState:
    name: str
    netns: str
    address: str
    veth: str
    workdir: str


@dataclass(frozen=True)
class ClusterState:
    """What `up` made; written to <state_root>/<name>/cluster.json."""

    name: str
    subnet: str
    bridge: str
    bridge_address: str
    chain: str
    nodes: list[NodeState]
    created: str

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        raw = json.loads(text)
        raw["nodes"] = [NodeState(**n) for n in raw["nodes"]]
        return cls(**raw)


# --------------------------------------------------------------------------- validation


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"invalid cluster name {name!r}: use 1 to 7 lowercase letters or digits "
            "(it goes into 15-character interface names)"
        )
    return name


def preflight() -> None:
    """Fail early, with one line, when this machine cannot make namespaces at all."""
    if not has_net_admin():
        raise ConfigError(
            "the local cluster needs root (CAP_NET_ADMIN) to create network namespaces; "
            "run as root or use --nodes/--docker"
        )
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            raise ConfigError(f"{tool} not found: install {package} (see `dsjepsen doctor`)")


def unsupported_reason() -> str | None:
    """Why local clusters cannot run on this machine, or None when they can (test skips)."""
    if not has_net_admin():
        return "needs root (CAP_NET_ADMIN) for network namespaces"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        list_netns()
    except (RemoteError, HarnessError) as e:
        return f"`ip netns` does not work here: {e}"
    return None


def machine_resources() -> tuple[int, int]:
    """(usable CPU cores, memory bytes) of this machine as a process here sees them."""
    return machine.resources()


@dataclass(frozen=True)
class NodeCost:
    """What one node of a target costs this machine, for the capacity estimate: resident
    memory to set aside for it, and how many such nodes one core keeps up with at the load
    the target's usual tests put on it. `what` names the node in the refusal."""

    memory: int = MEMORY_PER_NODE
    per_core: int = NODES_PER_CORE
    what: str = "raft-kv node"


#: the default target's node (raft-kv), which the figures of max_node_count describe
DEFAULT_COST = NodeCost()


def max_node_count(cores: int, memory: int, cost: NodeCost = DEFAULT_COST) -> int:
    """How many local nodes a machine with `cores` CPUs and `memory` bytes can host, roughly.

    Why these figures: one raft-kv node (the default target) is a Python process of about
    64 MiB resident; MEMORY_PER_NODE doubles that for its data directory and logs in the page
    cache and for heavier targets (etcd), after CONTROLLER_RESERVE (1 GiB, or a quarter of a
    small machine) is kept for the controller itself (client workers, history, checker,
    report). CPU is the tighter bound: on a 2-core machine about 15 namespaces of raft-kv keep
    up with the default rate (100 ops/s plus heartbeats and elections); beyond that timeouts,
    not the system under test, decide the verdict. NODES_PER_CORE = 8 is that measurement.
    The estimate is min(8 * cores, (memory - reserve) / 128 MiB), at least 1 and at most
    MAX_NODES: 16 on a 2-core 24 GiB machine (5 and 7 pass, 200 does not).

    Other targets' nodes cost what they cost (`cost`, the target's `node_cost`): a Maelstrom
    node with its relay is two small processes that idle between messages (measured in
    docs/maelstrom.md), so many more fit.
    """
    reserve = min(CONTROLLER_RESERVE, memory // 4)
    by_memory = max(0, memory - reserve) // cost.memory
    return max(1, min(cost.per_core * max(cores, 1), by_memory, MAX_NODES))


def check_node_count(node_count: int, force: bool = False, cost: NodeCost = DEFAULT_COST) -> None:
    """Refuse a cluster this machine cannot host (ConfigError naming --node-count, the count
    and the estimate), unless forced: an overloaded controller turns every fault into client
    timeouts and the verdict says more about the machine than about the system."""
    if force:
        return
    cores, memory = machine_resources()
    limit = max_node_count(cores, memory, cost)
    if node_count > limit:
        raise ConfigError(
            f"--node-count {node_count}: this machine can host about {limit} local nodes "
            f"({cores} cores, {memory / GIB:.1f} GiB memory; estimate for a {cost.what}: "
            f"min({cost.per_core} per core, one per {cost.memory // MIB} MiB)); use fewer "
            "nodes, or --force-node-count to try anyway"
        )


def random_name(prefix: str = "t") -> str:
    """A fresh 7-character cluster name, so parallel tests never share a cluster."""
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(NAME_MAX - len(prefix)))


def has_net_admin() -> bool:
    if os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 12))
    except OSError:
        pass
    return False


# --------------------------------------------------------------------------- host helpers


def _host(argv: list[str], check: bool = True, timeout: float = 30.0) -> Result:
    return run_argv(HOST, argv, timeout=timeout, check=check)


def _in_ns(ns: str, argv: list[str], check: bool = True, timeout: float = 30.0) -> Result:
    return run_argv(
        ns, ["ip", "netns", "exec", ns, *argv], shown=argv, timeout=timeout, check=check
    )


def list_netns() -> list[str]:
    out = _host(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def list_links() -> list[str]:
    out = _host(["ip", "-o", "link", "show"]).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def netns_pids(ns: str) -> list[int]:
    res = _host(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in res.stdout.split() if p.isdigit()]


def _root_chains() -> list[str]:
    res = _host(["iptables", "-w", "-S"], check=False)
    return [line.split()[1] for line in res.stdout.splitlines() if line.startswith("-N ")]


def _root_rules_mentioning(chain: str) -> list[str]:
    res = _host(["iptables", "-w", "-S"], check=False)
    return [line for line in res.stdout.splitlines() if chain in line.split()]


def _own(name: str, items: list[str]) -> list[str]:
    """Items named by cluster `name`: names hold no '-', so `dsj-a-` never matches `dsj-ab-`."""
    pat = re.compile(rf"^{PREFIX}-{re.escape(name)}-(n?\d+|br)$")
    return [i for i in items if pat.match(i)]


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """One `up`/`down` at a time on this machine: subnet allocation reads other clusters."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- state


def _state_path(name: str) -> Path:
    return state_root() / name / "cluster.json"


def read_state(name: str) -> ClusterState | None:
    path = _state_path(name)
    try:
        return ClusterState.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError) as e:
        raise HarnessError(
            f"{path}: unreadable cluster state ({e}); run `dsjepsen cluster down --name {name}`"
        ) from None


def list_clusters() -> list[str]:
    """Clusters with a state file, plus any whose namespaces outlived their state."""
    names = set()
    root = state_root()
    if root.is_dir():
        names.update(p.parent.name for p in root.glob("*/cluster.json"))
    with contextlib.suppress(RemoteError, HarnessError):
        for ns in list_netns():
            m = re.match(rf"^{PREFIX}-([a-z0-9]+)-n\d+$", ns)
            if m:
                names.add(m.group(1))
    return sorted(names)


def _used_networks(name: str) -> list[ipaddress.IPv4Network]:
    used = []
    root = state_root()
    if root.is_dir():
        for p in root.glob("*/cluster.json"):
            if p.parent.name == name:
                continue
            try:
                used.append(ipaddress.ip_network(json.loads(p.read_text())["subnet"]))
            except (OSError, ValueError, KeyError):
                continue
    for line in _host(["ip", "-4", "-o", "addr", "show"]).stdout.splitlines():
        m = re.search(r"inet (\S+)", line)
        if m and bridge_name(name) not in line.split():
            used.append(ipaddress.ip_interface(m.group(1)).network)
    for line in _host(["ip", "-4", "route", "show"]).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if "/" in word:
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(word, strict=False))
    return used


def _allocate_subnet(name: str, requested: str | None, node_count: int) -> ipaddress.IPv4Network:
    used = _used_networks(name)
    if requested is not None:
        try:
            net = ipaddress.ip_network(requested, strict=True)
        except ValueError as e:
            raise ConfigError(f"--subnet {requested}: {e}") from None
        if net.version != 4:
            raise ConfigError(f"--subnet {requested}: only IPv4 subnets are supported")
        if net.num_addresses - 2 < FIRST_NODE_HOST - 1 + node_count:
            raise ConfigError(f"--subnet {requested} is too small for {node_count} nodes")
        clash = [u for u in used if u.overlaps(net) and not u.is_loopback]
        if clash:
            raise ConfigError(
                f"--subnet {requested} overlaps {clash[0]}, already used on this machine"
            )
        return net
    subnets = list(POOL.subnets(new_prefix=24))
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(subnets)
    for k in range(len(subnets)):
        net = subnets[(start + k) % len(subnets)]
        if not any(u.overlaps(net) for u in used if not u.is_loopback):
            return net
    raise HarnessError(f"no free /24 left in {POOL} for cluster {name}")


# --------------------------------------------------------------------------- public API


def up(
    name: str = DEFAULT_NAME,
    node_count: int | None = None,
    subnet: str | None = None,
    rebuild: bool = False,
    force: bool = False,
    cost: NodeCost = DEFAULT_COST,
) -> Cluster:
    """Create cluster `name` (n1..n<node_count>), or return it if it already exists whole.

    node_count None means "whatever size it has", or DEFAULT_NODE_COUNT when it must be
    created, so a test after `cluster up --nodes 3` just uses those 3 nodes. A partly built or
    partly destroyed cluster of that name is removed and rebuilt; a whole one with a different
    node count or subnet is an error (down it first), unless rebuild=True, which a test run
    uses because it sets its target up from scratch anyway. On any failure nothing of the new
    cluster is left behind.

    A cluster to be created larger than this machine can host (check_node_count) is refused
    before anything is touched, unless force=True (the CLI's --force-node-count); `cost` is
    what one node of the target to run costs (NodeCost)."""
    validate_name(name)
    if node_count is not None and (
        not isinstance(node_count, int) or not 1 <= node_count <= MAX_NODES
    ):
        raise ConfigError(f"node count must be between 1 and {MAX_NODES}, not {node_count!r}")
    preflight()
    with _lock():
        state = read_state(name)
        if state is not None and not missing_parts(state) and node_count is None:
            node_count = state.node_count
        if node_count is None:
            node_count = DEFAULT_NODE_COUNT
        whole = state is not None and not missing_parts(state)
        if not (whole and state is not None and state.node_count == node_count):
            check_node_count(node_count, force, cost)  # before a rebuild tears anything down
        if (
            state is not None
            and not missing_parts(state)
            and rebuild
            and (
                state.node_count != node_count
                or (
                    subnet is not None
                    and str(ipaddress.ip_network(subnet, strict=False)) != state.subnet
                )
            )
        ):
            _teardown(name, keep_data=False)
            state = None
        if state is not None and not missing_parts(state):
            if state.node_count != node_count:
                raise ConfigError(
                    f"cluster {name} already exists with {state.node_count} nodes; "
                    f"run `dsjepsen cluster down --name {name}` first"
                )
            if (
                subnet is not None
                and str(ipaddress.ip_network(subnet, strict=False)) != state.subnet
            ):
                raise ConfigError(
                    f"cluster {name} already exists on {state.subnet}; "
                    f"run `dsjepsen cluster down --name {name}` first"
                )
            return to_cluster(state)
        _teardown(name, keep_data=True)
        net = _allocate_subnet(name, subnet, node_count)
        try:
            state = _create(name, node_count, net)
        except BaseException:
            _teardown(name, keep_data=False)
            raise
        return to_cluster(state)


def _create(name: str, node_count: int, net: ipaddress.IPv4Network) -> ClusterState:
    hosts = list(net.hosts())
    prefix = net.prefixlen
    br = bridge_name(name)
    chain = chain_name(name)
    bridge_address = str(hosts[0])
    base = state_root() / name
    nodes = [
        NodeState(
            name=f"n{i}",
            netns=netns_name(name, i),
            address=str(hosts[FIRST_NODE_HOST - 2 + i]),
            veth=veth_name(name, i),
            workdir=str(base / f"n{i}"),
        )
        for i in range(1, node_count + 1)
    ]
    state = ClusterState(
        name=name,
        subnet=str(net),
        bridge=br,
        bridge_address=bridge_address,
        chain=chain,
        nodes=nodes,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    base.mkdir(parents=True, exist_ok=True)
    # Write the state first: a crash halfway leaves a record that `down` can follow.
    _state_path(name).write_text(state.to_json())

    _host(["ip", "link", "add", br, "type", "bridge"])
    _host(["ip", "addr", "add", f"{bridge_address}/{prefix}", "dev", br])
    _host(["ip", "link", "set", br, "up"])
    # br_netfilter sends bridged frames through the root FORWARD chain; a host whose policy
    # is DROP (docker sets that) would cut the nodes off from each other without this.
    _host(["iptables", "-w", "-N", chain])
    _host(["iptables", "-w", "-A", chain, "-i", br, "-j", "ACCEPT"])
    _host(["iptables", "-w", "-A", chain, "-o", br, "-j", "ACCEPT"])
    _host(["iptables", "-w", "-I", "FORWARD", "1", "-j", chain])
    for n in nodes:
        _host(["ip", "netns", "add", n.netns])
        _host(
            ["ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns]
        )
        _host(["ip", "link", "set", n.veth, "master", br])
        _host(["ip", "link", "set", n.veth, "up"])
        _host(["ip", "-n", n.netns, "addr", "add", f"{n.address}/{prefix}", "dev", "eth0"])
        _host(["ip", "-n", n.netns, "link", "set", "eth0", "up"])
        _host(["ip", "-n", n.netns, "link", "set", "lo", "up"])
        Path(n.workdir).mkdir(parents=True, exist_ok=True)
    return state


def missing_parts(state: ClusterState) -> list[str]:
    """What of `state` no longer exists (empty when the cluster is whole)."""
    namespaces = set(list_netns())
    links = set(list_links())
    missing = []
    if state.bridge not in links:
        missing.append(f"bridge {state.bridge}")
    for n in state.nodes:
        if n.netns not in namespaces:
            missing.append(f"namespace {n.netns}")
        if n.veth not in links:
            missing.append(f"link {n.veth}")
        if not Path(n.workdir).is_dir():
            missing.append(f"workdir {n.workdir}")
    if state.chain not in _root_chains():
        missing.append(f"iptables chain {state.chain}")
    return missing


def to_cluster(state: ClusterState) -> Cluster:
    nodes = [
        Node(name=n.name, address=n.address, workdir=n.workdir, extra={"netns": n.netns})
        for n in state.nodes
    ]
    return Cluster(
        kind="local",
        nodes=nodes,
        remotes={n.name: LocalRemote(n, n.extra["netns"]) for n in nodes},
        name=state.name,
        meta={
            "subnet": state.subnet,
            "bridge": state.bridge,
            "controller_address": state.bridge_address,
        },
        shares_controller_files=True,
        healer=lambda stop_processes=False: heal(state.name, stop_processes=stop_processes),
        remover=lambda: down(state.name),
    )


def open_cluster(name: str = DEFAULT_NAME) -> Cluster:
    """The existing cluster `name`; an error (naming what is gone) if it is not whole."""
    validate_name(name)
    preflight()
    state = read_state(name)
    if state is None:
        raise ConfigError(f"no local cluster named {name}: run `dsjepsen cluster up --name {name}`")
    gone = missing_parts(state)
    if gone:
        raise HarnessError(
            f"local cluster {name} is damaged ({', '.join(gone[:3])} missing); "
            f"run `dsjepsen cluster down --name {name}` and up again"
        )
    return to_cluster(state)


def down(name: str = DEFAULT_NAME, keep_data: bool = False) -> list[str]:
    """Remove everything of cluster `name`: processes, namespaces, links, root chain, workdirs
    (unless keep_data). Idempotent; works without a state file. Returns what it removed and
    raises HarnessError if anything is still there afterwards."""
    validate_name(name)
    preflight()
    with _lock():
        removed = _teardown(name, keep_data=keep_data)
    leftovers = remains(name, include_data=not keep_data)
    if leftovers:
        raise HarnessError(f"cluster {name}: could not remove {', '.join(leftovers)}")
    return removed


def _teardown(name: str, keep_data: bool) -> list[str]:
    removed: list[str] = []
    namespaces = _own(name, list_netns())
    for ns in namespaces:
        removed += [f"process {p}" for p in _kill_all(ns)]
    for ns in namespaces:
        _host(["ip", "netns", "del", ns], check=False)
        removed.append(f"namespace {ns}")
    for link in _own(name, list_links()):
        # deleting one end of a veth pair removes the other: ignore "cannot find device"
        if _host(["ip", "link", "del", link], check=False).exit == 0:
            removed.append(f"link {link}")
    chain = chain_name(name)
    for _ in range(100):
        if _host(["iptables", "-w", "-D", "FORWARD", "-j", chain], check=False).exit != 0:
            break
    if chain in _root_chains():
        _host(["iptables", "-w", "-F", chain], check=False)
        _host(["iptables", "-w", "-X", chain], check=False)
        removed.append(f"iptables chain {chain}")
    base = state_root() / name
    removed += faultmount.heal_under(str(base))  # a mount would keep its directory from going
    if keep_data:
        _state_path(name).unlink(missing_ok=True)
    elif base.exists():
        shutil.rmtree(base, ignore_errors=True)
        removed.append(f"directory {base}")
    return removed


def _kill_all(ns: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process in namespace ns and wait until none is left (a process left
    alive would keep the namespace, and its ports, around after `ip netns del`)."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(ns)
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise HarnessError(f"namespace {ns}: processes {pids} survived SIGKILL")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        time.sleep(0.05)


def remains(name: str, include_data: bool = True) -> list[str]:
    """Everything of cluster `name` still present on this machine (empty after a clean down)."""
    left = [f"namespace {ns}" for ns in _own(name, list_netns())]
    left += [f"link {link}" for link in _own(name, list_links())]
    chain = chain_name(name)
    left += [f"iptables rule {r!r}" for r in _root_rules_mentioning(chain)]
    if include_data and (state_root() / name).exists():
        left.append(f"directory {state_root() / name}")
    elif _state_path(name).exists():
        left.append(f"state file {_state_path(name)}")
    return left


def status(name: str = DEFAULT_NAME) -> dict:
    """A JSON-able description: nodes, addresses, processes per node, what is missing."""
    validate_name(name)
    state = read_state(name)
    if state is None:
        stray = remains(name)
        return {"name": name, "exists": False, "stray": stray}
    namespaces = set(list_netns())
    nodes = []
    for n in state.nodes:
        alive = n.netns in namespaces
        pids = netns_pids(n.netns) if alive else []
        nodes.append(
            {
                "name": n.name,
                "address": n.address,
                "netns": n.netns,
                "workdir": n.workdir,
                "up": alive,
                "processes": len(pids),
                "stopped": sum(1 for p in pids if _proc_state(p) == "T"),
                "iptables_rules": _count_rules(n.netns) if alive else 0,
                "clock_offset": _clock_offset(n.workdir),
            }
        )
    return {
        "name": name,
        "exists": True,
        "subnet": state.subnet,
        "bridge": state.bridge,
        "controller_address": state.bridge_address,
        "created": state.created,
        "missing": missing_parts(state),
        "nodes": nodes,
    }


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    # the command name is in parentheses and may hold spaces: the state follows the last ')'
    return stat.rsplit(")", 1)[1].split()[0]


def _iptables_dump(ns: str, table: str) -> list[str]:
    res = _in_ns(ns, ["iptables", "-w", "-t", table, "-S"], check=False)
    return res.stdout.splitlines() if res.exit == 0 else []


def _count_rules(ns: str) -> int:
    return sum(
        1 for t in TABLES for line in _iptables_dump(ns, t) if line.startswith(("-A ", "-N "))
    )


def heal(name: str = DEFAULT_NAME, stop_processes: bool = False) -> dict[str, dict[str, list[str]]]:
    """Undo every fault dsjepsen can leave in cluster `name` after a crashed run.

    Node namespaces hold nothing but what dsjepsen put there, so each one's firewall is reset
    whole (every rule and user chain, `DSJ-...` partition chains included, in every table;
    policies back to ACCEPT), the root and ingress qdiscs on eth0 are removed (packet faults),
    and every stopped process is resumed with SIGCONT. With stop_processes (`dsjepsen cluster
    heal`, never a run's own heal, which must keep its target running) every process left in
    a node namespace is killed too: only dsjepsen starts processes there, so whatever is left
    is a target a dead controller could not stop, and the next run must not meet it; so is every
    fault file system (disk faults) under a node's workdir, its mount detached. Returns,
    per node, what was undone ("stopped": "<pid> <command>" per killed process)."""
    validate_name(name)
    preflight()
    cluster_state = read_state(name)
    if cluster_state is None:
        raise ConfigError(f"no local cluster named {name}: nothing to heal")
    namespaces = set(list_netns())
    report: dict[str, dict[str, list[str]]] = {}
    for n in cluster_state.nodes:
        if n.netns not in namespaces:
            report[n.name] = {"missing": [n.netns]}
            continue
        clock = faketime.reset_offset_file(faketime.offset_path(n.workdir))
        report[n.name] = {
            "iptables": _reset_firewall(n.netns),
            "qdiscs": _reset_qdiscs(n.netns),
            "clock": [f"offset {clock} s reset to 0"] if clock else [],
            "resumed": [str(p) for p in _resume_all(n.netns)],
        }
        if stop_processes:
            # A disk fault's file system runs on the controller, not in the namespace, and a
            # run's own heal keeps it (the target still serves from it): only here, with the
            # target gone, is it stopped and its mount detached.
            report[n.name]["disk"] = faultmount.heal_under(n.workdir)
            shown = {p: f"{p} {_command_line(p)}" for p in netns_pids(n.netns)}
            killed = _kill_all(n.netns)
            report[n.name]["stopped"] = [shown.get(p, str(p)) for p in killed]
    return report


def _clock_offset(workdir: str) -> float:
    """The offset (s) a clock fault left in the node's libfaketime control file; 0 for none."""
    try:
        return float(Path(faketime.offset_path(workdir)).read_text().strip())
    except (OSError, ValueError):
        return 0.0


def _command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200]


def _reset_firewall(ns: str) -> list[str]:
    undone = []
    for table in TABLES:
        lines = _iptables_dump(ns, table)
        changed = [ln for ln in lines if ln.startswith(("-A ", "-N "))]
        changed += [ln for ln in lines if ln.startswith("-P ") and not ln.endswith(" ACCEPT")]
        if not changed:
            continue
        _in_ns(ns, ["iptables", "-w", "-t", table, "-F"])
        _in_ns(ns, ["iptables", "-w", "-t", table, "-X"])
        for ln in lines:
            if ln.startswith("-P ") and not ln.endswith(" ACCEPT"):
                _in_ns(ns, ["iptables", "-w", "-t", table, "-P", ln.split()[1], "ACCEPT"])
        undone += [f"{table}: {ln}" for ln in changed]
    return undone


def _reset_qdiscs(ns: str) -> list[str]:
    res = _in_ns(ns, ["tc", "qdisc", "show", "dev", "eth0"], check=False)
    undone = []
    for line in res.stdout.splitlines():
        words = line.split()
        if "root" in words and "noqueue" not in words:
            _in_ns(ns, ["tc", "qdisc", "del", "dev", "eth0", "root"], check=False)
            undone.append(line.strip())
        elif "ingress" in words or "clsact" in words:
            _in_ns(ns, ["tc", "qdisc", "del", "dev", "eth0", words[1]], check=False)
            undone.append(line.strip())
    return undone


def _resume_all(ns: str) -> list[int]:
    resumed = []
    for pid in netns_pids(ns):
        if _proc_state(pid) in ("T", "t"):
            resumed.append(pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    return resumed


class LocalBackend(Backend):
    """The embedded cluster: network namespaces on this machine, made on demand. Its nodes
    share this machine's kernel, files and process table."""

    name = "local"
    description = "network namespaces on this machine, one per node (the default)"
    shares_kernel = True
    shares_files = True
    lists_nodes = False

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--node-count",
            type=int,
            default=None,
            metavar="N",
            help="size of the local cluster (default: the existing cluster's size, or "
            f"{DEFAULT_NODE_COUNT} when it is created; a different size rebuilds it)",
        )
        group.add_argument(
            "--force-node-count",
            action="store_true",
            help="create a local cluster larger than this machine's estimated capacity",
        )
        group.add_argument(
            "--cluster-name",
            default=DEFAULT_NAME,
            metavar="NAME",
            help=f"local cluster name (default {DEFAULT_NAME})",
        )

    def __init__(self, args: argparse.Namespace | None = None) -> None:
        super().__init__(args)
        self.cluster_name = getattr(self.args, "cluster_name", DEFAULT_NAME)
        self.node_count: int | None = getattr(self.args, "node_count", None)
        self.force = bool(getattr(self.args, "force_node_count", False))
        if self.node_count is not None and not 1 <= self.node_count <= MAX_NODES:
            raise ConfigError(f"--node-count {self.node_count}: must be 1-{MAX_NODES}")

    def open_cluster(self, create: bool, node_cost: NodeCost | None = None) -> Cluster:
        if not create:
            return open_cluster(self.cluster_name)
        existed = read_state(self.cluster_name) is not None
        cluster = up(
            self.cluster_name,
            node_count=self.node_count,
            rebuild=self.node_count is not None,
            force=self.force,
            cost=node_cost or DEFAULT_COST,
        )
        cluster.created_here = not existed
        return cluster

    def planned_node_count(self) -> int:
        if self.node_count is not None:
            return self.node_count
        state = read_state(self.cluster_name)
        return state.node_count if state is not None else DEFAULT_NODE_COUNT

    def heal_cluster(self, stop_processes: bool) -> dict[str, dict[str, list[str]]]:
        return heal(self.cluster_name, stop_processes=stop_processes)

    def describe_cluster(self) -> str:
        return f"cluster {self.cluster_name}"

    @classmethod
    def machine_problems(cls) -> list[tuple[str, str | None, str]]:
        return []  # doctor probes the namespaces, bridges and iptables itself, in one namespace
