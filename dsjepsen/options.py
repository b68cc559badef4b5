"""Options an extension declares: name, type, default, help; parsed once, with one-line errors.

A workload, target or fault package lists its own options as `Option` values. The CLI adds
each to `dsjepsen test` (`--keys`, `--bug`, ...), `dsjepsen list` shows them, the run records
them in test.json, and `Option.parse` turns whatever the user typed into a typed value or a
`ConfigError` that names the option. Adding an option is therefore one line in one file.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dsjepsen.errors import ConfigError

#: the value types an option may have
TYPES = ("str", "int", "float", "bool", "list")
#: the bound of a number option that declares no `maximum`: past it a value is a typo or an
#: attack, never a test (Python's ints have no size of their own)
DEFAULT_MAXIMUM = 1e12


@dataclass(frozen=True)
class Option:
    """One option of an extension.

    `type` is one of TYPES: "bool" is a flag (`--serializable-reads`), "list" is repeatable
    and comma-separated (`--bug a --bug b` or `--bug a,b`). `choices` restricts the values (for
    a list, each item). `minimum` and `maximum` bound numbers (every number has an upper bound:
    DEFAULT_MAXIMUM when none is declared). `check` validates the parsed value further and
    raises ConfigError.
    `keyword` is the constructor keyword the value is passed as (default: the name with '-'
    as '_'); `label`, when given, puts a non-default value into the test's name (a flag as the
    label alone, a list as `label-a+b`), so runs with different switches land apart in the
    store. `aliases` are former names, still taken (with a warning) for one release.
    """

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    check: Callable[[Any], None] | None = None
    keyword: str | None = None
    label: str | None = None
    #: old names of the option (without "--"), still taken for one release, with a warning
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type must be one of {TYPES}, not {self.type!r}")
        if not self.name or not all(c.isalnum() or c == "-" for c in self.name):
            raise ValueError(f"option name {self.name!r}: letters, digits and '-' only")

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        """The attribute argparse stores the value under."""
        return "opt_" + self.name.replace("-", "_")

    @property
    def kwarg(self) -> str:
        return self.keyword or self.name.replace("-", "_")

    def name_part(self, value: Any) -> str | None:
        """This value's part of the test name, or None (no label, or the default)."""
        if self.label is None or value == self.default or value in (None, (), False, ""):
            return None
        if self.type == "bool":
            return self.label
        if self.type == "list":
            return f"{self.label}-{'+'.join(value)}"
        return f"{self.label}-{value}"

    def argv(self, value: Any) -> list[str]:
        """Command-line tokens that give this value (none for the default)."""
        if value == self.default or value is None:
            return []
        if self.type == "bool":
            return [self.flag] if value else []
        if self.type == "list":
            return [t for v in value for t in (self.flag, str(v))]
        return [self.flag, f"{value:g}" if isinstance(value, float) else str(value)]

    def recorded(self, value: Any) -> Any:
        """The value as test.json records it (JSON has no tuples)."""
        return list(value) if isinstance(value, tuple) else value

    def parse(self, raw: Any) -> Any:
        """The typed value of what was given (None: the default)."""
        if raw is None or (self.type == "list" and raw == []):
            return self.default
        if self.type == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{self.flag}: expected true or false, got {raw!r}")
        if self.type == "list":
            items = [raw] if isinstance(raw, str) else list(raw)
            value: Any = tuple(
                s.strip() for item in items for s in str(item).split(",") if s.strip()
            )
            for v in value:
                self._check_choice(v)
        elif self.type == "int":
            value = self._int(raw)
        elif self.type == "float":
            value = self._float(raw)
        else:
            value = str(raw)
            self._check_choice(value)
        if self.check is not None:
            self.check(value)
        return value

    def _check_choice(self, value: str) -> None:
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"{self.flag}: unknown value {value!r} (known: {', '.join(self.choices)})"
            )

    def _int(self, raw: Any) -> int:
        try:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            x = int(raw) if isinstance(raw, int | float) else int(str(raw).strip())
        except (TypeError, ValueError):
            raise ConfigError(f"{self.flag}: expected an integer, got {raw!r}") from None
        if self.minimum is not None and x < self.minimum:
            raise ConfigError(f"{self.flag}: must be an integer >= {self.minimum:g}, got {raw!r}")
        if x > self.upper:
            raise ConfigError(f"{self.flag}: must be an integer <= {self.upper:g}, got {raw!r}")
        return x

    @property
    def upper(self) -> float:
        """The largest value a number option takes."""
        return DEFAULT_MAXIMUM if self.maximum is None else self.maximum

    def _float(self, raw: Any) -> float:
        try:
            x = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.flag}: expected a number, got {raw!r}") from None
        if not math.isfinite(x):
            raise ConfigError(f"{self.flag}: expected a finite number, got {raw!r}")
        if self.minimum is not None and x < self.minimum:
            raise ConfigError(f"{self.flag}: must be at least {self.minimum:g}, got {raw!r}")
        if x > self.upper:
            raise ConfigError(f"{self.flag}: must be at most {self.upper:g}, got {raw!r}")
        return x

    def describe(self) -> str:
        """One line for `dsjepsen list`: `--keys N (default 5): keys in use at once`."""
        fallback = "NAME" if self.type == "list" else self.type.upper()
        meta = "" if self.type == "bool" else f" {self.metavar or fallback}"
        default = "" if self.default in (None, (), False) else f" (default {self.default})"
        choices = f" [{', '.join(self.choices)}]" if self.choices else ""
        return f"{self.flag}{meta}{default}: {self.help}{choices}"


