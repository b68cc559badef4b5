"""The docker backend's command construction and its errors without an engine; the real
path (commands through the agent, timeouts, files, signals) is exercised by the conformance
suite and tests/test_docker_runs.py on an engine the suite starts when none runs."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

import pytest

from dsjepsen.cluster.control.base import Node, RemoteConfigError, RemoteError
from dsjepsen.cluster.control.docker import (
    DockerRemote,
    cp_argv,
    docker_engine_answers,
    exec_argv,
    inspect_argv,
    local_path,
    validate_container,
)
from dsjepsen.cluster.nodes import add_node_options, open_nodes
from dsjepsen.errors import EXIT_BAD_CONFIG, ConfigError


def test_exec_argv_passes_the_argv_untouched():
    hostile = ["python3", "-c", "print(1)", "$(rm -rf /)", "a b", "it's\nnl"]
    assert exec_argv("db1", hostile) == ["docker", "exec", "--", "db1", *hostile]
    assert exec_argv("db1", ["ls"], env={"A": "x y", "LD_PRELOAD": "/l.so"}, cwd="/w d", interactive=True) == [
        "docker", "exec", "-i", "-e", "A=x y", "-e", "LD_PRELOAD=/l.so", "-w", "/w d", "--", "db1", "ls",
    ]  # fmt: skip
    assert cp_argv("/tmp/a", "db1:/var/lib/x") == ["docker", "cp", "--", "/tmp/a", "db1:/var/lib/x"]


def test_bad_env_names_and_empty_commands_are_refused():
    with pytest.raises(ConfigError, match="environment variable name"):
        exec_argv("db1", ["ls"], env={"A=B": "x"})
    with pytest.raises(RemoteError, match="empty command"):
        exec_argv("db1", [])


def test_remote_uses_node_name_as_container_by_default():
    r = DockerRemote(Node("c1", "172.17.0.2", "/var/lib/dsjepsen/c1"))
    assert r.container == "c1"
    assert DockerRemote(Node("n1", "a", "/"), container="real").container == "real"


def test_without_a_cli_or_engine_the_error_is_one_line():
    r = DockerRemote(Node("c1", "x", "/"), docker="dsj-no-such-docker-cli")
    with pytest.raises(RemoteConfigError, match="node c1: dsj-no-such-docker-cli CLI not found"):
        r.run(["true"])
    if shutil.which("docker") is None:
        pytest.skip("docker CLI absent: the no-engine path was not exercised")
    if docker_engine_answers() is None:
        with pytest.raises(
            RemoteConfigError, match="container dsj-no-such-container does not exist"
        ):
            DockerRemote(Node("dsj-no-such-container", "x", "/")).run(["true"])
    else:
        with pytest.raises(RemoteError, match="docker engine is not answering") as e:
            DockerRemote(Node("c1", "x", "/")).run(["true"])
        assert "\n" not in str(e.value)


# ---------------------------------------------------------------- issue 10: option injection


def test_every_command_puts_double_dash_before_the_container():
    assert exec_argv("-c1", ["ls"])[:4] == ["docker", "exec", "--", "-c1"]
    assert cp_argv("/tmp/a", "-c1:/x") == ["docker", "cp", "--", "/tmp/a", "-c1:/x"]
    assert inspect_argv("c1", "{{.Id}}") == ["docker", "inspect", "-f", "{{.Id}}", "--", "c1"]
    assert inspect_argv("c1", "{{.Id}}", docker="/usr/bin/docker")[0] == "/usr/bin/docker"


def test_local_cp_paths_are_absolute():
    # relative `a:b` would be read by docker as container a, path b; `-` as a tar on stdin
    assert local_path("a:b") == os.path.join(os.getcwd(), "a:b")
    assert local_path("-") == os.path.join(os.getcwd(), "-")
    assert local_path("/tmp/x") == "/tmp/x"


@pytest.mark.parametrize(
    ("node", "container", "message"),
    [
        ("n1", "-v", "node n1: container name '-v' starts with '-'"),
        ("--privileged", None, "node --privileged: container name '--privileged' starts with '-'"),
        ("n2", "c1:/etc", "node n2: invalid container name 'c1:/etc'"),
        ("n3", "c 1", "node n3: invalid container name 'c 1'"),
    ],
)
def test_container_names_docker_cannot_have_are_refused(node, container, message):
    with pytest.raises(ConfigError) as e:
        DockerRemote(Node(node, "x", "/"), container=container)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert e.value.exit_code == EXIT_BAD_CONFIG
    assert validate_container("n1", "db_1.test-2") == "db_1.test-2"
    assert validate_container("n1", "0123abcdef") == "0123abcdef"  # an id


def test_node_selection_refuses_an_option_like_container():
    """--docker --nodes=-x: refused as it is parsed, before any container is reached (one
    line, exit 254); the constructor refuses it too (validate_container, above)."""
    parser = argparse.ArgumentParser()
    add_node_options(parser)
    with pytest.raises(
        ConfigError, match=r"^--nodes: malformed node '-x' \(expected container name\)"
    ):
        open_nodes(parser.parse_args(["--docker", "--nodes=-x,c1"]), check=False)


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
def test_the_real_docker_cli_reads_the_name_after_double_dash_as_a_name(tmp_path):
    """The docker CLI itself parses our argv (it fails later, at the engine, which a
    nonexistent socket makes certain): with `--` the option-like name is an argument, and
    without it the same name is an option."""
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}

    def stderr(argv):
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert res.returncode != 0
        return res.stderr

    for argv in (
        exec_argv("-c1", ["ls", "-la"], env={"A": "b"}, cwd="/w", interactive=True),
        cp_argv("/tmp/nonexistent-src", "-c1:/x"),
        inspect_argv("-c1", "{{.Id}}"),
    ):
        err = stderr(argv)
        assert "unknown shorthand flag" not in err and "Usage:" not in err, (argv, err)
    without = [w for w in exec_argv("-c1", ["ls"]) if w != "--"]
    assert "unknown shorthand flag: 'c'" in stderr(without)
