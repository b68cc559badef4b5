"""Extensions by name, found through Python entry points, built-ins included.

dsjepsen's own workloads, targets, fault packages, checkers, models and node backends register exactly as a
third party's do, in the entry-point groups of GROUPS (see pyproject.toml), so a user can ship a
target for their own database as a pip package without editing dsjepsen. Loading is lazy and
per entry: one broken plugin is remembered as one line (`broken()`), shown by `dsjepsen list`
and `dsjepsen doctor`, and never hides the others. Only a test that asks for a broken
extension fails, naming it and why (with the causes, and a SyntaxError's file and line), as a
configuration error (exit 254): the installation is wrong, not the run.

This module imports no extension statically: entry points are the only way in, which keeps the
layering (commands -> harness -> workloads/targets/nemesis -> cluster) free of cycles.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from dsjepsen.errors import ConfigError

#: kind -> entry-point group
GROUPS: dict[str, str] = {
    "workloads": "dsjepsen.workloads",
    "targets": "dsjepsen.targets",
    "nemeses": "dsjepsen.nemeses",
    "checkers": "dsjepsen.checkers",
    "models": "dsjepsen.models",
    "backends": "dsjepsen.backends",
}

#: kind -> (the option that names one, what one is called), for error messages
_WORDS = {
    "workloads": ("--workload", "workload"),
    "targets": ("--target", "target"),
    "nemeses": ("--nemesis", "fault package"),
    "checkers": ("--checker", "checker"),
    "models": ("--model", "model"),
    "backends": ("--backend", "backend"),
}


@dataclass(frozen=True)
class Broken:
    """An entry point that could not be loaded."""

    kind: str
    name: str
    source: str  # "module:attr (distribution version)"
    error: str

    def line(self) -> str:
        return f"{GROUPS[self.kind]}: {self.name} = {self.source}: {self.error}"


def describe_failure(e: BaseException) -> str:
    """Why a plugin does not load, in one line, its causes included (`ImportError: ...;
    caused by ModuleNotFoundError: ...`): the cause is usually what to fix. A SyntaxError
    names the file and line (`SyntaxError: invalid syntax (/path/mod.py, line 3)`)."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen and len(parts) < 5:
        seen.add(id(current))
        parts.append(_one_failure(current))
        cause = current.__cause__
        if cause is None and not current.__suppress_context__:
            cause = current.__context__
        current = cause
    return "; caused by ".join(parts)


def _one_failure(e: BaseException) -> str:
    if isinstance(e, SyntaxError):
        where = f" ({e.filename}, line {e.lineno})" if e.filename else ""
        return f"{type(e).__name__}: {e.msg}{where}"
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


_lock = threading.Lock()
_loaded: dict[str, dict[str, Any]] = {}
#: entries loaded one by one by `get`, before (or instead of) their whole kind
_single: dict[str, dict[str, Any]] = {}
_broken: dict[str, list[Broken]] = {}


def _entry_points(group: str) -> list[metadata.EntryPoint]:
    eps = sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)
    # one distribution may be visible twice (an editable install beside a path entry): keep
    # the first of each name and value
    seen: set[tuple[str, str]] = set()
    out = []
    for ep in eps:
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            out.append(ep)
    return out


def _load_kind(kind: str) -> dict[str, Any]:
    if kind not in GROUPS:
        raise ValueError(f"unknown extension kind {kind!r}")
    with _lock:
        if kind in _loaded:
            return _loaded[kind]
        found: dict[str, Any] = {}
        broken: list[Broken] = []
        for ep in _entry_points(GROUPS[kind]):
            dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
            source = ep.value + dist
            if ep.name in found:
                broken.append(Broken(kind, ep.name, source, "name already taken"))
                continue
            try:
                found[ep.name] = ep.load()
            except Exception as e:  # noqa: BLE001 - any failure of a plugin is its own
                broken.append(Broken(kind, ep.name, source, describe_failure(e)))
        _loaded[kind] = found
        _broken[kind] = broken
        return found


def available(kind: str) -> dict[str, Any]:
    """{name: loaded object} of every extension of this kind that loads."""
    return dict(_load_kind(kind))


def broken(kind: str | None = None) -> list[Broken]:
    """The entries that failed to load (of one kind, or of all)."""
    kinds = [kind] if kind else list(GROUPS)
    out: list[Broken] = []
    for k in kinds:
        _load_kind(k)
        out.extend(_broken[k])
    return out


def get(kind: str, name: str) -> Any:
    """The extension `name` of `kind`; ConfigError for an unknown name (listing the known),
    HarnessError naming the plugin when it exists but does not load.

    Only that one entry is loaded when it is the only one of its name: loading every plugin
    of the kind for one of them would make every command pay for the heaviest (the
    transactional checkers load numpy). Anything else (no such name, two of it, a failure to
    load) goes through the whole kind, which says what is wrong."""
    if kind not in GROUPS:
        raise ValueError(f"unknown extension kind {kind!r}")
    with _lock:
        if kind in _loaded and name in _loaded[kind]:
            return _loaded[kind][name]
        if name in _single.get(kind, {}):
            return _single[kind][name]
    if kind not in _loaded:
        named = [ep for ep in _entry_points(GROUPS[kind]) if ep.name == name]
        if len(named) == 1:
            try:
                obj = named[0].load()
            except Exception:  # noqa: BLE001 - the whole kind's load says what is wrong
                pass
            else:
                with _lock:
                    _single.setdefault(kind, {})[name] = obj
                return obj
    found = _load_kind(kind)
    if name in found:
        return found[name]
    for b in _broken[kind]:
        if b.name == name:
            # the installation is misconfigured (exit 254, as a bad option is), not the run
            raise ConfigError(f"{_WORDS[kind][0]} {name}: the plugin does not load: {b.line()}")
    known = ", ".join(found) or "none"
    option, what = _WORDS[kind]
    raise ConfigError(f"{option}: unknown {what} {name!r} (known: {known})")


def reset() -> None:
    """Forget what was loaded (tests that install a plugin at run time)."""
    with _lock:
        _loaded.clear()
        _broken.clear()
        _single.clear()