def parse_options(declared: Sequence[Option], given: dict[str, Any], owner: str) -> dict[str, Any]:
    """{option name: typed value} for every declared option, from {name: raw or None}.

    `owner` names the extension in errors about options it does not take.
    """
    by_name = {o.name: o for o in declared}
    renamed = {old: o.name for o in declared for old in o.aliases}
    given = dict(given)
    for name in [n for n in given if n in renamed and n not in by_name]:
        raw = given.pop(name)
        if raw in (None, [], False):
            continue
        new = renamed[name]
        if given.get(new) not in (None, [], False):
            raise ConfigError(f"--{name} and --{new} are one option (--{new}): give it once")
        warn_renamed(f"--{name}", f"--{new}")
        given[new] = raw
    for name, raw in given.items():
        if name not in by_name and raw not in (None, [], False):
            raise ConfigError(f"--{name}: not an option of {owner}")
    return {o.name: o.parse(given.get(o.name)) for o in declared}


def merge_declarations(groups: Sequence[tuple[str, Sequence[Option]]]) -> dict[str, Option]:
    """One Option per name over many extensions (several targets may declare `--bug`).

    Two declarations of one name must agree on the type; the first one's help is kept and the
    owners are listed, so `--help` says which extensions take the option.
    """
    merged: dict[str, Option] = {}
    owners: dict[str, list[str]] = {}
    aliases: dict[str, list[str]] = {}
    for owner, options in groups:
        for o in options:
            seen = merged.get(o.name)
            if seen is not None and seen.type != o.type:
                raise ConfigError(
                    f"--{o.name}: declared as {seen.type} by {owners[o.name][0]} "
                    f"and as {o.type} by {owner}"
                )
            merged.setdefault(o.name, o)
            owners.setdefault(o.name, []).append(owner)
            aliases.setdefault(o.name, []).extend(o.aliases)
    return {
        name: Option(
            name=o.name,
            type=o.type,
            default=o.default,
            help=f"{', '.join(owners[name])}: {_unprefixed(o.help, owners[name])}",
            metavar=o.metavar,
            aliases=tuple(dict.fromkeys(aliases[name])),
        )
        for name, o in merged.items()
    }


def _unprefixed(help: str, owners: Sequence[str]) -> str:
    """A help text without the "maelstrom: " its one owner already put in front of it (the
    merged help names the owners itself: "target maelstrom: maelstrom: ..." would stutter)."""
    if len(owners) == 1:
        name = owners[0].split(" ", 1)[-1]
        if help.startswith(name + ": "):
            return help[len(name) + 2 :]
    return help


def kwargs(declared: Sequence[Option], values: dict[str, Any]) -> dict[str, Any]:
    """Constructor keywords for parsed values."""
    return {o.kwarg: values[o.name] for o in declared if o.name in values}


def options_argv(options: Mapping[str, Any]) -> list[str]:
    """Options given as data (`{"bug": ["stale-read"], "time-limit": 5, "serializable_reads":
    True}`: a campaign's TOML table, the keywords of `dsjepsen.test_config`) as the
    command-line tokens `dsjepsen test` takes: `--name` with `_` read as `-`, a list repeats
    the flag, True is a flag alone, False and None give nothing. The one place this is
    written, so that a campaign cell and a Python call mean what the same command line means."""
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + str(name).removeprefix("--").replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list | tuple):
            for v in value:
                out += [flag, str(v)]
        else:
            out += [flag, str(value)]
    return out


# ---------------------------------------------------------------------------------------------
# Renamed options: one name per idea across the commands (docs/running.md), the old one kept for
# a release


_warned: set[str] = set()


def warn_renamed(old: str, new: str) -> None:
    """Say once per process, on stderr, that option `old` is now `new`."""
    if old in _warned:
        return
    _warned.add(old)
    sys.stderr.write(
        f"dsjepsen: warning: {old} is now {new}; the old name goes in the next release\n"
    )


class Renamed(argparse.Action):
    """An option's former name: stores its value where the new name does (a flag's True, a
    repeatable option's list), and warns once that the name changed."""

    def __init__(self, option_strings: list[str], dest: str, new: str, kind: str = "value",
                 **kwargs: Any) -> None:  # fmt: skip
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, nargs=0 if kind == "flag" else None, **kwargs)
        self.new = new
        self.kind = kind

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:  # fmt: skip
        warn_renamed(option_string or self.option_strings[0], self.new)
        if self.kind == "flag":
            setattr(namespace, self.dest, True)
        elif self.kind == "append":
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])
        else:
            setattr(namespace, self.dest, values)


def add_renamed(parser: Any, old: str, new: str, dest: str, kind: str = "value") -> None:
    """Add `old` (with its dashes) to `parser` (or an argument group) as a former name of the
    option `new` that stores into `dest`."""
    parser.add_argument(
        old, dest=dest, action=Renamed, new=new, kind=kind, default=argparse.SUPPRESS
    )
