"""`dsjepsen doctor`: what this machine supports, tested by doing it, and what each missing
piece disables. Exit 0 when the default local cluster can run.

Kernel features are probed for real inside a throwaway `dsj-doctor-<pid>` namespace (a dummy
interface, a netem and a tbf qdisc, an iptables chain with a statistic match), because a
binary being installed says nothing about the kernel having e.g. sch_netem.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import json
import os
import shutil
from dataclasses import asdict, dataclass

from dsjepsen.cluster import localnet
from dsjepsen.cluster.control.base import RemoteError, Result
from dsjepsen.cluster.control.docker import docker_engine_answers
from dsjepsen.cluster.control.local import run_argv
from dsjepsen.errors import EXIT_HARNESS

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


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check what this machine supports",
        description="Check (by trying) what this machine supports and what each missing piece "
        "disables. Exit 0 when the default local cluster can run.",
        epilog="example: dsjepsen doctor --json",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    checks = run_checks()
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        print(render(checks))
    usable = can_run_local(checks)
    if not args.json:
        print()
        print(
            "the default local cluster can run here"
            if usable
            else "the default local cluster cannot run here: fix the required (*) checks"
        )
    return 0 if usable else EXIT_HARNESS


def can_run_local(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.required)


def render(checks: list[Check]) -> str:
    rows = [("check", "status", "detail", "without it")]
    for c in checks:
        status = "ok" if c.ok else ("MISSING*" if c.required else "missing")
        detail = c.detail if len(c.detail) <= 72 else c.detail[:69] + "..."
        rows.append((c.name, status, detail, "" if c.ok else c.disables))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for r in rows:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
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


def run_checks() -> list[Check]:
    checks: list[Check] = []
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
        checks += _probe_namespace(tc is not None)
    elif ip and not admin:
        checks.append(Check("ip netns", False, "not tried (needs root)", "the local cluster", True))
    if tc is None:
        checks.append(Check("tc", False, "not installed", "packet faults (delay, loss, rate)"))
    checks.append(_faketime())
    checks.append(_sshd())
    checks.append(_ssh_client())
    reason = docker_engine_answers()
    checks.append(
        Check("docker engine", reason is None, reason or "answers", "the --docker backend")
    )
    checks.append(_etcd())
    checks += _plugins()
    return checks


def _plugins() -> list[Check]:
    """Every installed extension that does not load, one line each (the others still work)."""
    from dsjepsen import plugins
    from dsjepsen.nemesis import catalog

    broken = plugins.broken()
    broken += [b for b in catalog.broken() if b not in broken]  # fault names taken twice
    if not broken:
        loaded = sum(len(plugins.available(kind)) for kind in plugins.GROUPS)
        return [Check("extensions", True, f"{loaded} load", "nothing")]
    return [Check(f"extension {b.name}", False, b.line(), f"{b.kind} {b.name}") for b in broken]


def _probe_namespace(have_tc: bool) -> list[Check]:
    """Everything kernel-side, tried in a throwaway namespace that is always deleted."""
    ns = f"dsj-doctor-{os.getpid()}"
    checks: list[Check] = []
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
        return checks
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
        stat = inside(
            "iptables", "-w", "-A", "DSJ-DOCTOR", "-m", "statistic", "--mode", "random",
            "--probability", "0.5", "-j", "DROP",
        )  # fmt: skip
        checks.append(
            Check(
                "iptables statistic match",
                stat.exit == 0,
                "random packet loss via iptables works" if stat.exit == 0 else _why(stat),
                "packet-loss faults through iptables",
            )
        )
        if have_tc and links[0].exit == 0:
            netem = inside("tc", "qdisc", "add", "dev", "dsjv0", "root", "netem", "delay", "10ms")
            detail = "netem qdisc works"
            if netem.exit != 0:
                detail = (
                    "this kernel has no sch_netem (tc: qdisc kind unknown)"
                    if "unknown" in (netem.stderr + netem.stdout).lower()
                    else _why(netem)
                )
            checks.append(
                Check(
                    "tc netem",
                    netem.exit == 0,
                    detail,
                    "delay, jitter, duplication and reordering faults "
                    "(packet loss still works through iptables statistic)",
                )
            )
            inside("tc", "qdisc", "del", "dev", "dsjv0", "root")
            tbf = inside(
                "tc", "qdisc", "add", "dev", "dsjv0", "root", "tbf", "rate", "1mbit",
                "burst", "32kbit", "latency", "400ms",
            )  # fmt: skip
            checks.append(
                Check(
                    "tc tbf",
                    tbf.exit == 0,
                    "rate limiting works" if tbf.exit == 0 else _why(tbf),
                    "bandwidth-limit faults",
                )
            )
    finally:
        # everything made above lives in the namespace: deleting it removes all of it
        with contextlib.suppress(Exception):
            _run(["ip", "netns", "del", ns])
    return checks


def _faketime() -> Check:
    found = sorted({p for g in FAKETIME_GLOBS for p in glob.glob(g)})
    return Check(
        "libfaketime",
        bool(found),
        found[0] if found else "libfaketime.so.1 not found",
        "clock faults (install libfaketime)",
    )


def _sshd() -> Check:
    path = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    detail = "not installed"
    if path:
        res = _run([path, "-V"])
        detail = f"{path} ({_why(res)})"
    return Check(
        "sshd", path is not None, detail, "the SSH backend's tests (install openssh-server)"
    )


def _ssh_client() -> Check:
    try:
        fabric = importlib.import_module("fabric")
        paramiko = importlib.import_module("paramiko")
    except ImportError as e:
        return Check("fabric + paramiko", False, str(e), "the SSH backend (--nodes)")
    return Check(
        "fabric + paramiko",
        True,
        f"fabric {fabric.__version__}, paramiko {paramiko.__version__}",
        "the SSH backend (--nodes)",
    )


def _etcd() -> Check:
    path = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)
    detail = "not installed"
    if path:
        res = _run([path, "--version"])
        detail = f"{path} ({res.stdout.splitlines()[0] if res.stdout.strip() else _why(res)})"
    return Check("etcd", path is not None, detail, "the etcd target (install etcd-server)")
