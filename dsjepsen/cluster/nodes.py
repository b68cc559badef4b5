"""Node selection: turn command-line options into a Cluster, for every command that needs
nodes (`dsjepsen test`, `dsjepsen cluster exec`, ...), whichever backend reaches them.

No option means the embedded local namespace cluster (the `local` backend, created on demand);
`--nodes` names the nodes of a backend that lists them (SSH hosts by default, containers with
`--backend docker` / `--docker`, or a plugin's); `--nodes-file` is a plain list, one entry per
line, or TOML with per-node settings (told apart by the content). What an entry is and how a
node is opened is the backend's (`cluster/backend.py`); the parsing, the checks (before any
node is touched), the assembly into a Cluster and the heal of leftovers are the same for all.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import re
import tomllib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from dsjepsen.cluster import faultmount
from dsjepsen.cluster.backend import (
    REMOTE_WORKDIR,
    Backend,
    NodeSettings,
    NodeSpec,
    backend_class,
    backend_classes,
)
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Remote, RemoteError
from dsjepsen.errors import ConfigError, InputError
from dsjepsen.files import read_text

if TYPE_CHECKING:
    from dsjepsen.cluster.localnet import NodeCost

__all__ = ["REMOTE_WORKDIR", "NodeSpec", "add_node_options", "open_nodes"]

NODE_NAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]+$")
#: a nodes file is a few lines per node; anything larger is not one
MAX_NODES_FILE_BYTES = 1 << 20
#: the backend of listed nodes when none is named
DEFAULT_LISTED = "ssh"
#: the backend without node options
DEFAULT_OWN = "local"
#: keys of a TOML node table that every backend reads
_COMMON_KEYS = {"backend", "host", "workdir"}


def add_node_options(parser: argparse.ArgumentParser, local: bool = True) -> None:
    """The node options, in their own help group: the node list, the backend, and every
    registered backend's own options. local=False leaves out the options of backends that
    make their own cluster (for commands that have their own --cluster-name)."""
    g = parser.add_argument_group(
        "nodes",
        "Where the test runs. Default: the local network-namespace cluster (needs root).",
    )
    g.add_argument(
        "--nodes", metavar="N1,N2,...", help="SSH hosts (or containers, ... with --backend)"
    )
    g.add_argument(
        "--nodes-file",
        metavar="FILE",
        help="one [user@]host[:port] per line (# comments), or TOML with per-node settings",
    )
    known = backend_classes()
    g.add_argument(
        "--backend",
        metavar="NAME",
        help=f"how the nodes are reached: {', '.join(known)} (default: {DEFAULT_OWN}, or "
        f"{DEFAULT_LISTED} with --nodes; `dsjepsen list backends`)",
    )
    g.add_argument(
        "--docker",
        action="store_true",
        help="--nodes are docker container names (--backend docker)",
    )
    for cls in known.values():
        if local or cls.lists_nodes:
            cls.add_arguments(g)


def node_option_actions(local: bool = True) -> list[argparse.Action]:
    """The node options as argparse declares them (every backend's included)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_node_options(parser, local)
    return [a for a in parser._actions if a.option_strings]


def node_option_dests(local: bool = True) -> set[str]:
    """The attribute names the node options are parsed into (for callers that pass node
    options through: `dsjepsen maelstrom`, the Python API, the pytest fixture)."""
    return {a.dest for a in node_option_actions(local)}


def node_argv(args: argparse.Namespace, local: bool = False) -> list[str]:
    """The node options given (those that differ from their defaults) as command-line tokens,
    for a command that passes them on to the tests it starts (`dsjepsen campaign`)."""
    out: list[str] = []
    for action in node_option_actions(local):
        value = getattr(args, action.dest, action.default)
        if value is None or value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # a flag
            out.append(flag)
        else:
            out += [flag, str(value)]
    return out


def backend_name(args: argparse.Namespace) -> str | None:
    """The backend the options name (`--docker` is `--backend docker`), or None."""
    name = getattr(args, "backend", None)
    if getattr(args, "docker", False):
        if name not in (None, "docker"):
            raise ConfigError(f"--docker means --backend docker, not --backend {name}")
        return "docker"
    return name


def _named_as(args: argparse.Namespace, name: str) -> str:
    return "--docker" if getattr(args, "docker", False) else f"--backend {name}"


class Backends:
    """The backends of one set of options, each made once from them (a TOML nodes file may
    name several)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._made: dict[str, Backend] = {}

    def __call__(self, name: str) -> Backend:
        if name not in self._made:
            self._made[name] = backend_class(name)(self.args)
        return self._made[name]


def node_specs(args: argparse.Namespace) -> list[NodeSpec] | None:
    """The listed nodes the options name (--nodes, --nodes-file), parsed and checked without
    reaching any of them; None for a backend that makes its own cluster. Contradicting
    options are ConfigError: this runs before any node is touched."""
    nodes_opt = getattr(args, "nodes", None)
    nodes_file = getattr(args, "nodes_file", None)
    name = backend_name(args)
    if nodes_opt is not None and nodes_file is not None:
        raise ConfigError("--nodes and --nodes-file are mutually exclusive")
    if nodes_opt is None and nodes_file is None:
        cls = backend_class(name or DEFAULT_OWN)
        if cls.lists_nodes:
            m = cls.metavar
            raise ConfigError(f"{_named_as(args, cls.name)} needs --nodes {m}1,{m}2,...")
        cls(args)  # checks its options now
        return None
    given = "--nodes" if nodes_opt is not None else "--nodes-file"
    if getattr(args, "node_count", None) is not None:
        raise ConfigError(
            f"--node-count sizes the local cluster, but {given} names the nodes themselves; "
            "give one or the other"
        )
    if getattr(args, "force_node_count", False):
        raise ConfigError(f"--force-node-count applies to the local cluster, not to {given}")
    backends = Backends(args)
    chosen = backends(name or DEFAULT_LISTED)
    if not chosen.lists_nodes:
        raise ConfigError(f"--backend {chosen.name} makes its own cluster: it takes no {given}")
    if nodes_file is not None:
        return load_nodes_file(nodes_file, chosen, backends)
    return specs_from_list(nodes_opt, chosen)


def planned_node_count(args: argparse.Namespace) -> int:
    """How many nodes the options select, known before any node is touched: the listed
    nodes, else what the backend that makes its own cluster will make."""
    specs = node_specs(args)
    if specs is not None:
        return len(specs)
    return backend_class(backend_name(args) or DEFAULT_OWN)(args).planned_node_count()


def open_nodes(
    args: argparse.Namespace,
    create: bool = True,
    check: bool = True,
    node_cost: NodeCost | None = None,
) -> Cluster:
    """The Cluster the options select. create: make a backend's own cluster if needed
    (otherwise it must exist). check: run `true` on every listed node first, so that an
    unreachable host or a refused key surfaces now, as one line naming the node. node_cost:
    what one node of the target costs, for the capacity estimate of a cluster the backend
    makes (default: a raft-kv node)."""
    specs = node_specs(args)
    if specs is None:
        backend = backend_class(backend_name(args) or DEFAULT_OWN)(args)
        return backend.open_cluster(create, node_cost)
    cluster = build_cluster(specs, Backends(args))
    if check:
        try:
            check_reachable(cluster)
        except BaseException:
            cluster.close()
            raise
    return cluster


def own_kernels(args: argparse.Namespace) -> bool:
    """Whether every node the options select runs a kernel of its own, as far as the
    backends say before any node is reached (`Backend.shares_kernel`: namespaces and
    containers share this machine's, SSH hosts have their own). An SSH host may still be this
    machine: what must be sure asks the node itself (`faketime.shares_controller_kernel`)."""
    specs = node_specs(args)
    if specs is None:
        return not backend_class(backend_name(args) or DEFAULT_OWN).shares_kernel
    return all(not backend_class(s.backend).shares_kernel for s in specs)


def heal_selected(args: argparse.Namespace) -> tuple[str, Any]:
    """`dsjepsen cluster heal`: undo every fault dsjepsen left on the selected nodes and stop
    the processes a crashed run left there. (what was healed, the backend's report:
    {node: [lines]} for listed nodes, {node: {kind: [items]}} for the local cluster)."""
    specs = node_specs(args)
    if specs is None:
        backend = backend_class(backend_name(args) or DEFAULT_OWN)(args)
        return backend.describe_cluster(), backend.heal_cluster(stop_processes=True)
    with open_nodes(args, create=False) as cluster:
        return f"{len(cluster.nodes)} nodes", heal_nodes(cluster, stop_processes=True)


def specs_from_list(text: str, backend: Backend) -> list[NodeSpec]:
    """--nodes: a comma list of the backend's entries (`[user@]host[:port]` for SSH, container
    names for docker), read exactly as the lines of a plain nodes file are; every problem is
    one line naming --nodes."""
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise ConfigError(f"--nodes {text!r}: empty node name")
    if backend.takes_login and all(n.isdigit() for n in names) and len(names) == 1:
        raise ConfigError(
            f"--nodes {names[0]}: --nodes names the nodes (SSH hosts); for a local cluster of "
            f"{names[0]} nodes use --node-count {names[0]}"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--nodes: duplicate node {dupes[0]!r}")
    try:
        return parse_plain_nodes("\n".join(names), "--nodes", backend)
    except InputError as e:
        raise ConfigError(f"--nodes: {e.reason.replace('node line', 'node')}") from None


#: a TOML table header: `[defaults]`, `[nodes.n1]`, `[[x]]` (no colon, unlike `[::1]:22`)
_TOML_HEADER_RE = re.compile(r"^\[\[?[^\]:]*\]?\]?\s*(#.*)?$")
#: one line of a plain nodes file: [user@]host[:port], host a name, IPv4, or [IPv6]
_PLAIN_LINE_RE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?"
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.%]+)\]|(?P<host>[A-Za-z0-9_][A-Za-z0-9_.-]*))"
    r"(?::(?P<port>[0-9]+))?$"
)


def _significant(text: str) -> list[tuple[int, str]]:
    """(line number, content) of every line that is neither blank nor a `#` comment."""
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((i, line))
    return out


def is_toml_nodes_file(text: str) -> bool:
    """Whether a nodes file's content is TOML (a `key = value` or a `[table]` line) rather
    than a plain list of hosts."""
    return any("=" in line or _TOML_HEADER_RE.match(line) for _, line in _significant(text))


def parse_plain_nodes(text: str, path: str, backend: Backend) -> list[NodeSpec]:
    """A plain nodes file: one entry per line, `[user@]host[:port]` for a backend that takes a
    login (an IPv6 address in brackets when a port follows), a bare name (a container, a pod)
    for the others; blank lines and `#` comments are ignored. The node is named after its
    host, as with --nodes, or `host:port` when several lines name one host. A malformed line
    is one error naming the file and line."""
    form = backend.entry
    entries: list[tuple[int, str, str | None, int | None]] = []
    for line_no, line in _significant(text):
        m = _PLAIN_LINE_RE.match(line)
        bare_ipv6 = m is None and _is_ipv6(line)  # an IPv6 address without brackets nor port
        if m is None and not bare_ipv6:
            raise InputError(f"malformed node line {line!r} (expected {form})", path, line_no)
        host = line if m is None else (m.group("ip6") or m.group("host"))
        if m and m.group("ip6") and not _is_ipv6(host):
            raise InputError(
                f"malformed node line {line!r}: {host!r} is no IPv6 address", path, line_no
            )
        user = m.group("user") if m else None
        port = int(m.group("port")) if m and m.group("port") else None
        if not backend.takes_login and (user or port is not None or m is None or m.group("ip6")):
            raise InputError(
                f"malformed node line {line!r} (with --backend {backend.name}: one {form} "
                "per line)",
                path,
                line_no,
            )
        if port is not None and not 1 <= port <= 65535:
            raise InputError(f"node line {line!r}: port must be 1-65535", path, line_no)
        entries.append((line_no, host, user, port))
    if not entries:
        raise InputError(f"no nodes: write one {form} per line", path)
    shared = {h for _, h, _, _ in entries if sum(e[1] == h for e in entries) > 1}
    specs: list[NodeSpec] = []
    seen: dict[tuple[str, int | None], int] = {}
    for line_no, host, user, port in entries:
        key = (host, port if port is not None else backend.default_port())
        if key in seen:
            raise InputError(f"duplicate node {host!r} (first on line {seen[key]})", path, line_no)
        seen[key] = line_no
        name = f"{host}:{key[1]}" if host in shared else host
        entry = _PlainEntry({"user": user, "port": port}, path, line_no)
        specs.append(backend.node_spec(name, host, entry, f"{REMOTE_WORKDIR}/{name}"))
    return specs


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def load_nodes_file(
    path: str, backend: Backend, backends: Callable[[str], Backend]
) -> list[NodeSpec]:
    """Read a nodes file: a plain list (see parse_plain_nodes)

    ```
    # one node per line
    10.0.0.1
    admin@db2:2222
    ```
    or TOML:

    ```toml
    [defaults]            # optional; any per-node key
    user = "admin"
    key = "~/.ssh/id_ed25519"

    [nodes.n1]
    host = "10.0.0.1"     # default: the node's name
    port = 2222
    ```
    Per-node keys: backend (default: the one the options name, else ssh), host, workdir, and
    the backend's own (`Backend.node_keys`: for ssh user, port, key, password_env,
    known_hosts, insecure_host_keys, sudo, timeout; for docker container, address). Errors name
    the file, the line of the node's table and the key."""
    text = read_text(path, "nodes file", MAX_NODES_FILE_BYTES)
    if not is_toml_nodes_file(text):
        return parse_plain_nodes(text, path, backend)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise InputError(f"invalid TOML: {e}", path, int(m.group(1)) if m else None) from None
    lines = text.splitlines()

    def line_of(table: str) -> int | None:
        pat = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
        for i, line in enumerate(lines, 1):
            if pat.match(line):
                return i
        return None

    unknown_top = set(data) - {"defaults", "nodes"}
    if unknown_top:
        raise InputError(
            f"unknown section {sorted(unknown_top)[0]!r} (use [defaults] and [nodes.NAME])", path
        )
    defaults = data.get("defaults", {})
    nodes = data.get("nodes")
    if not isinstance(nodes, dict) or not nodes:
        raise InputError("no nodes: add one [nodes.NAME] table per node", path)
    if not isinstance(defaults, dict):
        raise InputError("'defaults' must be a table", path)
    listed = {n: c for n, c in backend_classes().items() if c.lists_nodes}
    every_key = _COMMON_KEYS.union(*(c.node_keys for c in listed.values()))
    specs = []
    for name, raw in nodes.items():
        where = f"nodes.{name}"
        line = line_of(where)
        if not isinstance(raw, dict):
            raise InputError(f"{where}: must be a table", path, line)
        if not NODE_NAME_RE.match(name):
            raise InputError(f"{where}: invalid node name {name!r}", path, line)
        merged = {**defaults, **raw}
        for key in merged:
            if key not in every_key:
                raise InputError(
                    f"{where}: unknown key {key!r} (known: {', '.join(sorted(every_key))})",
                    path,
                    line if key in raw else line_of("defaults"),
                )

        table = _TomlTable(merged, path, where, line)
        chosen = table.get("backend", str, backend.name)
        if chosen not in listed:
            raise InputError(
                f"{where}.backend: must be one of {', '.join(repr(n) for n in listed)}, "
                f"not {chosen!r}",
                path,
                line,
            )
        node_backend = backends(chosen)
        host = table.get("host", str, name)
        workdir = table.get("workdir", str, f"{REMOTE_WORKDIR}/{name}")
        specs.append(node_backend.node_spec(name, host, table, workdir))
    return specs


