"""The Python API: check lists of ops and files, build test configs exactly as the CLI does,
and `import dsjepsen` staying cheap (the API loads on first use)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dsjepsen import api
from dsjepsen.errors import ConfigError, InputError

STALE = [  # write 1 completes, then a read that starts later returns the old value 0
    {"process": 0, "type": "invoke", "f": "write", "value": 1, "key": "a"},
    {"process": 0, "type": "ok", "f": "write", "value": 1, "key": "a"},
    {"process": 1, "type": "invoke", "f": "read", "value": None, "key": "a"},
    {"process": 1, "type": "ok", "f": "read", "value": 0, "key": "a"},
]
FINE = [
    {"process": 0, "type": "invoke", "f": "write", "value": 1},
    {"process": 1, "type": "invoke", "f": "read", "value": None},
    {"process": 1, "type": "ok", "f": "read", "value": 1},
    {"process": 0, "type": "ok", "f": "write", "value": 1},
]


def test_check_a_list_of_ops() -> None:
    bad = api.check(STALE, model="register")
    assert bad.valid is False
    assert "read returned 0" in (bad.reason or "") and bad.anomalies
    good = api.check(FINE)
    assert good.valid is True and good.checker == "linearizable"


def test_check_a_file_and_read_history(tmp_path: Path) -> None:
    f = tmp_path / "h.jsonl"
    f.write_text(
        "".join(json.dumps({"index": i, "time": i, **op}) + "\n" for i, op in enumerate(STALE))
    )
    h = api.read_history(f)
    assert len(h) == 4 and h.source == str(f)
    assert api.check(str(f)).valid is False
    assert api.check(h, checkers=["linearizable", "stats"]).valid is False


def test_bad_input_raises_never_a_verdict() -> None:
    with pytest.raises(InputError, match="missing field 'f'"):
        api.check([{"process": 0, "type": "invoke"}])
    with pytest.raises(InputError, match="history is empty"):
        api.check([])
    # well formed, but it tested nothing: vacuous (unknown), neither bad input nor valid
    vacuous = api.check([{"process": "nemesis", "type": "invoke", "f": "start"}])
    assert vacuous.valid == "unknown"
    assert "no client operations to check (only 1 nemesis op)" in (vacuous.reason or "")
    with pytest.raises(ConfigError):
        api.check(FINE, model="no-such-model")
    with pytest.raises(ConfigError, match="time_limit"):
        api.check(FINE, time_limit=0)


def test_test_config_parses_like_the_cli() -> None:
    cfg = api.test_config(
        target="raft-kv",
        bug=["stale-read"],
        nemesis="kill",
        time_limit=5,
        nemesis_interval=2,
        seed=7,
    )
    assert cfg.test_name == "raft-kv-bug-stale-read-register-kill"
    assert (cfg.seed, cfg.time_limit, cfg.nemesis) == (7, 5.0, ("kill",))
    assert api.test_config(["--target", "raft-kv", "--seed", "7", "--bug", "stale-read",
                            "--nemesis", "kill", "--time-limit", "5", "--nemesis-interval", "2"]) == cfg  # fmt: skip
    with pytest.raises(ConfigError, match="--time-limit: expected a number"):
        api.test_config(time_limit="soon")
    with pytest.raises(ConfigError, match="--bug: not an option of target etcd"):
        api.test_config(target="etcd", bug="stale-read")


def test_api_is_listed_and_typed() -> None:
    for name in api.__all__:
        obj = getattr(api, name)
        assert obj.__doc__, name
    assert {"check", "read_history", "run_test"} <= set(api.__all__)


def test_top_level_names_load_lazily() -> None:
    """`from dsjepsen import check, read_history, run_test` works, and `import dsjepsen`
    alone loads neither the API nor the harness."""
    code = (
        "import sys, dsjepsen\n"
        "assert 'dsjepsen.api' not in sys.modules and 'dsjepsen.harness' not in sys.modules\n"
        "from dsjepsen import check, read_history, run_test\n"
        "assert check.__module__ == 'dsjepsen.api'\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
