"""`dsjepsen doctor`: what this machine supports, tested by doing it, and what each missing
piece disables. Exit 0 when the default local cluster can run and every installed extension
loads; 254 when an extension does not load (a configuration error: its line says why, whole,
causes included); 255 when the local cluster cannot run here.

Kernel features are probed for real inside a throwaway `dsj-doctor-<pid>` namespace (a veth
pair, a bridge, an iptables chain, and what the packet faults would install: each netem qdisc,
the htb + tbf tree, a statistic rule), because a binary being installed says nothing about the
kernel having e.g. sch_netem.

Packet faults are then listed per node: which of them works on each node and how (netem,
iptables statistic, tbf), or why it is refused, tried on the nodes themselves with the same
probe the packet nemesis uses to choose its method (`nemesis.packet.probe_kernel`). The nodes
are the ones `--nodes` / `--nodes-file` select (SSH or docker), else the local cluster when one
is up, else this machine's kernel, which any local cluster's nodes would share. Nodes named by
`--nodes` / `--nodes-file` are also asked whether the disk faults work there, by mounting the
fault file system on each and cutting its power (`faultmount.node_self_test`).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from dsjepsen.cluster import clockshim, faultmount, localnet
from dsjepsen.cluster.control.base import Node, RemoteError, Result
from dsjepsen.cluster.control.local import LocalRemote, run_argv
from dsjepsen.cluster.nodes import add_node_options, open_nodes
from dsjepsen.errors import EXIT_BAD_CONFIG, EXIT_HARNESS, DsjError
from dsjepsen.nemesis.packet import FAULTS, METHODS, KernelProbe, probe_kernel, probe_nodes

FAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    disables: str  # what does not work without it
    required: bool = False  # needed by the default local cluster
    #: set on the per-node packet fault entries (name "<fault> on <node>")
    node: str | None = None
    #: the detail is shown whole, never cut (a broken plugin's error ends with its cause)
    whole: bool = False


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check what this machine supports",
        description="Check (by trying) what this machine supports and what each missing piece "
        "disables, then which packet faults work on each node (the nodes of --nodes / "
        "--nodes-file, else the local cluster when it is up, else this kernel). Exit 0 when "
        "the default local cluster can run and every extension loads, 254 when an extension "
        "does not load, 255 when the local cluster cannot run.",
        epilog="examples: dsjepsen doctor --json; dsjepsen doctor --nodes-file nodes.txt",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--cluster-name",
        default=localnet.DEFAULT_NAME,
        metavar="NAME",
        help="list packet faults on this local cluster's nodes when it is up "
        f"(default {localnet.DEFAULT_NAME})",
    )
    add_node_options(p, local=False)
    p.set_defaults(func=run)


def run(args) -> int:
    checks, kernel = _run_checks()
    packet = packet_faults(args, kernel)
    disk = disk_faults(args)
    if args.json:
        print(json.dumps([asdict(c) for c in checks + packet.checks() + disk], indent=2))
    else:
        print(render(checks))
        print()
        print(packet.render())
        if disk:
            print()
            print(render_disk(disk))
    usable = can_run_local(checks)
    broken = [c for c in checks if c.name.startswith("extension ") and not c.ok]
    if not args.json:
        print()
        print(
            "the default local cluster can run here"
            if usable
            else "the default local cluster cannot run here: fix the required (*) checks"
        )
        if broken:
            print(f"{len(broken)} installed extension(s) do not load: fix or remove them")
    if not usable:
        return EXIT_HARNESS
    return EXIT_BAD_CONFIG if broken else 0


def can_run_local(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def render(checks: list[Check]) -> str:
    rows = [("check", "status", "detail", "without it")]
    whole: list[tuple[int, str]] = []
    for c in checks:
        status = "ok" if c.ok else ("MISSING*" if c.required else "missing")
        detail = c.detail if len(c.detail) <= 72 else c.detail[:69] + "..."
        if c.whole and detail != c.detail:
            whole.append((len(rows), c.detail))  # on a line of its own below the row
            detail = "(below)"
        rows.append((c.name, status, detail, "" if c.ok else c.disables))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    below = dict(whole)
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(r[j].ljust(widths[j]) for j in range(3)) + "  " + r[3])
        if i in below:
            lines.append(f"    {below[i]}")
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 10)
    return "\n".join(line.rstrip() for line in lines)


def _run(argv: list[str], timeout: float = 20.0) -> Result:
    try:
        return run_argv("doctor", argv, timeout=timeout, check=False)
    except RemoteError as e:
        return Result(127, "", str(e))


def _why(res: Result) -> str:
    lines = (res.stderr.strip() or res.stdout.strip()).splitlines()
    return lines[-1][:120] if lines else f"exit {res.exit}"


@dataclass
class PacketSupport:
    """Which packet faults work on which node: the nodes' own answers (`probe_kernel`)."""

    where: str  # which nodes, for people
    probes: dict[str, KernelProbe]
    error: str = ""  # why nothing could be listed

    def checks(self) -> list[Check]:
        """One Check per node and fault (named "<fault> on <node>"), for --json."""
        if self.error:
            return [Check("packet faults", False, self.error, "packet faults", node="-")]
        out = []
        for node, probe in self.probes.items():
            for fault in FAULTS:
                s = probe.support(fault)
                disables = f"--nemesis {fault} on {node}"
                out.append(Check(f"{fault} on {node}", s.works, s.shown(), disables, node=node))
        return out

    def render(self) -> str:
        """A grid, node by fault, of the method each fault uses or `refused`; then each
        distinct reason once, with the nodes and faults it refuses."""
        lines = [f"packet faults on {self.where}:"]
        if self.error:
            return "\n".join([*lines, f"  not listed: {self.error}"])
        rows = [("node", *FAULTS)]
        reasons: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
        for node, probe in self.probes.items():
            row = [node]
            for fault in FAULTS:
                s = probe.support(fault)
                row.append(METHODS[s.method] if s.method else "refused")
                if not s.works:
                    nodes, faults = reasons.setdefault(s.why, ({}, {}))
                    nodes[node] = faults[fault] = None
            rows.append(tuple(row))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        for why, (nodes, faults) in reasons.items():
            lines.append(f"refused on {', '.join(nodes)}: {', '.join(faults)}: {why}")
        return "\n".join(lines)


