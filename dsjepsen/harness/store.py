"""Run directories: `store/<test-name>/<YYYYmmddTHHMMSS>/`, the record a report is built from.

Layout (the report engineer reads exactly this): test.json (name, argv, options, seed, nodes,
versions, start/end time), history.jsonl, results.json, dsjepsen.log, nodes/<node>/<logs>, and a
`latest` symlink both in the store and in the test's folder. Files are written whole to a
temporary name and renamed, so a crash never leaves a half-written JSON file.

A run directory holds what the system under test logged, the exact command line and the node
addresses: not for every user of the machine. Directories made here are DIR_MODE (0o750) and
files written here FILE_MODE (0o640), before the umask, which can only take more away. Files
that other parts write into the run directory (history, logs) are then out of other users'
reach through the directory, whatever their own mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsjepsen.errors import HarnessError
from dsjepsen.files import FILE_MODE, write_whole

TIMESTAMP = "%Y%m%dT%H%M%S"
DIR_MODE = 0o750
#: space held in each run directory until the run ends (RunDir.reserve_space)
RESERVE_NAME = ".space-reserve"
RESERVE_BYTES = 256 << 10


def iso_now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def write_json(path: Path, data: Any) -> None:
    """A JSON file written whole (files.write_whole), FILE_MODE."""
    write_whole(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", FILE_MODE)


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
        (self.path / "nodes").mkdir(mode=DIR_MODE, exist_ok=True)
        d = self.path / "nodes" / node
        d.mkdir(mode=DIR_MODE, exist_ok=True)
        return d

    @property
    def reserve_path(self) -> Path:
        return self.path / RESERVE_NAME

    def reserve_space(self) -> None:
        """Hold RESERVE_BYTES of the store's disk for the end of the run: when the disk fills
        up mid-run, releasing them leaves room to say so in results.json and test.json."""
        with contextlib.suppress(OSError):
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)

    def release_reserve(self) -> None:
        with contextlib.suppress(OSError):
            self.reserve_path.unlink()

    def _write_json(self, path: Path, data: Any) -> None:
        """write_json; when the disk is full, once more after releasing the reserve."""
        try:
            write_json(path, data)
        except HarnessError:
            if not self.reserve_path.exists():
                raise
            self.release_reserve()
            write_json(path, data)

    def update_test(self, **fields: Any) -> None:
        self.test.update(fields)
        self._write_json(self.path / "test.json", self.test)

    def write_results(self, results: dict[str, Any]) -> None:
        self._write_json(self.results_path, results)


def create_run_dir(store: str | os.PathLike[str], test_name: str) -> RunDir:
    """Make a fresh run directory (a suffix keeps two runs in the same second apart) and point
    the `latest` links at it."""
    root = Path(store)
    try:
        base = root / test_name
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        base.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        stamp = time.strftime(TIMESTAMP)
        for n in range(1000):
            path = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir(mode=DIR_MODE)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand runs in one second
            raise HarnessError(f"cannot create a run directory under {base}")
    except OSError as e:
        raise HarnessError(f"cannot create a run directory in store {root}: {e}") from e
    _relink(base / "latest", path.name)
    _relink(root / "latest", f"{test_name}/{path.name}")
    run_dir = RunDir(path)
    run_dir.reserve_space()
    return run_dir
