"""ruff runs in CI: `.ci/run` runs the README's test command and nothing else, so the lint
and the format check are tests of their own, failing with ruff's own output (the rules are
`[tool.ruff]` in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    # ruff is a test dependency (`pip install -e '.[test]'`): missing, the setup is broken,
    # which must fail rather than skip the lint
    assert importlib.util.find_spec("ruff") is not None, "ruff is not installed: run scripts/setup"
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args", [("check", "."), ("format", "--check", ".")], ids=["check", "format"]
)
def test_ruff(args: tuple[str, ...]) -> None:
    p = ruff(*args, "--no-cache")
    assert p.returncode == 0, f"ruff {' '.join(args)}:\n{p.stdout}{p.stderr}"
