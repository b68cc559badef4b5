"""Node selection: turn command-line options into a Cluster, for every command that needs
nodes (`dsjepsen test`, `dsjepsen cluster exec`, ...).

No option means the embedded local namespace cluster (created on demand); `--nodes` names SSH
hosts (or containers with `--docker`); `--nodes-file` is a plain list, one `[user@]host[:port]`
per line, or TOML with per-node settings (told apart by the content).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import re
import tomllib
from dataclasses import dataclass

from dsjepsen.cluster import localnet
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Node, Remote, RemoteError
from dsjepsen.cluster.control.docker import DockerRemote, inspect_argv, validate_container
from dsjepsen.cluster.control.local import run_argv
from dsjepsen.cluster.control.ssh import PASSWORD_ENV_DEFAULT, SshConfig, SshRemote
from dsjepsen.errors import ConfigError, InputError
from dsjepsen.files import read_text

REMOTE_WORKDIR = "/var/lib/dsjepsen"
NODE_NAME_RE = re.compile(r"^[A-Za-z0-9_.:@-]+$")
#: a nodes file is a few lines per node; anything larger is not one
MAX_NODES_FILE_BYTES = 1 << 20
#: seconds an SSH connection may take to open, at most
MAX_SSH_TIMEOUT = 300.0
_SSH_KEYS = {
    "host",
    "user",
    "port",
    "key",
    "password_env",
    "known_hosts",
    "insecure_host_keys",
    "sudo",
}
_NODE_KEYS = _SSH_KEYS | {"backend", "container", "workdir", "address", "timeout"}


def add_node_options(parser: argparse.ArgumentParser, local: bool = True) -> None:
    """The node options, in their own help group. local=False leaves out the options of the
    embedded cluster (for commands that have their own --name)."""
    g = parser.add_argument_group(
        "nodes",
        "Where the test runs. Default: the local network-namespace cluster (needs root).",
    )
    g.add_argument("--nodes", metavar="N1,N2,...", help="SSH hosts (or containers with --docker)")
    g.add_argument(
        "--nodes-file",
        metavar="FILE",
        help="one [user@]host[:port] per line (# comments), or TOML with per-node settings",
    )
    g.add_argument("--docker", action="store_true", help="--nodes are docker container names")
    if local:
        g.add_argument(
            "--node-count",
            type=int,
            default=None,
            metavar="N",
            help="size of the local cluster (default: the existing cluster's size, or "
            f"{localnet.DEFAULT_NODE_COUNT} when it is created; a different size rebuilds it)",
        )
        g.add_argument(
            "--force-node-count",
            action="store_true",
            help="create a local cluster larger than this machine's estimated capacity",
        )
        g.add_argument(
            "--cluster-name",
            default=localnet.DEFAULT_NAME,
            metavar="NAME",
            help=f"local cluster name (default {localnet.DEFAULT_NAME})",
        )
    g.add_argument("--ssh-user", default="root", help="SSH user (default root; others use sudo -n)")
    g.add_argument("--ssh-key", metavar="FILE", help="SSH private key (default: agent and ~/.ssh)")
    g.add_argument("--ssh-port", type=int, default=22, help="SSH port (default 22)")
    g.add_argument(
        "--ssh-password-env",
        metavar="VAR",
        help=f"read the SSH password from this environment variable (e.g. {PASSWORD_ENV_DEFAULT})",
    )
    g.add_argument(
        "--ssh-known-hosts", metavar="FILE", help="known_hosts (default ~/.ssh/known_hosts)"
    )
    g.add_argument(
        "--ssh-insecure-host-keys",
        action="store_true",
        help="accept any SSH host key (only on networks you trust)",
    )
    g.add_argument(
        "--ssh-timeout", type=float, default=10.0, metavar="SEC", help="SSH connect timeout"
    )


@dataclass(frozen=True)
class NodeSpec:
    """One node as configured, before any connection is made."""

    name: str
    backend: str  # "ssh" or "docker"
    host: str
    workdir: str
    ssh: SshConfig | None = None
    container: str | None = None


def node_specs(args: argparse.Namespace) -> list[NodeSpec] | None:
    """The remote nodes the options list (--nodes, --nodes-file), parsed and checked without
    reaching any of them; None for the local cluster. Contradicting options are ConfigError:
    this runs before any node is touched."""
    nodes_opt = getattr(args, "nodes", None)
    nodes_file = getattr(args, "nodes_file", None)
    docker = getattr(args, "docker", False)
    if nodes_opt is not None and nodes_file is not None:
        raise ConfigError("--nodes and --nodes-file are mutually exclusive")
    if docker and not (nodes_opt or nodes_file):
        raise ConfigError("--docker needs --nodes CONTAINER1,CONTAINER2,...")
    if nodes_opt is None and nodes_file is None:
        count = getattr(args, "node_count", None)
        if count is not None and not 1 <= count <= localnet.MAX_NODES:
            raise ConfigError(f"--node-count {count}: must be 1-{localnet.MAX_NODES}")
        return None
    given = "--nodes" if nodes_opt is not None else "--nodes-file"
    if getattr(args, "node_count", None) is not None:
        raise ConfigError(
            f"--node-count sizes the local cluster, but {given} names the nodes themselves; "
            "give one or the other"
        )
    if getattr(args, "force_node_count", False):
        raise ConfigError(f"--force-node-count applies to the local cluster, not to {given}")
    if nodes_file is not None:
        return load_nodes_file(nodes_file, ssh_defaults(args), docker)
    return specs_from_list(nodes_opt, ssh_defaults(args), docker)


def planned_node_count(args: argparse.Namespace) -> int:
    """How many nodes the options select, known before any node is touched: the listed
    nodes, --node-count, the size of the existing local cluster, else the default size."""
    specs = node_specs(args)
    if specs is not None:
        return len(specs)
    count = getattr(args, "node_count", None)
    if count is not None:
        return int(count)
    state = localnet.read_state(getattr(args, "cluster_name", localnet.DEFAULT_NAME))
    return state.node_count if state is not None else localnet.DEFAULT_NODE_COUNT


def open_nodes(
    args: argparse.Namespace,
    create: bool = True,
    check: bool = True,
    node_cost: localnet.NodeCost | None = None,
) -> Cluster:
    """The Cluster the options select. create: make the local cluster if needed (otherwise it
    must exist). check: run `true` on every remote node first, so that an unreachable host or
    a refused key surfaces now, as one line naming the node. node_cost: what one node of the
    target costs, for the local cluster's capacity estimate (default: a raft-kv node)."""
    specs = node_specs(args)
    if specs is None:
        name = getattr(args, "cluster_name", localnet.DEFAULT_NAME)
        count = getattr(args, "node_count", None)
        if create:
            existed = localnet.read_state(name) is not None
            cluster = localnet.up(
                name,
                node_count=count,
                rebuild=count is not None,
                force=bool(getattr(args, "force_node_count", False)),
                cost=node_cost or localnet.DEFAULT_COST,
            )
            cluster.created_here = not existed
            return cluster
        return localnet.open_cluster(name)
    cluster = build_cluster(specs)
    if check:
        try:
            check_reachable(cluster)
        except BaseException:
            cluster.close()
            raise
    return cluster