def packet_faults(args, kernel: KernelProbe | None) -> PacketSupport:
    """The packet faults of the nodes the options select; without node options, of the local
    cluster `--cluster-name` when it is up, else of `kernel` (the throwaway namespace's probe:
    this machine's kernel, which a local cluster's nodes would share)."""
    try:
        if getattr(args, "nodes", None) or getattr(args, "nodes_file", None):
            with open_nodes(args, create=False) as cluster:
                return PacketSupport(f"nodes {', '.join(cluster.names)}", probe_nodes(cluster))
        name = getattr(args, "cluster_name", localnet.DEFAULT_NAME)
        if localnet.has_net_admin() and localnet.read_state(name) is not None:
            with localnet.open_cluster(name) as cluster:
                return PacketSupport(f"local cluster {name}", probe_nodes(cluster))
    except DsjError as e:
        return PacketSupport("the selected nodes", {}, str(e).splitlines()[0])
    name = getattr(args, "cluster_name", localnet.DEFAULT_NAME)
    others = [c for c in localnet.list_clusters() if c != name] if localnet.has_net_admin() else []
    where = (
        f"this machine's kernel (local cluster {name} is not up; its nodes would share this "
        "kernel"
        + (f"; up now: {', '.join(others)}, probed with --cluster-name NAME" if others else "")
        + ")"
    )
    if kernel is None:
        return PacketSupport(where, {}, "not tried (needs root, ip and iptables)")
    return PacketSupport(where, {"this kernel": kernel})


def disk_faults(args) -> list[Check]:
    """Whether the disk faults work on each node --nodes / --nodes-file select, tried there:
    those nodes run the fault file system themselves (`faultmount.node_self_test`). Without
    node options, nothing: the local cluster's nodes use this machine's, the "fault file
    system" check above."""
    if not (getattr(args, "nodes", None) or getattr(args, "nodes_file", None)):
        return []
    disables = "disk faults on {}"
    try:
        with open_nodes(args, create=False) as cluster:
            if cluster.shares_controller_files:  # this machine's own fault file system
                works, detail = faultmount.self_test()
                return [
                    Check(f"disk faults on {n}", works, detail, disables.format(n), node=n)
                    for n in cluster.names
                ]
            with ThreadPoolExecutor(max_workers=max(1, len(cluster.names))) as pool:
                futures = {
                    n: pool.submit(faultmount.node_self_test, cluster.remote(n))
                    for n in cluster.names
                }
            return [
                Check(f"disk faults on {n}", *f.result(), disables.format(n), node=n)
                for n, f in futures.items()
            ]
    except DsjError as e:
        return [Check("disk faults", False, str(e).splitlines()[0], "disk faults", node="-")]


