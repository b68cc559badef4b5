"""What an adversarial probe of the CLI found (issue 22), one test per finding, and the same
kinds searched for over every option: outputs that are devices or directories, numbers with no
upper bound, options refused only after the cluster was built, non-regular inputs, checkers
fed histories they cannot judge, and the lesser ones.

These run the real CLI in-process (`cli.main`), so each case costs milliseconds; what must
happen before any node is touched is checked by asserting that no cluster of the given name
exists afterwards. The findings that need a real cluster (a full disk under the store, an
interrupt during teardown, leftovers recorded) are in tests/test_hardening_runs.py.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from dsjepsen import cli
from dsjepsen.cluster import localnet
from dsjepsen.errors import HarnessError
from dsjepsen.files import check_output_dir, check_output_file, write_whole

GOOD = [
    {"index": 0, "time": 0, "process": 0, "type": "invoke", "f": "write", "value": 1},
    {"index": 1, "time": 1, "process": 0, "type": "ok", "f": "write", "value": 1},
    {"index": 2, "time": 2, "process": 1, "type": "invoke", "f": "read", "value": None},
    {"index": 3, "time": 3, "process": 1, "type": "ok", "f": "read", "value": 1},
]


def history(tmp_path: Path, ops=GOOD, name: str = "good.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(o) + "\n" for o in ops))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`dsjepsen ARGV` in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv: str, message: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 254, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0], err
    return lines[0]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def unused_cluster() -> str:
    """A cluster name nobody uses: after a refused `dsjepsen test`, it must still not exist."""
    name = localnet.random_name("h")
    yield name
    assert localnet.read_state(name) is None, "a refused test must not build a cluster"
    assert localnet.remains(name) == []


# ---------------------------------------------------------------- 1. outputs


def test_a_report_never_replaces_a_device(capsys, tmp_path):
    before = os.stat("/dev/full")
    refused(capsys, "check", str(history(tmp_path)), "--report", "/dev/full",
            message="--report /dev/full: a character device, not a regular file")  # fmt: skip
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def output_cases(tmp_path: Path, fifo: Path) -> list[tuple[str, str]]:
    """(path, what the refusal says) for a file option."""
    regular = tmp_path / "regular"
    regular.write_text("x")
    return [
        ("/dev/null", "a character device"),
        (str(fifo), "a FIFO"),
        (str(tmp_path), "a directory, not a regular file (give a file name inside it)"),
        (str(regular / "under"), "is a regular file, not a directory"),
        ("/proc/dsj-probe", "under /proc, the kernel's own file system"),
        ("", "empty path"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_check_report_and_export_refuse_what_is_no_file(capsys, tmp_path, fifo, case):
    path, message = output_cases(tmp_path, fifo)[case]
    h = str(history(tmp_path))
    refused(capsys, "check", h, "--report", path, message=message)
    refused(capsys, "export", h, "-o", path, message=message)


@pytest.mark.parametrize("case", range(6))
def test_junit_refuses_what_is_no_file_before_any_node(
    capsys, tmp_path, fifo, unused_cluster, case
):
    path, message = output_cases(tmp_path, fifo)[case]
    refused(capsys, "test", "--cluster-name", unused_cluster, "--time-limit", "1",
            "--junit", path, message=message)  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: "/etc/passwd", "--store /etc/passwd: a regular file, not a directory"),
        (lambda d: str(d / "f"), "a regular file, not a directory"),
        (lambda d: str(d / "f" / "store"), "is a regular file, not a directory"),
        (lambda d: "/proc/self/store", "under /proc"),
        (lambda d: "/sys/dsj", "under /sys"),
        (lambda d: "/dev/null", "a character device, not a directory"),
        (lambda d: "", "--store: empty path"),
    ],
)
def test_store_refused_before_any_node(capsys, tmp_path, unused_cluster, make, message):
    (tmp_path / "f").write_text("x")
    store = make(tmp_path)
    refused(capsys, "test", "--cluster-name", unused_cluster, "--time-limit", "1",
            "--store", store, message=message)  # fmt: skip
    refused(capsys, "campaign", "run", "examples/campaigns/nightly.toml", "--store", store,
            message=message)  # fmt: skip


def test_campaign_merge_out_must_be_a_directory(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    refused(capsys, "campaign", "merge", str(tmp_path), "--output", str(tmp_path / "f"),
            message="--output")  # fmt: skip


def test_write_whole_never_renames_over_a_non_regular_file(tmp_path, fifo):
    with pytest.raises(HarnessError, match="a FIFO, not a regular file; not replaced"):
        write_whole(fifo, "data")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]  # no temporary file left
    # through a link, the file it names is written; the link stays a link
    (tmp_path / "real").write_text("old")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    write_whole(tmp_path / "link", "new")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real").read_text() == "new"
    (tmp_path / "to-device").symlink_to("/dev/null")
    with pytest.raises(Exception, match="a character device"):
        check_output_file(tmp_path / "to-device", "--report")
    with pytest.raises(Exception, match="a regular file, not a directory"):
        check_output_dir(tmp_path / "real", "--store")


# ---------------------------------------------------------------- 2. sizes with no upper bound


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--key-count", "1000000000", "--key-count: must be an integer <= 100000"),
        ("--concurrency", "100000", "--concurrency: at most 1024 client workers"),
        ("--concurrency", "99999999999999999999n", "--concurrency: expected a positive integer"),
        ("--concurrency", "300n", "--concurrency 300n: 1500 client workers on 5 nodes"),
        ("--time-limit", "1e300", "--time-limit: must be at most 604800"),
        ("--rate", "1e308", "--rate: must be at most 100000"),
        ("--ops-per-key", "1e18", "--ops-per-key: expected an integer"),
        ("--ops-per-key", "1000000000000000000", "--ops-per-key: must be an integer <= 1e+09"),
        ("--seed", "1e40", "--seed: expected an integer"),
        ("--seed", str(2**64), "--seed: must be an integer <= 9223372036854775807"),
        ("--recovery-timeout", "1e300", "--recovery-timeout: must be at most 3600"),
        ("--nemesis-interval", "1e300", "--nemesis-interval: must be at most 86400"),
        ("--check-time-limit", "1e300", "--check-time-limit: must be at most 604800"),
        ("--test-count", "99999999", "--test-count: must be an integer <= 10000"),
        ("--server-port", "99999", "--server-port: must be an integer <= 65535"),
        ("--time-limit", "nan", "--time-limit: expected a finite number"),
    ],
)
def test_every_number_has_a_bound(capsys, unused_cluster, option, value, message):
    target = ["--target", "http-kv", "--server-cmd", "x"] if option == "--server-port" else []
    refused(capsys, "test", "--cluster-name", unused_cluster, *target, option, value,
            message=message)  # fmt: skip


def test_memory_is_estimated_before_anything_is_created(capsys, unused_cluster):
    line = refused(capsys, "test", "--cluster-name", unused_cluster, "--rate", "100000",
                   "--time-limit", "604800", message="GiB to record and check")  # fmt: skip
    assert "lower --rate or --time-limit" in line


def test_check_time_limit_is_bounded(capsys, tmp_path):
    refused(capsys, "check", str(history(tmp_path)), "--check-time-limit", "1e300",
            message="--check-time-limit must be a positive number of seconds up to")  # fmt: skip


def test_campaign_parallel_is_bounded(capsys):
    refused(capsys, "campaign", "run", "examples/campaigns/nightly.toml", "--parallel", "1000",
            message="--parallel: expected an integer from 1 to 16")  # fmt: skip


# ---------------------------------------------------------------- 3. refused before any node


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--node-count", "1", "--nemesis", "partition-majority"], "needs at least 2 nodes"),
        (["--nodes", "h:99999"], "port must be 1-65535"),
        (["--nodes", "a,b", "--node-count", "2"], "--node-count sizes the local cluster"),
        (["--nodes", "a,b", "--force-node-count"], "--force-node-count applies to the local"),
        (["--nemesis-mode", "bogus"], "--nemesis-mode: unknown mode 'bogus'"),
        (["--nodes", "3"], "use --node-count 3"),
        (["--nodes-file", "/dev/zero"], "a character device, not a regular file"),
        (["--nemsis", "kill"], "--nemsis: did you mean --nemesis?"),
        (["--nodes", "a", "--ssh-timeout", "nan"], "--ssh-timeout nan: must be a number"),
        (["--nodes", "a", "--ssh-timeout", "1e9"], "--ssh-timeout 1000000000.0: must be"),
    ],
)
def test_contradictions_are_one_line_before_any_node(capsys, unused_cluster, argv, message):
    refused(capsys, "test", "--cluster-name", unused_cluster, *argv, message=message)


def test_cluster_exec_timeout_is_bounded(capsys):
    refused(capsys, "cluster", "exec", "--timeout", "inf", "n1", "--", "true",
            message="--timeout inf: must be a number of seconds up to 86400")  # fmt: skip


def test_usage_errors_are_one_line_everywhere(capsys):
    for argv in (["check"], ["report"], ["cluster", "frob"], ["test", "--time-limit"]):
        code, _, err = run(capsys, *argv)
        assert code == 254 and len(err.strip().splitlines()) == 1, (argv, err)


# ---------------------------------------------------------------- 4. non-regular inputs


def test_every_file_option_refuses_what_is_no_regular_file(capsys, fifo):
    refused(capsys, "check", str(fifo), message="a FIFO, not a regular file")
    refused(capsys, "campaign", "run", str(fifo), message="a FIFO, not a regular file")
    refused(capsys, "campaign", "run", "/dev/zero", message="a character device")
    refused(capsys, "export", "/dev/zero", "-o", "/tmp/dsj-never", message="a character device")


# ---------------------------------------------------------------- 5. no verdict from bad input


@pytest.mark.parametrize(
    "checker", ["set-full", "counter", "convergence", "broadcast", "unique-ids", "echo"]
)
def test_a_checker_without_its_ops_is_bad_input(capsys, tmp_path, checker):
    line = refused(capsys, "check", str(history(tmp_path)), "--checker", checker,
                   message=f"the {checker} checker judges histories of")  # fmt: skip
    assert "this one has read, write" in line


def test_a_malformed_micro_op_names_its_line(capsys, tmp_path):
    ops = [
        {"process": 0, "type": "invoke", "f": "txn", "value": [["read", "x"]]},
        {"process": 0, "type": "ok", "f": "txn", "value": [["read", "x"]]},
    ]
    refused(capsys, "check", str(history(tmp_path, ops)), "--model", "multi-register",
            message=":1: txn op: a micro-op is [read|write key value]")  # fmt: skip


# ---------------------------------------------------------------- 6. a default budget


def test_check_has_a_default_budget(monkeypatch):
    """Without --time-limit the search still stops (at DEFAULT_TIME_LIMIT, 120 s; made short
    here): a hard history ends unknown instead of searching for ever."""
    import time

    from dsjepsen import api
    from dsjepsen.checkers import linearizable

    monkeypatch.setattr(linearizable, "DEFAULT_TIME_LIMIT", 0.5)
    # 11 concurrent enqueues, 11 concurrent dequeues in any order, then a dequeue of a value
    # never enqueued: proving it wrong means trying every order of the queue (11! of them)
    n = 11
    ops = [{"process": p, "type": "invoke", "f": "enqueue", "value": p} for p in range(n)]
    ops += [
        {"process": p, "type": "invoke", "f": "dequeue", "value": None} for p in range(n, 2 * n)
    ]
    ops += [{"process": p, "type": "ok", "f": "enqueue", "value": p} for p in range(n)]
    ops += [
        {"process": p, "type": "ok", "f": "dequeue", "value": 2 * n - 1 - p}
        for p in range(n, 2 * n)
    ]
    ops += [
        {"process": 99, "type": "invoke", "f": "dequeue", "value": None},
        {"process": 99, "type": "ok", "f": "dequeue", "value": 99},
    ]
    started = time.monotonic()
    result = api.check(ops, model="queue")
    assert result.valid == "unknown", result.reason
    assert "time limit reached" in result.reason
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------- 10. memory on large histories


def test_a_sparse_gigabyte_is_refused_at_its_first_chunk(capsys, tmp_path):
    path = tmp_path / "sparse.jsonl"
    with open(path, "wb") as f:
        f.truncate(1 << 30)
    refused(capsys, "check", str(path), message="a NUL byte at byte 0, line 1")


def test_the_size_cap_is_what_fits_the_memory(tmp_path):
    """Under a 600 MiB address-space limit a 100 MB history would need about 800 MB once
    parsed: refused with the figures before it is read, not killed half-way."""
    line = json.dumps(GOOD[0]) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(line * (100_000_000 // len(line)))
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20))\n"
        "from dsjepsen import cli\n"
        f"sys.exit(cli.main(['check', {str(path)!r}]))\n"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 254, proc.stderr[-2000:]
    assert "is larger than the limit of" in proc.stderr, proc.stderr
    assert "MemoryError" not in proc.stderr


# ---------------------------------------------------------------- 11. lesser findings


def test_a_last_line_cut_inside_a_utf8_character_is_dropped(capsys, tmp_path):
    path = history(tmp_path)
    with open(path, "ab") as f:
        f.write('{"process": 2, "type": "invoke", "f": "write", "value": "é'.encode()[:-1])
    code, out, err = run(capsys, "check", str(path))
    assert code == 0, err
    assert "dropped a truncated last line" in err


def test_a_lone_surrogate_in_a_key_reaches_the_report(capsys, tmp_path):
    ops = [dict(o, key="k\ud800") for o in GOOD]
    path = tmp_path / "surrogate.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in ops))
    code, out, err = run(capsys, "check", str(path), "--report", str(tmp_path / "r.html"))
    assert code == 0, err
    assert "\\ud800" in (tmp_path / "r.html").read_text()


def test_error_lines_escape_control_characters(capsys, tmp_path):
    name = tmp_path / "evil\x1b[2J\nname.jsonl"
    line = refused(capsys, "check", str(name), message="cannot read history")
    assert "\x1b" not in line and "\\x1b[2J\\x0aname" in line


def test_edn_maps_with_a_key_twice_are_refused(capsys, tmp_path):
    path = tmp_path / "dup.edn"
    path.write_text("{:process 0, :type :invoke, :f :read, :f :write, :value nil}\n")
    refused(capsys, "check", str(path), message=":1: invalid EDN: map literal has the key :f twice")


def test_a_huge_key_is_cut_in_the_failing_keys_line(capsys, tmp_path):
    key = "k" * 200_000
    ops = [dict(o, key=key) for o in GOOD]
    ops[3] = dict(ops[3], value=2)
    code, out, _ = run(capsys, "check", str(history(tmp_path, ops)))
    assert code == 1
    failing = next(line for line in out.splitlines() if line.startswith("  failing keys:"))
    assert len(failing) < 200 and failing.endswith("...")