class _PlainEntry(NodeSettings):
    """The parts of one plain entry (`user`, `port`; None when not given)."""

    def __init__(self, parts: dict[str, Any], path: str, line: int) -> None:
        self.parts, self.path, self.line = parts, path, line

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any) -> Any:
        value = self.parts.get(key)
        return default if value is None else value

    def invalid(self, key: str, message: str) -> NoReturn:
        raise InputError(f"node line {key}: {message}", self.path, self.line)


class _TomlTable(NodeSettings):
    """One node's table of a TOML nodes file, merged over [defaults]."""

    def __init__(self, merged: dict[str, Any], path: str, where: str, line: int | None) -> None:
        self.merged, self.path, self.where, self.line = merged, path, where, line

    def get(self, key: str, kinds: type | tuple[type, ...], default: Any) -> Any:
        value = self.merged.get(key, default)
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        wrong = not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        if value is not None and wrong:
            label = "number" if float in kinds else kinds[0].__name__
            self.invalid(key, f"must be {label}, not {value!r}")
        return value

    def invalid(self, key: str, message: str) -> NoReturn:
        raise InputError(f"{self.where}.{key}: {message}", self.path, self.line)


def build_cluster(
    specs: list[NodeSpec], backends: Callable[[str], Backend] | None = None
) -> Cluster:
    """Nodes and remotes for specs, each opened by its backend (connections may open
    lazily); the cluster's facts are what all its backends share."""
    made = backends or Backends(argparse.Namespace())
    remotes: dict[str, Remote] = {}
    try:
        for s in specs:
            remotes[s.name] = made(s.backend).open_node(s)
    except BaseException:
        for r in remotes.values():
            r.close()
        raise
    kinds = {s.backend for s in specs}
    cluster = Cluster(
        kind=next(iter(kinds)) if len(kinds) == 1 else "mixed",
        nodes=[remotes[s.name].node for s in specs],
        remotes=remotes,
        name="remote",
        shares_controller_files=all(backend_class(k).shares_files for k in kinds),
    )
    cluster.healer = lambda stop_processes=False: heal_nodes(cluster, stop_processes)
    return cluster