def render_disk(checks: list[Check]) -> str:
    """One line per node: whether disk faults work there, and what was seen or why not."""
    lines = ["disk faults on the selected nodes:"]
    for c in checks:
        lines.append(f"  {c.node}: {'works' if c.ok else 'refused'}: {c.detail}")
    return "\n".join(lines)


def run_checks() -> list[Check]:
    """Every machine-wide check (the per-node packet fault list is `packet_faults`)."""
    return _run_checks()[0]


def _run_checks() -> tuple[list[Check], KernelProbe | None]:
    """The checks, and this kernel's packet fault probe (None when it could not be tried)."""
    checks: list[Check] = []
    kernel: KernelProbe | None = None
    admin = localnet.has_net_admin()
    checks.append(
        Check(
            "root / CAP_NET_ADMIN",
            admin,
            "uid 0" if os.geteuid() == 0 else ("CAP_NET_ADMIN" if admin else f"uid {os.geteuid()}"),
            "the local cluster (use --nodes or --docker)",
            required=True,
        )
    )
    ip = shutil.which("ip")
    ipt = shutil.which("iptables")
    tc = shutil.which("tc")
    if ip is None:
        checks.append(Check("ip (iproute2)", False, "not installed", "the local cluster", True))
    if ipt is None:
        checks.append(
            Check("iptables", False, "not installed", "the local cluster and partitions", True)
        )
    if ip and ipt and admin:
        found, kernel = _probe_namespace(tc is not None)
        checks += found
    elif ip and not admin:
        checks.append(Check("ip netns", False, "not tried (needs root)", "the local cluster", True))
    if tc is None:
        checks.append(Check("tc", False, "not installed", "packet faults (delay, loss, rate)"))
    checks.append(_faketime())
    checks.append(_clock_shim())
    checks.append(_faultfs())
    checks.append(_sshd())
    checks += _backends()
    checks.append(_etcd())
    checks.append(_postgres())
    checks += _plugins()
    return checks, kernel


def _plugins() -> list[Check]:
    """Every installed extension that does not load, one line each (the others still work)."""
    from dsjepsen import plugins
    from dsjepsen.nemesis import catalog

    broken = plugins.broken()
    broken += [b for b in catalog.broken() if b not in broken]  # fault names taken twice
    if not broken:
        loaded = sum(len(plugins.available(kind)) for kind in plugins.GROUPS)
        return [Check("extensions", True, f"{loaded} load", "nothing")]
    return [
        Check(f"extension {b.name}", False, b.line(), f"{b.kind} {b.name}", whole=True)
        for b in broken
    ]


