"""`dsjepsen check`: exit codes, --json, the explanation text, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from checker_oracle import hard_kv_ops

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", "check", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    return path


VALID = [
    {"process": 0, "type": "invoke", "f": "write", "value": 1},
    {"process": 0, "type": "ok", "f": "write", "value": 1},
    {"process": 1, "type": "invoke", "f": "read", "value": None},
    {"process": 1, "type": "ok", "f": "read", "value": 1},
]
INVALID = VALID[:2] + [
    {"process": 1, "type": "invoke", "f": "read", "value": None},
    {"process": 1, "type": "ok", "f": "read", "value": 3},
]


def test_valid_exits_0(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", VALID)))
    assert r.returncode == 0, r.stderr
    assert "VALID" in r.stdout


def test_invalid_exits_1_with_sentence(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", INVALID)), "--model", "register")
    assert r.returncode == 1, r.stderr
    assert "read returned 3, but the register could only hold 1 at that point" in r.stdout


def test_json_output(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", INVALID)), "--json")
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert d["valid"] is False and d["anomalies"][0]["type"] == "nonlinearizable"
    assert d["details"]["memory"]["estimated_cache_bytes"] >= 0


def test_unreadable_and_malformed_input_exit_254(tmp_path: Path) -> None:
    r = run(str(tmp_path / "missing.jsonl"))
    assert r.returncode == 254 and "missing.jsonl" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(VALID[0]) + "\n{not json\n" + json.dumps(VALID[1]) + "\n")
    r = run(str(bad))
    assert r.returncode == 254 and "bad.jsonl:2" in r.stderr


def test_wrong_model_for_ops_exits_254(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", VALID)), "--model", "queue")
    assert r.returncode == 254 and "h.jsonl:1" in r.stderr


def test_bad_time_limit_exits_254(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", VALID)), "--time-limit", "-1")
    assert r.returncode == 254


@pytest.mark.skipif(not CORPUS.exists(), reason=f"Porcupine corpus not present at {CORPUS}")
def test_etcd_000_explanation() -> None:
    r = run(str(CORPUS / "jepsen" / "etcd_000.log"))
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert "INVALID" in out
    assert "read returned 2, but the register could only hold 0, 1, 3 or 4" in out
    assert "longest linearizable prefix" in out and "pending at that point" in out


def test_unknown_exits_2(tmp_path: Path) -> None:
    # 300 concurrent appends of only "a" or "b": the search cannot decide it in 0.2 s
    path = write(tmp_path / "hard.jsonl", [o.to_dict() for o in hard_kv_ops(1)])
    r = run(str(path), "--time-limit", "0.2")
    assert r.returncode == 2, r.stdout
    assert "time limit" in r.stdout


def _two_hard_keys_and_a_bad_one(tmp_path: Path) -> Path:
    ops = [o.to_dict() for k in ("h1", "h2") for o in hard_kv_ops(int(k[1]), key=k)]
    for d in ops:  # renumbered by the reader
        del d["index"], d["time"]
    ops += [
        {"process": "b", "type": "invoke", "f": "put", "key": "bad", "value": "x"},
        {"process": "b", "type": "ok", "f": "put", "key": "bad", "value": "x"},
        {"process": "b", "type": "invoke", "f": "get", "key": "bad", "value": None},
        {"process": "b", "type": "ok", "f": "get", "key": "bad", "value": "y"},
    ]
    return write(tmp_path / "multi.jsonl", ops)


def test_invalid_verdict_does_not_wait_for_hard_keys(tmp_path: Path) -> None:
    """Key 'bad' is invalid at once; 'h1' and 'h2' would keep the search busy for minutes.
    The verdict comes after the short after-failure budget, naming the undecided keys."""
    r = run(str(_two_hard_keys_and_a_bad_one(tmp_path)), "--json")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)["details"]
    assert d["failing_keys"] == ["'bad'"]
    assert d["undecided_keys"] == ["'h1'", "'h2'"]
    assert d["undecided_note"] == (
        "2 keys not decided within the 1.5 s budget after the verdict was known: 'h1', 'h2'"
    )
    # 1.5 s for the undecided keys + at most 1.5 s of explanations; 10+ s before the fix
    assert d["seconds"] < 8, d["seconds"]
    text = run(str(_two_hard_keys_and_a_bad_one(tmp_path))).stdout
    assert "2 keys not decided within the 1.5 s budget after the verdict was known" in text
    assert "get returned 'y', but the key could only hold 'x' at that point" in text


def test_after_failure_budget_follows_the_time_limit(tmp_path: Path) -> None:
    r = run(str(_two_hard_keys_and_a_bad_one(tmp_path)), "--json", "--time-limit", "0.5")
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)["details"]
    assert d["undecided_note"].startswith("2 keys not decided within the time limit of 0.5 s")
    assert all(
        d["per_key"][k]["reason"] == "not decided: the verdict was already known"
        for k in ("'h1'", "'h2'")
    )


# ---------------------------------------------------------------------------------------------
# --checker: any registered checker


def test_checker_stats(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", INVALID)), "--checker", "stats")
    assert r.returncode == 0, r.stderr  # stats is never a verdict by itself
    assert "VALID (stats)" in r.stdout
    assert "read: 1 ok, 0 fail, 0 info, 0 pending" in r.stdout
    assert "linearizable" not in r.stdout
    d = json.loads(run(str(tmp_path / "h.jsonl"), "--checker", "stats", "--json").stdout)
    assert d["checker"] == "stats" and d["details"]["by_f"]["write"]["ok"] == 1


def test_checker_vacuous_on_a_history_without_ok_ops_is_unknown(tmp_path: Path) -> None:
    failed = [
        {"process": 0, "type": "invoke", "f": "write", "value": 1},
        {"process": 0, "type": "fail", "f": "write", "value": 1},
        {"process": 1, "type": "invoke", "f": "read", "value": None},
        {"process": 1, "type": "info", "f": "read", "value": None},
    ]
    path = write(tmp_path / "h.jsonl", failed)
    r = run(str(path), "--checker", "vacuous")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "UNKNOWN (vacuous)" in r.stdout
    assert "no client op succeeded during the run (1 failed, 1 indeterminate)" in r.stdout
    # linearizable alone calls it valid; composed with vacuous, the run is unknown
    assert run(str(path)).returncode == 0
    r = run(str(path), "--checker", "linearizable", "--checker", "vacuous", "--json")
    assert r.returncode == 2
    d = json.loads(r.stdout)
    assert d["valid"] == "unknown" and set(d["details"]) >= {"linearizable", "vacuous"}


def test_several_checkers_compose(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", INVALID)), "--checker", "stats", "--checker",
            "linearizable", "--checker", "stats")  # fmt: skip
    assert r.returncode == 1
    assert r.stdout.count("(stats)") == 1  # a checker named twice runs once
    assert r.stdout.splitlines()[-1].endswith("INVALID (checkers: stats, linearizable)")


def test_unknown_checker_is_one_line_254(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", VALID)), "--checker", "nope")
    assert r.returncode == 254
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert "--checker: unknown checker 'nope' (known: " in r.stderr
    assert all(name in r.stderr for name in ("linearizable", "stats", "vacuous"))


def test_unknown_model_is_one_line_254(tmp_path: Path) -> None:
    r = run(str(write(tmp_path / "h.jsonl", VALID)), "--model", "nope")
    assert r.returncode == 254 and r.stderr.count("\n") == 1
    assert "unknown model 'nope'" in r.stderr


def test_failing_keys_sorted_and_report_path_printed(tmp_path: Path) -> None:
    """A reader scans the failing keys in order, and learns where the report went."""
    path = CORPUS / "kv" / "c10-bad.txt"
    if not path.exists():
        pytest.skip(f"the Porcupine corpus is not at {CORPUS}")
    out = tmp_path / "r.html"
    p = run(str(path), "--report", str(out))
    assert p.returncode == 1, p.stderr
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("failing keys:"))
    keys = [int(k.strip(" '")) for k in line.split(":", 1)[1].split(",")]
    assert len(keys) > 2 and keys == sorted(keys)
    explained = [
        int(ln.split("on key ")[1].split(":")[0].strip("'"))
        for ln in p.stdout.splitlines()
        if ln.startswith("Not linearizable on key")
    ]
    assert explained == sorted(explained) and explained
    assert p.stdout.strip().splitlines()[-1] == f"report: {out}" and out.exists()


def test_explanations_are_capped_and_the_rest_listed(tmp_path: Path) -> None:
    """Five keys each with a stale read: three are explained, two listed as not explained, and
    the verdict's sentence still counts them all."""
    lines = []
    for k in range(5):
        lines += [
            {"process": k, "type": "invoke", "f": "write", "value": 1, "key": k},
            {"process": k, "type": "ok", "f": "write", "value": 1, "key": k},
            {"process": k, "type": "invoke", "f": "read", "value": None, "key": k},
            {"process": k, "type": "ok", "f": "read", "value": 2, "key": k},
        ]
    path = str(write(tmp_path / "h.jsonl", lines))
    d = json.loads(run(path, "--json").stdout)
    assert len(d["anomalies"]) == 3 and len(d["details"]["unexplained_keys"]) == 2
    assert len(d["details"]["failing_keys"]) == 5
    assert d["reason"].endswith("(and 4 more failing keys)")
    explained = {str(a["key"]) for a in d["anomalies"]}
    assert explained.isdisjoint(d["details"]["unexplained_keys"])
    p = run(path)
    assert p.returncode == 1
    assert "explained below: 3 of 5 failing keys; not explained (2): " in p.stdout
    assert p.stdout.count("Not linearizable on key") == 3
