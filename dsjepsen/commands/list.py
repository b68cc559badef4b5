"""`dsjepsen list targets|workloads|nemeses`: what a test can be made of, one line each.

Reads only the registry and the nemesis catalog, never imports a target, so it works even when
one piece is missing (that piece is then marked unavailable instead of breaking the listing).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

KINDS = ("targets", "workloads", "nemeses")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "list", help="list targets, workloads or nemeses", description=__doc__.splitlines()[0]
    )
    p.add_argument("kind", nargs="?", choices=KINDS, help="what to list (default: everything)")
    p.set_defaults(func=run)


def _available(path: str) -> str:
    module = path.partition(":")[0]
    try:
        return "" if importlib.util.find_spec(module) is not None else "  (not installed)"
    except (ImportError, ValueError):
        return "  (not installed)"


def lines(kind: str) -> list[str]:
    from dsjepsen.harness import registry

    if kind == "targets":
        out = []
        for spec in registry.TARGETS.values():
            extra = []
            bugs = spec.bugs()
            if bugs:
                extra.append("bugs: " + ", ".join(bugs))
            if spec.supports_serializable_reads:
                extra.append("option: --serializable-reads")
            tail = f" [{'; '.join(extra)}]" if extra else ""
            out.append(f"{spec.name:<12} {spec.description}{tail}{_available(spec.path)}")
        return out
    if kind == "workloads":
        return [
            f"{w.name:<12} {w.description}{_available(w.path)}" for w in registry.WORKLOADS.values()
        ]
    try:
        catalog = registry.nemesis_catalog()
    except Exception as e:  # noqa: BLE001 - say what is wrong, keep listing
        return [f"(nemesis catalog unavailable: {e})"]
    return [f"{'none':<26} no faults (the default)"] + [
        f"{name:<26} {desc}" for name, desc in catalog.items()
    ]


def run(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(KINDS)
    for i, kind in enumerate(kinds):
        if len(kinds) > 1:
            print(("\n" if i else "") + f"{kind}:")
        for line in lines(kind):
            print(("  " if len(kinds) > 1 else "") + line)
    return 0
