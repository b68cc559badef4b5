"""`dsjepsen list [targets|workloads|nemeses|checkers|models|backends]`: what a test can be made of.

Everything comes from the entry-point registries, built-ins and plugins alike. A plugin that
does not load is listed as one line saying why, and the rest are listed as usual.
"""

from __future__ import annotations

import argparse
from typing import Any

from dsjepsen import plugins

KINDS = ("targets", "workloads", "nemeses", "checkers", "models", "backends")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "list",
        help="list targets, workloads, faults, checkers, models or node backends",
        description=__doc__.splitlines()[0],
        epilog="example: dsjepsen list targets",
    )
    p.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: everything)")
    p.set_defaults(func=run)


def _options(ext: Any) -> list[str]:
    return [f"    {o.describe()}" for o in getattr(ext, "options", ())]


def lines(kind: str) -> list[str]:
    from dsjepsen.harness.config import supported_workloads
    from dsjepsen.nemesis import catalog

    out: list[str] = []
    if kind == "targets":
        for name, t in plugins.available("targets").items():
            out.append(f"{name:<12} {t.description}")
            out.append(f"    workloads: {', '.join(supported_workloads(t)) or 'none'}")
            out += _options(t)
    elif kind == "workloads":
        for name, w in plugins.available("workloads").items():
            out.append(f"{name:<12} {w.description}")
            out.append(f"    ops: {', '.join(sorted(w.needs))}")
            out += _options(w)
    elif kind == "nemeses":
        out.append(f"{'none':<26} no faults (the default)")
        for name, package in catalog.fault_catalog().items():
            out.append(f"{name:<26} {package.faults[name]}")
        for package in dict.fromkeys(type(p) for p in catalog.fault_catalog().values()):
            out += _options(package)
    elif kind == "backends":
        for name, b in plugins.available("backends").items():
            shared = [w for w, on in (("kernel", b.shares_kernel), ("files", b.shares_files)) if on]
            how = f"--nodes {b.metavar}1,..." if b.lists_nodes else "a cluster of its own"
            out.append(f"{name:<16} {b.description}")
            out.append(f"    {how}; shares with this machine: {', '.join(shared) or 'nothing'}")
    else:
        for name, ext in plugins.available(kind).items():
            doc = getattr(ext, "description", "") or (ext.__doc__ or "").strip().split("\n")[0]
            out.append(f"{name:<16} {doc}")
    broken = catalog.broken() if kind == "nemeses" else plugins.broken(kind)
    out += [f"(broken) {b.line()}" for b in broken]
    return out


def run(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    for i, kind in enumerate(kinds):
        if len(kinds) > 1:
            print(("\n" if i else "") + f"{kind}:")
        for line in lines(kind):
            print(("  " if len(kinds) > 1 else "") + line)
    return 0
