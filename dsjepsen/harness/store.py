"""Run directories: `store/<test-name>/<YYYYmmddTHHMMSS>/`, the record a report is built from.

Layout (the report engineer reads exactly this): test.json (name, argv, options, seed, nodes,
versions, start/end time), history.jsonl, results.json, dsjepsen.log, nodes/<node>/<logs>, and a
`latest` symlink both in the store and in the test's folder. Files are written whole to a
temporary name and renamed, so a crash never leaves a half-written JSON file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsjepsen.errors import HarnessError

TIMESTAMP = "%Y%m%dT%H%M%S"


def iso_now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _relink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target)
        os.replace(tmp, link)
    except OSError:
        # a store on a filesystem without symlinks still works, it just has no `latest`
        if tmp.is_symlink():
            tmp.unlink()


@dataclass
class RunDir:
    """One run's directory and the test.json being kept up to date in it."""

    path: Path
    test: dict[str, Any] = field(default_factory=dict)

    @property
    def history_path(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "dsjepsen.log"

    @property
    def results_path(self) -> Path:
        return self.path / "results.json"

    def node_dir(self, node: str) -> Path:
        d = self.path / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def update_test(self, **fields: Any) -> None:
        self.test.update(fields)
        write_json(self.path / "test.json", self.test)

    def write_results(self, results: dict[str, Any]) -> None:
        write_json(self.results_path, results)


def create_run_dir(store: str | os.PathLike[str], test_name: str) -> RunDir:
    """Make a fresh run directory (a suffix keeps two runs in the same second apart) and point
    the `latest` links at it."""
    root = Path(store)
    try:
        base = root / test_name
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime(TIMESTAMP)
        for n in range(1000):
            path = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir()
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand runs in one second
            raise HarnessError(f"cannot create a run directory under {base}")
    except OSError as e:
        raise HarnessError(f"cannot create a run directory in store {root}: {e}") from e
    _relink(base / "latest", path.name)
    _relink(root / "latest", f"{test_name}/{path.name}")
    return RunDir(path)
