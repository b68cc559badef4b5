"""The http-kv target: a user's own server, started from a command template, tested as a black
box. The cluster tests use the reference raft-kv server as "the student's server" through the
template only (the target knows nothing about it): correct, it passes a partition test; with
its stale-read bug switched on in the template, the same test finds the anomaly.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from dsjepsen.cli import build_parser
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.errors import ConfigError, HarnessError
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.config import TestConfig, config_from_args
from dsjepsen.harness.runner import Runner, RunOutcome
from dsjepsen.targets.http_kv import HttpKvTarget, render_command, template_fields

REFERENCE_SERVER = (
    f"{shlex.quote(sys.executable)} -m dsjepsen.targets.raft_kv.server --id {{node}} "
    "--listen 0.0.0.0:{port} --advertise {address}:{port} --peers {peers} --data-dir {data_dir}"
)


def make_config(*argv: str) -> TestConfig:
    full = ["test", *argv]
    return config_from_args(build_parser().parse_args(full), argv=["dsjepsen", *full])


# -- template substitution -------------------------------------------------------------------


def test_hostile_values_stay_one_argument_each() -> None:
    hostile = {
        "node": "n1; rm -rf /",
        "address": "$(touch /tmp/pwned)",
        "port": "7070",
        "peers": "a b\tc 'd' \"e\" `f`",
        "all_nodes": "",
        "data_dir": "/tmp/with space/and'quote\\",
    }
    argv = render_command(
        "srv --id {node} --addr={address} --peers {peers} --all {all_nodes} {data_dir}", hostile
    )
    assert argv == [
        "srv",
        "--id",
        hostile["node"],
        f"--addr={hostile['address']}",
        "--peers",
        hostile["peers"],
        "--all",
        "",
        hostile["data_dir"],
    ]


def test_literal_braces_and_repeated_placeholders() -> None:
    argv = render_command("s {port} -e '{{\"a\": 1}}' {port}", {"port": "7070"})
    assert argv == ["s", "7070", "-e", '{"a": 1}', "7070"]
    assert template_fields("a {node} {port} {node}") == ["node", "port", "node"]


@pytest.mark.parametrize(
    "template, fragment",
    [
        ("srv --id {nod}", "unknown placeholder {nod}"),
        ("srv {0}", "unknown placeholder {0}"),
        ("srv {node.x}", "unknown placeholder {node.x}"),
        ("srv {port:5}", "takes no format"),
        ("srv {node", "malformed template"),
        ("srv 'unclosed {node}", "cannot split"),
        ("   ", "required with --target http-kv"),
    ],
)
def test_bad_templates_are_one_config_error(template: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        HttpKvTarget(template)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_argv_for_a_node_fills_every_placeholder() -> None:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Node

    nodes = [Node(f"n{i}", f"10.9.0.{i}", f"/w/n{i}") for i in (1, 2, 3)]
    cluster = Cluster(kind="local", nodes=nodes, remotes={})
    t = HttpKvTarget("s {node} {address} {port} {peers} {all_nodes} {data_dir}", port=7071)
    assert t.argv(cluster, nodes[1]) == [
        "s",
        "n2",
        "10.9.0.2",
        "7071",
        "n1=10.9.0.1:7071,n3=10.9.0.3:7071",
        "n1=10.9.0.1:7071,n2=10.9.0.2:7071,n3=10.9.0.3:7071",
        "/w/n2/http-kv/data",
    ]


# -- options ---------------------------------------------------------------------------------


def test_cli_options_reach_the_target(tmp_path: Path) -> None:
    cfg = make_config("--target", "http-kv", "--server-cmd", "s {node}", "--server-port", "7171")
    assert (cfg.option("server-cmd"), cfg.option("server-port")) == ("s {node}", 7171)
    from dsjepsen.harness.phases import RunContext, build
    from dsjepsen.harness.recorder import Recorder
    from dsjepsen.harness.store import create_run_dir

    run_dir = create_run_dir(str(tmp_path), "t")
    cluster = Cluster(kind="ssh", nodes=[], remotes={})
    ctx = RunContext(cfg, cluster, run_dir, Recorder(run_dir.history_path))
    build(ctx)
    target = ctx.target
    assert isinstance(target, HttpKvTarget)
    assert (target.server_cmd, target.port) == ("s {node}", 7171)
    assert "--server-cmd" in cfg.canonical_argv()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--target", "http-kv"], "--server-cmd: required with --target http-kv"),
        (["--target", "http-kv", "--server-cmd", "s {nodes}"], "unknown placeholder {nodes}"),
        (["--target", "raft-kv", "--server-cmd", "s"], "--server-cmd: not an option of target"),
        (["--target", "http-kv", "--server-cmd", "s", "--server-port", "0"], "--server-port"),
        (["--target", "http-kv", "--server-cmd", "s", "--bug", "stale-read"], "--bug"),
    ],
)
def test_bad_options_are_one_line(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        make_config(*argv)
    assert message in str(e.value) and "\n" not in str(e.value)


# -- real clusters ---------------------------------------------------------------------------


def run_test(cluster, store: Path, *argv: str) -> RunOutcome:
    return Runner(make_config("--store", str(store), *argv), cluster).run()


@pytest.mark.cluster
def test_reference_server_through_the_template_is_valid(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "http-kv", "--server-cmd", REFERENCE_SERVER,
        "--nemesis", "partition-majority", "--time-limit", "10", "--nemesis-interval", "3",
        "--seed", "11",
    )  # fmt: skip
    assert out.valid is True, out.results.get("reason")
    stats = out.results["stats"]["by_f"]
    assert stats["read"]["ok"] > 20 and stats["write"]["ok"] > 20
    history = read_jsonl(out.run_dir / "history.jsonl")
    assert any(op.f == "start-partition" and op.type == "ok" for op in history.nemesis_ops())
    for name in cluster.names:  # the server's own output was collected from every node
        logs = list((out.run_dir / "nodes" / name).iterdir())
        assert logs and all(p.stat().st_size > 0 for p in logs), name


@pytest.mark.cluster
def test_stale_read_server_through_the_template_is_invalid(pooled_cluster, tmp_path: Path) -> None:
    cluster = pooled_cluster(node_count=3)
    out = run_test(
        cluster, tmp_path, "--target", "http-kv",
        "--server-cmd", REFERENCE_SERVER + " --bug stale-read",
        "--nemesis", "partition-majority", "--time-limit", "10", "--nemesis-interval", "3",
        "--seed", "11",
    )  # fmt: skip
    assert out.valid is False, out.results.get("reason")
    lin = out.results["checks"]["linearizable"]
    assert lin["valid"] is False and lin["anomalies"][0]["op"]["f"] == "read"


@pytest.mark.cluster
def test_a_server_that_never_listens_fails_setup_naming_nodes_and_logs(pooled_cluster) -> None:
    cluster = pooled_cluster(node_count=3)
    target = HttpKvTarget("sh -c 'echo booting {node}; exec sleep 60'", setup_timeout=3.0)
    try:
        with pytest.raises(HarnessError) as e:
            target.setup(cluster)
        message = str(e.value)
        for node in cluster.nodes:
            assert node.name in message and target.log_file(node) in message
        assert all(target.pid(cluster, n) for n in cluster.names)
    finally:
        target.teardown(cluster)
    assert not any(target.pid(cluster, n) for n in cluster.names)


# -- {env:NAME}: secrets from the controller's environment, never stored ---------------------


def test_env_placeholder_is_one_argument_and_masked_when_shown() -> None:
    environ = {"DSJ_PW": "s3cr3t $(x) 'q' two words", "OTHER": ""}
    template = "srv --pw {env:DSJ_PW} --opt=a{env:OTHER}b --id {node}"
    argv = render_command(template, {"node": "n1"}, environ)
    assert argv == ["srv", "--pw", environ["DSJ_PW"], "--opt=ab", "--id", "n1"]
    shown = render_command(template, {"node": "n1"}, environ, mask_env=True)
    assert shown == ["srv", "--pw", "{env:DSJ_PW}", "--opt=a{env:OTHER}b", "--id", "n1"]
    assert template_fields(template) == ["env:DSJ_PW", "env:OTHER", "node"]
    with pytest.raises(ConfigError, match=r"environment variable DSJ_NOPE is not set"):
        render_command("srv {env:DSJ_NOPE}", {}, environ)


@pytest.mark.parametrize("bad", ["{env}", "{env:}", "{env:1X}", "{env:A-B}", "{env!r}"])
def test_bad_env_placeholders_are_one_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as e:
        render_command(f"srv {bad}", {}, {})
    assert "--server-cmd" in str(e.value) and "\n" not in str(e.value)


def test_unset_env_variable_is_one_line_and_exit_254_before_the_run(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "DSJ_UNSET_SECRET"}
    res = subprocess.run(
        [
            sys.executable, "-m", "dsjepsen", "test", "--target", "http-kv",
            "--server-cmd", "srv --token {env:DSJ_UNSET_SECRET} --id {node}",
            "--store", str(tmp_path / "store"), "--cluster-name", "nosuch",
        ],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 254, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "DSJ_UNSET_SECRET" in lines[0], res.stderr
    assert not (tmp_path / "store").exists()  # refused before anything was made


@pytest.mark.cluster
def test_env_secret_reaches_the_server_and_never_the_store(
    pooled_cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsjepsen.harness.runner import _Hooks

    secret = "tok-" + "7f3a9c" * 4
    monkeypatch.setenv("DSJ_TEST_SECRET", secret)
    cluster = pooled_cluster(node_count=3)
    # the reference server given the secret in its environment, through env(1) on the node
    cmd = "env SERVER_TOKEN={env:DSJ_TEST_SECRET} " + REFERENCE_SERVER
    seen: list[bool] = []

    def server_has_the_secret(ctx) -> None:
        pid = ctx.target.pid(cluster, "n1")
        seen.append(f"SERVER_TOKEN={secret}".encode() in Path(f"/proc/{pid}/environ").read_bytes())

    cfg = make_config(
        "--store", str(tmp_path), "--target", "http-kv", "--server-cmd", cmd,
        "--time-limit", "3", "--seed", "5",
    )  # fmt: skip
    out = Runner(cfg, cluster, hooks=_Hooks(after_setup=[server_has_the_secret])).run()
    assert out.valid is True, out.results.get("reason")
    assert seen == [True]
    test_json = (out.run_dir / "test.json").read_text()
    assert "{env:DSJ_TEST_SECRET}" in test_json
    for path in out.run_dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