def _probe_namespace(have_tc: bool) -> tuple[list[Check], KernelProbe | None]:
    """Everything kernel-side, tried in a throwaway namespace that is always deleted; and the
    packet fault probe of this kernel (None when no namespace could be made)."""
    ns = f"dsj-doctor-{os.getpid()}"
    checks: list[Check] = []
    kernel: KernelProbe | None = None
    added = _run(["ip", "netns", "add", ns])
    checks.append(
        Check(
            "ip netns",
            added.exit == 0,
            "namespaces work" if added.exit == 0 else _why(added),
            "the local cluster",
            required=True,
        )
    )
    if added.exit != 0:
        return checks, None
    try:

        def inside(*argv: str) -> Result:
            return _run(["ip", "netns", "exec", ns, *argv])

        links = [
            inside("ip", "link", "add", "dsjv0", "type", "veth", "peer", "name", "dsjv1"),
            inside("ip", "link", "add", "dsjbr0", "type", "bridge"),
            inside("ip", "link", "set", "dsjv0", "up"),
        ]
        bad = [r for r in links[:2] if r.exit != 0]
        checks.append(
            Check(
                "veth + bridge",
                not bad,
                "work" if not bad else _why(bad[0]),
                "the local cluster",
                required=True,
            )
        )
        version = _run(["iptables", "-V"]).stdout.strip()
        chain = inside("iptables", "-w", "-N", "DSJ-DOCTOR")
        checks.append(
            Check(
                "iptables",
                chain.exit == 0,
                version if chain.exit == 0 else _why(chain),
                "the local cluster and partition faults",
                required=True,
            )
        )
        # what the packet faults install, tried as their nemesis tries it on a node
        kernel = probe_kernel(LocalRemote(Node("this kernel", "", "/"), ns))
        checks.append(
            Check(
                "iptables statistic match",
                kernel.statistic is None,
                kernel.statistic or "random packet loss via iptables works",
                "packet-loss faults through iptables",
            )
        )
        if have_tc:
            netem = kernel.netem["packet-delay"]
            checks.append(
                Check(
                    "tc netem",
                    netem is None,
                    netem or "netem qdiscs work",
                    "delay, jitter, duplication and reordering faults "
                    "(packet loss still works through iptables statistic)",
                )
            )
            checks.append(
                Check(
                    "tc tbf",
                    kernel.tbf is None,
                    kernel.tbf or "rate limiting (htb + tbf) works",
                    "bandwidth-limit faults",
                )
            )
    finally:
        # everything made above lives in the namespace: deleting it removes all of it
        with contextlib.suppress(Exception):
            _run(["ip", "netns", "del", ns])
    return checks, kernel


def _faketime() -> Check:
    found = sorted({p for g in FAKETIME_GLOBS for p in glob.glob(g)})
    return Check(
        "libfaketime",
        bool(found),
        found[0] if found else "libfaketime.so.1 not found",
        "clock faults (install libfaketime)",
    )


def _clock_shim() -> Check:
    """The project's clock shim, built and tried on `date` (clock faults on servers that hang
    under libfaketime, Redis)."""
    works, detail = clockshim.self_test()
    return Check("clock shim", works, detail, "clock faults on redis (install gcc)")


def _faultfs() -> Check:
    """The disk faults' file system, mounted and power-cut for real in a temporary directory
    (they run on this machine for the local cluster's nodes, which share its mounts)."""
    works, detail = faultmount.self_test()
    return Check("fault file system", works, detail, "disk faults (install fuse3 and mfusepy)")


def _sshd() -> Check:
    path = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    detail = "not installed"
    if path:
        res = _run([path, "-V"])
        detail = f"{path} ({_why(res)})"
    return Check(
        "sshd", path is not None, detail, "the SSH backend's tests (install openssh-server)"
    )


def _backends() -> list[Check]:
    """What each node backend needs of this machine, as the backend itself says and tries
    (the docker engine answering, the SSH library importing, a plugin's own)."""
    from dsjepsen.cluster.backend import backend_classes

    checks = []
    for name, cls in backend_classes().items():
        try:
            problems = cls.machine_problems()
        except Exception as e:  # noqa: BLE001 - a backend's check that fails says so
            problems = [(f"backend {name}", f"{type(e).__name__}: {e}", "")]
        for what, why, detail in problems:
            checks.append(Check(what, why is None, why or detail, f"the {name} backend"))
    return checks


def _postgres() -> Check:
    """PostgreSQL's server where Debian keeps it (off PATH), and psycopg for the client."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major, reverse=True)
    path = found[0] if found else shutil.which("postgres")
    detail = "not installed"
    if path:
        res = _run([path, "--version"])
        detail = f"{path} ({res.stdout.strip() if res.stdout.strip() else _why(res)})"
    try:
        import psycopg  # noqa: F401 - only asked whether it imports
    except ImportError as e:
        return Check("postgres", False, f"psycopg does not import: {e}", "the postgres target")
    return Check("postgres", path is not None, detail, "the postgres target (install postgresql)")


def _major(path: str) -> int:
    """The major version in /usr/lib/postgresql/<major>/bin/postgres (0 when not a number)."""
    part = path.split("/")[-3]
    return int(part) if part.isdigit() else 0


def _etcd() -> Check:
    path = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)
    detail = "not installed"
    if path:
        res = _run([path, "--version"])
        detail = f"{path} ({res.stdout.splitlines()[0] if res.stdout.strip() else _why(res)})"
    return Check("etcd", path is not None, detail, "the etcd target (install etcd-server)")
