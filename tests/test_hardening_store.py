"""Issue 10: run directories are not world-readable: directories 0o750 and files 0o640 by
default (before the umask), checked by mode and by another user actually trying to read."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic_runs import build_run_dir

from dsjepsen.harness.store import DIR_MODE, FILE_MODE, create_run_dir, write_json
from dsjepsen.reports.html import render_run_report


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask, which left everything world-readable before
    try:
        yield
    finally:
        os.umask(old)


def test_run_directory_and_its_files(tmp_path: Path, umask022: None) -> None:
    store = tmp_path / "store"
    run = create_run_dir(store, "raft-kv-register")
    assert (DIR_MODE, FILE_MODE) == (0o750, 0o640)
    assert mode(store) == mode(store / "raft-kv-register") == mode(run.path) == 0o750
    run.update_test(name="raft-kv-register", seed=1)
    run.write_results({"valid": True})
    assert mode(run.path / "test.json") == mode(run.results_path) == 0o640
    node_dir = run.node_dir("n1")
    assert mode(node_dir) == mode(node_dir.parent) == 0o750
    assert json.loads((run.path / "test.json").read_text())["seed"] == 1
    # a second run in the same second gets its own directory, just as closed
    assert mode(create_run_dir(store, "raft-kv-register").path) == 0o750


def test_rewrites_keep_the_mode_and_a_stricter_umask_wins(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    old = os.umask(0o077)
    try:
        write_json(target, {"a": 1})
        assert mode(target) == 0o600  # the umask only ever takes more away
        run = create_run_dir(tmp_path / "store", "t")
        assert mode(run.path) == 0o700
    finally:
        os.umask(old)
    write_json(target, {"a": 2})  # rewritten through a fresh temporary file
    assert mode(target) == FILE_MODE & ~old


def test_report_in_a_run_directory_is_0640(tmp_path: Path, umask022: None) -> None:
    run = build_run_dir(tmp_path / "store", n_ops=100)
    assert mode(render_run_report(run)) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_read_a_run(umask022: None) -> None:
    base = Path(tempfile.mkdtemp(prefix="dsj-store-test-"))
    try:
        base.chmod(0o755)  # a world-traversable place, as a home directory often is
        run = create_run_dir(base / "store", "t")
        run.update_test(name="t", argv=["dsjepsen", "test"])
        readable = base / "control.txt"
        readable.write_text("anyone\n")

        def read_as_nobody(path: Path) -> int:
            # /bin/cat, not this Python: the interpreter may live where nobody cannot go
            return subprocess.run(
                ["/bin/cat", str(path)],
                user=65534,
                group=65534,
                extra_groups=[],
                capture_output=True,
                timeout=60,
            ).returncode

        assert read_as_nobody(readable) == 0  # the test can tell readable from not
        assert read_as_nobody(run.path / "test.json") != 0
    finally:
        shutil.rmtree(base)