def own_kernels(args: argparse.Namespace) -> bool:
    """Whether every node the options select runs a kernel of its own, as far as the options
    say before any node is reached: SSH hosts do; the local cluster and docker containers run
    on this machine's kernel. An SSH host may still be this machine: what must be sure asks
    the node itself (`faketime.shares_controller_kernel`)."""
    specs = node_specs(args)
    return specs is not None and all(s.backend == "ssh" for s in specs)


def ssh_defaults(args: argparse.Namespace) -> SshConfig:
    port = getattr(args, "ssh_port", 22)
    if not 1 <= port <= 65535:
        raise ConfigError(f"--ssh-port {port}: must be 1-65535")
    timeout = getattr(args, "ssh_timeout", 10.0)
    if not 0 < timeout <= MAX_SSH_TIMEOUT:  # also refuses nan
        raise ConfigError(f"--ssh-timeout {timeout}: must be a number of seconds up to 300")
    return SshConfig(
        user=getattr(args, "ssh_user", "root"),
        port=port,
        key_file=getattr(args, "ssh_key", None),
        password_env=getattr(args, "ssh_password_env", None),
        known_hosts=getattr(args, "ssh_known_hosts", None),
        insecure_host_keys=getattr(args, "ssh_insecure_host_keys", False),
        connect_timeout=getattr(args, "ssh_timeout", 10.0),
    )


