"""Option validation of `dsjepsen test`: every bad value exits 254 with one line naming the
option, before any node is touched."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dsjepsen.cli import build_parser, main
from dsjepsen.errors import ConfigError
from dsjepsen.harness.config import TestConfig, config_from_args, parse_concurrency


def config(*argv: str) -> TestConfig:
    args = build_parser().parse_args(["test", *argv])
    return config_from_args(args, argv=["dsjepsen", "test", *argv])


BAD = [
    (["--target", "mongodb"], "--target"),
    (["--bug", "nope"], "--bug"),
    (["--target", "etcd", "--bug", "stale-read"], "--bug"),
    (["--serializable-reads"], "--serializable-reads"),
    (["--workload", "bank"], "--workload"),
    (["--nemesis", "partition-majority,meteor"], "--nemesis"),
    (["--nemesis", "none,kill"], "--nemesis"),
    (["--nemesis", "kill,kill"], "--nemesis"),
    (["--nemesis-interval", "0"], "--nemesis-interval"),
    (["--time-limit", "-5"], "--time-limit"),
    (["--time-limit", "soon"], "--time-limit"),
    (["--concurrency", "0"], "--concurrency"),
    (["--concurrency", "2x"], "--concurrency"),
    (["--concurrency", "n"], "--concurrency"),
    (["--rate", "-1"], "--rate"),
    (["--rate", "nan"], "--rate"),
    (["--key-count", "0"], "--key-count"),
    (["--key-count", "1.5"], "--key-count"),
    (["--ops-per-key", "0"], "--ops-per-key"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "abc"], "--seed"),
    (["--test-count", "0"], "--test-count"),
    (["--recovery-timeout", "-1"], "--recovery-timeout"),
    (["--check-time-limit", "0"], "--check-time-limit"),
]


@pytest.mark.parametrize(("argv", "option"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_option_raises_config_error_naming_it(argv: list[str], option: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(*argv)
    assert str(e.value).startswith(option + ":"), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("argv", "option"), BAD[:6], ids=[" ".join(a) for a, _ in BAD[:6]])
def test_cli_exits_254_with_one_line(
    argv: list[str], option: str, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    rc = main(["test", "--store", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 254
    assert len(err) == 1 and option in err[0], err
    assert not any(tmp_path.iterdir()), "nothing may be created for a bad option"


def test_console_script_exit_code_and_message() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "dsjepsen", "test", "--concurrency", "3q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 254
    assert p.stderr.strip().count("\n") == 0 and "--concurrency" in p.stderr


@pytest.mark.parametrize(
    ("text", "expected", "clients_on_5"),
    [("2n", (2, True), 10), ("1n", (1, True), 5), ("7", (7, False), 7), (" 3n ", (3, True), 15)],
)
def test_concurrency_syntax(text: str, expected: tuple[int, bool], clients_on_5: int) -> None:
    assert parse_concurrency(text) == expected
    cfg = config("--concurrency", text)
    assert cfg.clients_for(5) == clients_on_5
    assert cfg.clients_for(3) == (expected[0] * 3 if expected[1] else expected[0])


def test_defaults_and_options_are_recorded() -> None:
    cfg = config()
    assert (cfg.target, cfg.workload, cfg.nemesis) == ("raft-kv", "register", ())
    assert cfg.time_limit == 60 and cfg.nemesis_interval == 10
    assert cfg.concurrency_spec == "2n" and not cfg.seed_given
    assert 0 <= cfg.seed < 2**31
    cfg = config(
        "--target", "raft-kv", "--bug", "stale-read", "--bug", "no-fsync",
        "--nemesis", "partition-majority,kill", "--seed", "42", "--concurrency", "6",
        "--rate", "0", "--key-count", "3", "--ops-per-key", "10", "--time-limit", "42.5",
    )  # fmt: skip
    assert cfg.option("bug") == ("stale-read", "no-fsync")
    assert cfg.nemesis == ("partition-majority", "kill")
    assert (cfg.seed, cfg.seed_given, cfg.rate, cfg.option("key-count"), cfg.option("ops-per-key")) == (
        42, True, 0, 3, 10,
    )  # fmt: skip
    assert cfg.time_limit == 42.5
    d = cfg.to_dict()
    assert d["concurrency"] == "6" and d["options"]["bug"] == ["stale-read", "no-fsync"]
    assert cfg.test_name == (
        "raft-kv-bug-stale-read+no-fsync-register-partition-majority+kill-rate-unlimited"
    )
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]  # frozen


def test_the_rate_is_in_the_test_name_unless_it_is_the_default() -> None:
    """Runs at different rates never share a store directory; at the default rate the name
    is what it always was."""
    names = {r: config("--rate", r).test_name for r in ("100", "50", "2.5", "0")}
    assert names == {
        "100": "raft-kv-register-none",
        "50": "raft-kv-register-none-rate-50",
        "2.5": "raft-kv-register-none-rate-2.5",
        "0": "raft-kv-register-none-rate-unlimited",
    }
    assert config().test_name == "raft-kv-register-none"


def test_etcd_options() -> None:
    cfg = config("--target", "etcd", "--serializable-reads", "--nemesis", "partition-majority")
    assert cfg.option("serializable-reads") and cfg.workload == "register"
    assert cfg.test_name == "etcd-serializable-register-partition-majority"


def test_list_shows_targets_workloads_nemeses(capsys: pytest.CaptureFixture[str]) -> None:
    from dsjepsen.nemesis.catalog import fault_catalog

    NEMESES = fault_catalog()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("raft-kv", "etcd", "register", "none", *NEMESES):
        assert any(line.split()[0] == name for line in out.splitlines() if line.strip()), name
    assert "stale-read" in out  # raft-kv's bug switches, from the target's own list
    assert main(["list", "nemeses"]) == 0
    lines = [ln for ln in capsys.readouterr().out.strip().splitlines() if not ln.startswith(" ")]
    assert len(lines) == len(NEMESES) + 1 and all(len(ln.split()) > 2 for ln in lines)
    with pytest.raises(SystemExit) as e:
        main(["list", "bogus"])
    assert e.value.code == 254


def test_reproduce_argv_pins_the_seed_of_each_run() -> None:
    from dsjepsen.harness.runner import run_with_seed_offset

    cfg = config("--time-limit", "5", "--seed=9", "--test-count", "3", "--key-count", "2")
    second = run_with_seed_offset(cfg, 1)
    assert second.seed == 10
    assert second.reproduce_argv() == [
        "dsjepsen", "test", "--time-limit", "5", "--key-count", "2",
        "--seed", "10",
    ]  # fmt: skip
    unseeded = config("--time-limit", "5")
    assert unseeded.reproduce_argv()[-2:] == ["--seed", str(unseeded.seed)]


def test_canonical_argv_round_trips() -> None:
    from dataclasses import replace

    cfg = config("--bug", "stale-read", "--nemesis", "kill,pause", "--concurrency", "3n")
    cfg = replace(cfg, argv=())  # started from Python: rebuilt from the config
    argv = cfg.reproduce_argv()
    again = config_from_args(build_parser().parse_args(argv[1:]), argv=argv)
    assert replace(again, argv=()) == replace(cfg, seed_given=True)


@pytest.mark.cluster
def test_a_partition_on_one_node_is_refused_before_the_run(tmp_path) -> None:
    """Options that cannot work together are refused before anything runs: one line, 254,
    and no run directory."""
    from dsjepsen.cluster import localnet

    if not localnet.has_net_admin():
        pytest.skip("needs root (CAP_NET_ADMIN) for a namespace cluster")
    name = localnet.random_name("p1")
    try:
        p = subprocess.run(
            [sys.executable, "-m", "dsjepsen", "test", "--node-count", "1", "--cluster-name",
             name, "--nemesis", "partition-one", "--time-limit", "20", "--store", str(tmp_path)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert p.returncode == 254, p.stderr
        err = [ln for ln in p.stderr.splitlines() if "error" in ln]
        assert len(err) == 1 and "partition-one needs at least 2 nodes" in err[0], p.stderr
        assert not list(tmp_path.iterdir())
    finally:
        localnet.down(name)


# -- faults judged on what the node options say: SSH machines have kernels of their own ---------

ETCD = shutil.which("etcd")
ETCD_CLOCK = ["--target", "etcd", "--nemesis", "clock-bump", "--time-limit", "20"]


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed")
def test_etcd_clock_faults_are_refused_on_nodes_of_this_kernel(tmp_path) -> None:
    line = "libfaketime cannot move etcd's clock on nodes that share this machine's kernel"
    with pytest.raises(ConfigError, match="--nemesis: clock-bump cannot run against etcd: ") as e:
        config(*ETCD_CLOCK)  # the local cluster
    assert line in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=line):
        config(*ETCD_CLOCK, "--docker", "--nodes", "c1,c2,c3")
    mixed = tmp_path / "nodes.toml"  # one container among SSH machines shares this kernel
    mixed.write_text('[nodes.db1]\nhost = "10.9.0.1"\n[nodes.db2]\nbackend = "docker"\n')
    with pytest.raises(ConfigError, match=line):
        config(*ETCD_CLOCK, "--nodes-file", str(mixed))


@pytest.mark.skipif(ETCD is None, reason="etcd is not installed")
def test_etcd_clock_faults_are_accepted_on_ssh_machines(tmp_path) -> None:
    nodes = tmp_path / "nodes"
    nodes.write_text("# three machines\n10.9.0.1\nadmin@10.9.0.2:2222\n10.9.0.3\n")
    cfg = config(*ETCD_CLOCK, "--nodes-file", str(nodes))
    assert cfg.target == "etcd" and cfg.nemesis == ("clock-bump",)
    assert config(*ETCD_CLOCK, "--nodes", "db1,db2,db3").nemesis == ("clock-bump",)


def test_netem_faults_are_left_to_ssh_machines_own_kernels(tmp_path) -> None:
    from dsjepsen.nemesis.packet import controller_has_netem

    nodes = tmp_path / "nodes"
    nodes.write_text("10.9.0.1\n10.9.0.2\n")
    delay = ["--nemesis", "packet-delay", "--time-limit", "20"]
    assert config(*delay, "--nodes-file", str(nodes)).nemesis == ("packet-delay",)
    if controller_has_netem():
        assert config(*delay).nemesis == ("packet-delay",)
    else:
        with pytest.raises(ConfigError, match="needs the kernel module sch_netem"):
            config(*delay)


def test_a_package_written_before_the_nodes_parameter_is_still_asked() -> None:
    from dsjepsen.nemesis import catalog
    from dsjepsen.nemesis.base import FaultPackage, NodeFacts

    seen: list[tuple] = []

    class Old(FaultPackage):
        faults = {"old": "a fault"}

        def nemesis(self, name, target, rng, options):
            raise AssertionError("not built here")

        def unsupported(self, name, target):
            seen.append((name, target))
            return "old says no"

    class New(Old):
        def unsupported(self, name, target, nodes=NodeFacts()):
            seen.append((name, target, nodes.own_kernels))
            return None if nodes.own_kernels else "new says no"

    own = NodeFacts(own_kernels=True)
    assert catalog.unsupported(Old(), "old", "t", own) == "old says no"
    assert catalog.unsupported(New(), "old", "t", own) is None
    assert catalog.unsupported(New(), "old", "t") == "new says no"
    assert seen == [("old", "t"), ("old", "t", True), ("old", "t", False)]
