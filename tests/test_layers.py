"""The layering holds: no module imports a layer above its own, not even inside a function or
for type checking only.

Layers (docs/architecture.md): `cluster/` is the floor of node control; `targets/` and
`nemesis/` stand on it; `workloads/` stands on the op vocabulary and the checkers; the run layer
(`harness/`) composes them; `commands/` and `cli` are the CLI. `checkers/`, `reports/`,
`history` and `formats/` are pure: data in, result out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dsjepsen"

BASE = {"base"}
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "history": BASE,
    "checkers": BASE | {"history"},
    "reports": BASE | {"history", "checkers"},
    "cluster": BASE,
    "targets": BASE | {"history", "cluster"},
    "nemesis": BASE | {"history", "cluster", "targets"},
    "workloads": BASE | {"history", "checkers"},
    "harness": BASE | {"history", "checkers", "cluster", "targets", "nemesis", "workloads"},
    "commands": BASE
    | {"history", "checkers", "reports", "cluster", "targets", "nemesis", "workloads", "harness"},
}
ALLOWED["api"] = ALLOWED["commands"]
ALLOWED["cli"] = ALLOWED["commands"] | {"commands", "api"}
#: top-level modules and the layer each belongs to
MODULES = {
    "__init__": "base",
    "errors": "base",
    "edn": "base",
    "options": "base",
    "plugins": "base",
    "files": "base",
    "machine": "base",
    "history": "history",
    "faults": "history",
    "formats": "history",
    "cli": "cli",
    "api": "api",
    "pytest_plugin": "api",
    "__main__": "cli",
}


def layer_of(parts: list[str]) -> str:
    """The layer of dsjepsen.<parts...>."""
    head = parts[0] if parts else "__init__"
    if head in MODULES:
        return MODULES[head]
    if head in ALLOWED:
        return head
    raise AssertionError(f"dsjepsen.{'.'.join(parts)} belongs to no layer: add it to the table")


def imported(tree: ast.AST, module_parts: list[str]) -> list[tuple[int, list[str]]]:
    """(line, dsjepsen module path parts) of every import of a dsjepsen module."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "dsjepsen":
                    out.append((node.lineno, alias.name.split(".")[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module_parts[: len(module_parts) - node.level]
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "dsjepsen":
                mod = node.module.split(".")[1:]
            else:
                continue
            if mod:
                out.append((node.lineno, mod))
            else:  # from dsjepsen import x, y: each name is a module or a base attribute
                out += [(node.lineno, [a.name]) for a in node.names]
    return out


def sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_upward_import(path: Path) -> None:
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    own = layer_of(list(rel))
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for line, mod in imported(tree, ["dsjepsen", *rel][1:]):
        if mod and mod[0] == "__version__":
            continue
        other = layer_of(mod)
        if other != own and other not in ALLOWED[own]:
            bad.append(f"{path.name}:{line} ({own}) imports dsjepsen.{'.'.join(mod)} ({other})")
    assert not bad, "; ".join(bad)


def test_the_table_catches_an_upward_import(tmp_path: Path) -> None:
    tree = ast.parse("def f():\n    from dsjepsen.harness.config import TestConfig\n")
    [(line, mod)] = imported(tree, ["checkers", "x"])
    assert line == 2 and layer_of(mod) == "harness" and "harness" not in ALLOWED["checkers"]