def specs_from_list(text: str, ssh: SshConfig, docker: bool) -> list[NodeSpec]:
    """--nodes: a comma list of `[user@]host[:port]` (container names with --docker), read
    exactly as the lines of a plain nodes file are; every problem is one line naming --nodes."""
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise ConfigError(f"--nodes {text!r}: empty node name")
    if not docker and all(n.isdigit() for n in names) and len(names) == 1:
        raise ConfigError(
            f"--nodes {names[0]}: --nodes names the nodes (SSH hosts); for a local cluster of "
            f"{names[0]} nodes use --node-count {names[0]}"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"--nodes: duplicate node {dupes[0]!r}")
    try:
        return parse_plain_nodes("\n".join(names), "--nodes", ssh, docker)
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


def parse_plain_nodes(text: str, path: str, ssh: SshConfig, docker: bool) -> list[NodeSpec]:
    """A plain nodes file: one `[user@]host[:port]` per line (an IPv6 address in brackets
    when a port follows; with --docker, one container name); blank lines and `#` comments
    are ignored. The node is named after its host, as with --nodes, or `host:port` when
    several lines name one host. A malformed line is one error naming the file and line."""
    form = "container name" if docker else "[user@]host[:port]"
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
        if docker and (user or port is not None or m is None or m.group("ip6")):
            raise InputError(
                f"malformed node line {line!r} (with --docker: one container name per line)",
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
    seen: dict[tuple[str, int], int] = {}
    for line_no, host, user, port in entries:
        key = (host, port if port is not None else ssh.port)
        if key in seen:
            raise InputError(f"duplicate node {host!r} (first on line {seen[key]})", path, line_no)
        seen[key] = line_no
        name = f"{host}:{key[1]}" if host in shared else host
        cfg = SshConfig(
            user=user or ssh.user,
            port=port if port is not None else ssh.port,
            key_file=ssh.key_file,
            password_env=ssh.password_env,
            known_hosts=ssh.known_hosts,
            insecure_host_keys=ssh.insecure_host_keys,
            connect_timeout=ssh.connect_timeout,
        )
        specs.append(
            NodeSpec(
                name=name,
                backend="docker" if docker else "ssh",
                host=host,
                workdir=f"{REMOTE_WORKDIR}/{name}",
                ssh=None if docker else cfg,
                container=host if docker else None,
            )
        )
    return specs


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def load_nodes_file(path: str, ssh: SshConfig, docker: bool) -> list[NodeSpec]:
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
    Per-node keys: host, user, port, key, password_env, known_hosts, insecure_host_keys,
    sudo, backend ("ssh" or "docker"), container, workdir. Errors name the file, the line of
    the node's table and the key."""
    text = read_text(path, "nodes file", MAX_NODES_FILE_BYTES)
    if not is_toml_nodes_file(text):
        return parse_plain_nodes(text, path, ssh, docker)
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
            if key not in _NODE_KEYS:
                raise InputError(
                    f"{where}: unknown key {key!r} (known: {', '.join(sorted(_NODE_KEYS))})",
                    path,
                    line if key in raw else line_of("defaults"),
                )

        def get(key, kind, default, where=where, line=line, merged=merged):
            value = merged.get(key, default)
            kinds = kind if isinstance(kind, tuple) else (kind,)
            wrong = not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
            if value is not None and wrong:
                label = "number" if float in kinds else kinds[0].__name__
                raise InputError(f"{where}.{key}: must be {label}, not {value!r}", path, line)
            return value

        backend = get("backend", str, "docker" if docker else "ssh")
        if backend not in ("ssh", "docker"):
            raise InputError(
                f"{where}.backend: must be 'ssh' or 'docker', not {backend!r}", path, line
            )
        host = get("host", str, name)
        port = get("port", int, ssh.port)
        if not 1 <= port <= 65535:
            raise InputError(f"{where}.port: must be 1-65535, not {port}", path, line)
        cfg = SshConfig(
            user=get("user", str, ssh.user),
            port=port,
            key_file=get("key", str, ssh.key_file),
            password_env=get("password_env", str, ssh.password_env),
            known_hosts=get("known_hosts", str, ssh.known_hosts),
            insecure_host_keys=get("insecure_host_keys", bool, ssh.insecure_host_keys),
            connect_timeout=float(get("timeout", (int, float), ssh.connect_timeout)),
            sudo=get("sudo", bool, None),
        )
        specs.append(
            NodeSpec(
                name=name,
                backend=backend,
                host=get("address", str, host) if backend == "docker" else host,
                workdir=get("workdir", str, f"{REMOTE_WORKDIR}/{name}"),
                ssh=cfg if backend == "ssh" else None,
                container=get("container", str, name) if backend == "docker" else None,
            )
        )
    return specs


def build_cluster(specs: list[NodeSpec]) -> Cluster:
    """Nodes and remotes for specs; docker nodes get their container's IP as address."""
    for s in specs:  # every name first: a bad one is refused before any engine is asked
        if s.backend == "docker":
            validate_container(s.name, s.container or s.name)
    kinds = {s.backend for s in specs}
    nodes: list[Node] = []
    remotes: dict[str, Remote] = {}
    for s in specs:
        if s.backend == "docker":
            assert s.container is not None
            address = s.host if s.host != s.name else container_address(s.name, s.container)
            node = Node(s.name, address, s.workdir, extra={"container": s.container})
            remotes[s.name] = DockerRemote(node, s.container)
        else:
            node = Node(s.name, s.host, s.workdir)
            remotes[s.name] = SshRemote(node, s.ssh, host=s.host)
        nodes.append(node)
    cluster = Cluster(
        kind=kinds.pop() if len(kinds) == 1 else "mixed",
        nodes=nodes,
        remotes=remotes,
        name="remote",
    )
    cluster.healer = lambda: heal_nodes(cluster)
    return cluster


def container_address(node: str, container: str, timeout: float = 30.0) -> str:
    """The container's IP on its (first) docker network, which the controller can reach."""
    probe = DockerRemote(Node(node, "", "/"), container)
    try:
        probe.run(["true"], timeout=timeout)  # clear errors: no such container, engine down
    finally:
        probe.close()
    res = run_argv(
        node,
        inspect_argv(container, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"),
        timeout=timeout,
    )
    ips = res.stdout.split()
    if not ips:
        raise ConfigError(
            f"node {node}: container {container} has no IP address on a docker network"
        )
    return ips[0]


def check_reachable(cluster: Cluster, timeout: float = 30.0) -> None:
    """Run `true` on every node at once; raise the first node's error (one line)."""
    if cluster.kind == "local":
        return
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


# ---------------------------------------------------------------- healing SSH / docker nodes

#: Undo on one SSH / docker node what dsjepsen may have left there, touching nothing else:
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
    """Undo dsjepsen's leftovers on one SSH or docker node (see _HEAL); what was undone."""
    argv = [
        "sh",
        "-c",
        _HEAL,
        "dsj-heal",
        "stop" if stop_processes else "cont",
        remote.node.workdir,
    ]
    return remote.run(argv, timeout=timeout).stdout.splitlines()


def heal_nodes(cluster: Cluster, stop_processes: bool = False) -> dict[str, list[str]]:
    """`heal_node` on every node at once: {node: [what was undone]}. After a killed run this
    is what `dsjepsen cluster heal --nodes ...` runs (with stop_processes: the crashed run's
    target goes too); a run calls it before setup and after its faults."""
    if cluster.kind == "local":
        raise ConfigError("heal_nodes is for SSH and docker nodes; local clusters heal by name")
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(cluster.nodes))) as pool:
        futures = {
            n.name: pool.submit(heal_node, cluster.remote(n.name), stop_processes)
            for n in cluster.nodes
        }
        return {name: futures[name].result() for name in cluster.names}
