"""The layering holds: no module imports a layer above its own, not even inside a function or
for type checking only.

Layers (docs/architecture.md): `cluster/` is the floor of node control; `targets/` and
`nemesis/` stand on it; `workloads/` stands on the op vocabulary and the checkers; the run layer
(`harness/`) composes them; `commands/` and `cli` are the CLI. `checkers/`, `reports/`,
`history` and `formats/` are pure: data in, result out.

Within a layer, modules may import each other, but never in a circle (a circle through a
function-level import is still one: it is how `history` and `formats/` once leaned on each
other), and no module imports another module's private (underscore) names, which are private
so that their module can change them: a name two modules share is public, in the module that
owns it. Imports inside `if TYPE_CHECKING:` blocks count for the layers but not for circles:
they never run, and two classes that name each other in annotations (the run context and the
workers it holds) describe one structure rather than an order of imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
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


# ---------------------------------------------------------------------------------------------
# Circles and private names


def module_name(root: Path, path: Path) -> str:
    """`dsjepsen.a.b` for root/a/b.py, `dsjepsen.a` for root/a/__init__.py."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for inner in node.body:
                    out.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return out


def import_targets(
    tree: ast.AST, module: str, is_package: bool, modules: set[str]
) -> Iterator[tuple[ast.AST, str, str | None]]:
    """(node, imported module, imported name or None) for every import of a module in
    `modules`; `from pkg import sub` names the submodule itself."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield node, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in modules:
                    yield node, f"{source}.{alias.name}", None
                elif source in modules:
                    yield node, source, alias.name


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """The modules under root as a graph of runtime imports (function-level ones included,
    TYPE_CHECKING ones not), and every import of another module's private name, as
    `file:line imports module._name`."""
    paths = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    modules = set(paths)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for module, path in paths.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = type_checking_lines(tree)
        bound: dict[str, str] = {}  # local name -> the dsjepsen module it stands for
        for node, target, name in import_targets(tree, module, path.name == "__init__.py", modules):
            if node.lineno not in typing_only and target != module:
                graph[module].add(target)
            if name is None:
                for alias in node.names:  # type: ignore[attr-defined]
                    bound[(alias.asname or alias.name).split(".")[0]] = target
            elif name.startswith("_") and not name.startswith("__") and target != module:
                private.append(f"{path.relative_to(root)}:{node.lineno} imports {target}.{name}")
        for node in ast.walk(tree):  # module._name through a module bound by an import
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                private.append(
                    f"{path.relative_to(root)}:{node.lineno} uses {bound[node.value.id]}.{node.attr}"
                )
    return graph, private


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, edges = work[-1]
            for w in edges:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_circle() -> None:
    graph, _ = import_graph(PACKAGE)
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_imports_another_modules_private_names() -> None:
    _, private = import_graph(PACKAGE)
    assert not private, "; ".join(private)


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "dsjepsen"
    for name, text in {"__init__.py": "", **files}.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_a_circle_inside_a_package_is_caught(tmp_path: Path) -> None:
    pkg = _tree(
        tmp_path,
        {
            "formats/__init__.py": "",
            "formats/a.py": "from dsjepsen.formats import b\n",
            "formats/b.py": "def f():\n    from dsjepsen.formats.c import x\n",
            "formats/c.py": "from .a import y\n",
            "formats/d.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from dsjepsen.formats.a import y\n",
        },
    )
    graph, _ = import_graph(pkg)
    assert circles(graph) == [["dsjepsen.formats.a", "dsjepsen.formats.b", "dsjepsen.formats.c"]]


def test_a_private_import_is_caught(tmp_path: Path) -> None:
    pkg = _tree(
        tmp_path,
        {
            "targets/__init__.py": "",
            "targets/kit.py": "def _done(): ...\ndef done(): ...\n",
            "targets/one.py": "from dsjepsen.targets.kit import _done, done\n",
            "targets/two.py": "from dsjepsen.targets import kit\nkit._done()\nkit.__name__\n",
            "targets/three.py": "from .kit import done\n",
        },
    )
    _, private = import_graph(pkg)
    assert private == [
        "targets/one.py:1 imports dsjepsen.targets.kit._done",
        "targets/two.py:2 uses dsjepsen.targets.kit._done",
    ]
