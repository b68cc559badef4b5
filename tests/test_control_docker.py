"""The docker backend's command construction (no engine here: the real path is exercised by
the conformance suite when `docker info` answers) and its errors without an engine."""

from __future__ import annotations

import shutil

import pytest

from dsjepsen.errors import ConfigError
from dsjepsen.cluster.control.base import Node, RemoteConfigError, RemoteError
from dsjepsen.cluster.control.docker import DockerRemote, cp_argv, docker_engine_answers, exec_argv


def test_exec_argv_passes_the_argv_untouched():
    hostile = ["python3", "-c", "print(1)", "$(rm -rf /)", "a b", "it's\nnl"]
    assert exec_argv("db1", hostile) == ["docker", "exec", "db1", *hostile]
    assert exec_argv("db1", ["ls"], env={"A": "x y", "LD_PRELOAD": "/l.so"}, cwd="/w d", interactive=True) == [
        "docker", "exec", "-i", "-e", "A=x y", "-e", "LD_PRELOAD=/l.so", "-w", "/w d", "db1", "ls",
    ]  # fmt: skip
    assert cp_argv("/tmp/a", "db1:/var/lib/x") == ["docker", "cp", "/tmp/a", "db1:/var/lib/x"]


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