def check_reachable(cluster: Cluster, timeout: float = 30.0) -> None:
    """Run `true` on every node at once; raise the first node's error (one line)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(cluster.nodes))) as pool:
        futures = {
            n.name: pool.submit(cluster.remote(n.name).run, ["true"], timeout)
            for n in cluster.nodes
        }
        errors = []
        for name in cluster.names:
            try:
                futures[name].result()
            except RemoteError as e:
                errors.append(e)
    if errors:
        # a configuration error (254) outranks an unreachable host (255): fix that first
        errors.sort(key=lambda e: e.exit_code)
        raise errors[0]


# ---------------------------------------------------------------- healing listed nodes

#: Undo on one listed node (SSH, docker, a plugin's: any node with a POSIX sh) what dsjepsen
#: may have left there, touching nothing else:
#: every iptables chain named DSJ-* (the fault packages' own, e.g. DSJ-PARTITION) with every
#: jump to it, a netem qdisc on any interface, and, among the processes marked as dsjepsen
#: daemons of this node (DSJEPSEN_DAEMON, see daemon.py, naming a pidfile under the node's
#: workdir $2: nodes that share a process table, or a machine with several nodes, keep each
#: other's), SIGCONT for stopped ones, or with $1 = stop, SIGKILL for all; and a clock offset
#: left in the node's libfaketime control file (faketime.offset_path) goes back to zero.
#: Prints one `KIND WHAT` line per thing undone.
_HEAL = r"""stop=$1
scope=${2%/}
if command -v iptables >/dev/null 2>&1; then
  for t in filter nat mangle raw; do
    iptables -w -t "$t" -S 2>/dev/null | grep -E -- '-[jg] DSJ-[A-Za-z0-9_-]+' |
      sed 's/^-A /-D /' | while IFS= read -r rule; do
        eval "iptables -w -t $t $rule" && echo "iptables $t: $rule"
      done
    iptables -w -t "$t" -S 2>/dev/null | sed -n 's/^-N \(DSJ-[A-Za-z0-9_-]*\)$/\1/p' |
      while IFS= read -r c; do
        iptables -w -t "$t" -F "$c" && iptables -w -t "$t" -X "$c" && echo "iptables $t: chain $c"
      done
  done
fi
if command -v tc >/dev/null 2>&1; then
  for dev in $(ls /sys/class/net 2>/dev/null); do
    tc qdisc show dev "$dev" 2>/dev/null | grep -q netem &&
      tc qdisc del dev "$dev" root 2>/dev/null && echo "qdisc $dev netem"
  done
fi
f="$scope/dsj-clock/offset"
if [ -s "$f" ] && ! awk '{ exit !($1 + 0 == 0) }' "$f" 2>/dev/null; then
  o=$(head -c 40 "$f")
  printf '+0.000000\n' >"$f.tmp" && mv "$f.tmp" "$f" && echo "clock offset $o s reset to 0"
fi
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  v=$(tr '\0' '\n' <"$d/environ" 2>/dev/null | grep '^DSJEPSEN_DAEMON=')
  case $v in "DSJEPSEN_DAEMON=$scope"/*) ;; *) continue ;; esac
  st=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "$d/status" 2>/dev/null)
  cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null | cut -c1-120)
  if [ "$stop" = stop ]; then
    kill -s KILL "$p" 2>/dev/null && echo "killed $p $cmd"
  elif [ "$st" = T ] || [ "$st" = t ]; then
    kill -s CONT "$p" 2>/dev/null && echo "resumed $p $cmd"
  fi
done
exit 0
"""


def heal_node(remote: Remote, stop_processes: bool = False, timeout: float = 60.0) -> list[str]:
    """Undo dsjepsen's leftovers on one listed node (see _HEAL, and with stop_processes the
    fault file systems' mounts: faultmount.heal_node_under); what was undone."""
    argv = [
        "sh",
        "-c",
        _HEAL,
        "dsj-heal",
        "stop" if stop_processes else "cont",
        remote.node.workdir,
    ]
    done = remote.run(argv, timeout=timeout).stdout.splitlines()
    if stop_processes:  # the fault file systems were stopped with the rest: detach the mounts
        done += faultmount.heal_node_under(remote, remote.node.workdir, timeout)
    return done


def heal_nodes(cluster: Cluster, stop_processes: bool = False) -> dict[str, list[str]]:
    """`heal_node` on every node at once: {node: [what was undone]}. After a killed run this
    is what `dsjepsen cluster heal --nodes ...` runs (with stop_processes: the crashed run's
    target goes too); a run calls it before setup and after its faults."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(cluster.nodes))) as pool:
        futures = {
            n.name: pool.submit(heal_node, cluster.remote(n.name), stop_processes)
            for n in cluster.nodes
        }
        return {name: futures[name].result() for name in cluster.names}
