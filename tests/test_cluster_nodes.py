"""Node selection: options and nodes files -> Cluster, with one-line errors naming the file,
line and key; the SSH path is opened against the real sshd of the test cluster."""

from __future__ import annotations

import argparse
import re

import pytest

from dsjepsen import cli
from dsjepsen.cluster import localnet
from dsjepsen.cluster.control.docker import DockerBackend
from dsjepsen.cluster.control.ssh import SshRemote
from dsjepsen.cluster.nodes import (
    Backends,
    add_node_options,
    is_toml_nodes_file,
    load_nodes_file,
    open_nodes,
)
from dsjepsen.errors import ConfigError, InputError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_node_options(parser)
    return parser.parse_args(list(argv))


def test_nodes_list_builds_ssh_nodes_without_connecting():
    args = parse("--nodes", "db1,db2,10.0.0.3", "--ssh-user", "admin", "--ssh-port", "2200")
    cluster = open_nodes(args, check=False)
    assert cluster.kind == "ssh" and cluster.names == ["db1", "db2", "10.0.0.3"]
    assert cluster.node("10.0.0.3").address == "10.0.0.3"
    assert cluster.node("db1").workdir == "/var/lib/dsjepsen/db1"
    r = cluster.remote("db2")
    assert isinstance(r, SshRemote)
    assert (r.config.user, r.config.port, r.config.use_sudo) == ("admin", 2200, True)
    assert not r.config.insecure_host_keys


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nodes", "a,,b"], "empty node name"),
        (["--nodes", "a,b,a"], "duplicate node 'a'"),
        (["--nodes", "a;b"], "malformed node 'a;b'"),
        # found by the adversarial probe (issue 22): each one line, before any node is touched
        (["--nodes", "h:99999"], "--nodes: node 'h:99999': port must be 1-65535"),
        (["--nodes", "3"], "for a local cluster of 3 nodes use --node-count 3"),
        (["--nodes", "a,b", "--node-count", "2"], "--node-count sizes the local cluster"),
        (["--nodes", "a", "--force-node-count"], "--force-node-count applies to the local"),
        (["--nodes", "a", "--nodes-file", "x.toml"], "mutually exclusive"),
        (["--docker"], "--docker needs --nodes"),
        (["--nodes", "a", "--ssh-port", "70000"], "--ssh-port 70000"),
    ],
)
def test_bad_options_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        open_nodes(parse(*argv), check=False)


def test_a_nodes_file_that_is_not_a_regular_file_is_refused_unread():
    # /dev/zero once read until memory ran out (issue 22)
    with pytest.raises(InputError, match="a character device, not a regular file") as e:
        open_nodes(parse("--nodes-file", "/dev/zero"), check=False)
    assert e.value.exit_code == 254


def test_nodes_file(tmp_path):
    f = tmp_path / "nodes.toml"
    f.write_text(
        '[defaults]\nuser = "ops"\nkey = "/k"\n\n'
        '[nodes.n1]\nhost = "10.1.1.1"\n\n'
        '[nodes.n2]\nhost = "10.1.1.2"\nport = 2222\nuser = "root"\nworkdir = "/srv/d"\n'
    )
    cluster = open_nodes(parse("--nodes-file", str(f)), check=False)
    assert cluster.names == ["n1", "n2"]
    n1, n2 = cluster.remote("n1"), cluster.remote("n2")
    assert (n1.host, n1.config.user, n1.config.port, n1.config.key_file) == (
        "10.1.1.1",
        "ops",
        22,
        "/k",
    )
    assert (n2.host, n2.config.user, n2.config.port) == ("10.1.1.2", "root", 2222)
    assert cluster.node("n2").workdir == "/srv/d"


@pytest.mark.parametrize(
    "text, message, line",
    [
        ('[nodes.n1]\nhost = "a"\n\n[nodes.n2]\nport = "22"\n', "nodes.n2.port: must be int", 4),
        ('[nodes.n1]\nhost = "a"\nprot = 22\n', "nodes.n1: unknown key 'prot'", 1),
        ('[nodes.n1]\nhost = "a"\nport = 0\n', "nodes.n1.port: must be 1-65535", 1),
        ('[nodes.n1]\nhost = "a"\nsudo = "yes"\n', "nodes.n1.sudo: must be bool", 1),
        ('[nodes.n1]\nhost = "a"\n\n[nodes.n2\n', "invalid TOML", 4),
        ("[defaults]\nuser = 'x'\n", "no nodes", None),
        ('[servers.n1]\nhost = "a"\n', "unknown section 'servers'", None),
    ],
)
def test_nodes_file_errors_name_file_line_and_key(tmp_path, text, message, line):
    f = tmp_path / "nodes.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=message) as e:
        open_nodes(parse("--nodes-file", str(f)), check=False)
    assert e.value.path == str(f) and e.value.line == line
    assert str(e.value).startswith(f"{f}:")


def test_missing_nodes_file(tmp_path):
    with pytest.raises(InputError, match="cannot read nodes file"):
        open_nodes(parse("--nodes-file", str(tmp_path / "nope.toml")), check=False)


@pytest.mark.cluster
def test_nodes_file_reaches_the_real_sshd(ssh_server, tmp_path):
    f = tmp_path / "nodes.toml"
    f.write_text(
        f'[defaults]\nport = {ssh_server.port}\nkey = "{ssh_server.key}"\n'
        f'known_hosts = "{ssh_server.known_hosts}"\n\n'
        f'[nodes.db1]\nhost = "{ssh_server.node.address}"\n'
    )
    cluster = open_nodes(parse("--nodes-file", str(f)))  # check=True: connects now
    try:
        assert cluster.remote("db1").run(["echo", "ok"]).stdout == "ok\n"
    finally:
        cluster.close()
    f.write_text(
        f.read_text() + f'\n[nodes.db2]\nhost = "{ssh_server.node.address}"\nport = 2299\n'
    )
    with pytest.raises(Exception, match="node db2: cannot reach root@.*refused"):
        open_nodes(parse("--nodes-file", str(f)))


@pytest.mark.cluster
def test_plain_nodes_file_reaches_the_real_sshd(ssh_server, tmp_path):
    f = tmp_path / "nodes.txt"
    f.write_text(f"# one sshd\nroot@{ssh_server.node.address}:{ssh_server.port}\n")
    args = parse(
        "--nodes-file",
        str(f),
        "--ssh-key",
        str(ssh_server.key),
        "--ssh-known-hosts",
        str(ssh_server.known_hosts),
    )
    cluster = open_nodes(args)  # check=True: connects now
    try:
        assert cluster.names == [ssh_server.node.address]
        assert cluster.remote(ssh_server.node.address).run(["echo", "ok"]).stdout == "ok\n"
    finally:
        cluster.close()


@pytest.mark.cluster
def test_no_option_means_the_local_cluster_created_on_demand():
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name()
    try:
        with pytest.raises(ConfigError, match="no local cluster named"):
            open_nodes(parse("--cluster-name", name), create=False)
        cluster = open_nodes(parse("--cluster-name", name, "--node-count", "3"))
        assert cluster.kind == "local" and cluster.names == ["n1", "n2", "n3"]
        assert open_nodes(parse("--cluster-name", name), create=False).names == cluster.names
    finally:
        localnet.down(name)
    assert localnet.remains(name) == []


@pytest.mark.cluster
def test_node_count_follows_the_existing_cluster_unless_given():
    """`cluster up --node-count 3` then `dsjepsen test` uses those 3 nodes; an explicit
    --node-count of another size rebuilds the cluster instead of failing."""
    reason = localnet.unsupported_reason()
    if reason:
        pytest.skip(reason)
    name = localnet.random_name()
    try:
        localnet.up(name, node_count=3)
        assert len(open_nodes(parse("--cluster-name", name)).nodes) == 3
        rebuilt = open_nodes(parse("--cluster-name", name, "--node-count", "4"))
        assert rebuilt.names == ["n1", "n2", "n3", "n4"]
        assert len(open_nodes(parse("--cluster-name", name)).nodes) == 4
        with pytest.raises(ConfigError, match="--node-count 0"):
            open_nodes(parse("--cluster-name", name, "--node-count", "0"))
    finally:
        localnet.down(name)
    assert localnet.remains(name) == []


# ---------------------------------------------------------------- plain nodes files


def test_plain_nodes_file_one_host_per_line(tmp_path):
    f = tmp_path / "nodes.txt"
    f.write_text(
        "# the test machines\n\n"
        "db1\n"
        "  10.0.0.2   # inline comment\n"
        "admin@db3:2222\n"
        "[fd00::4]:2200\n"
        "fd00::5\n"
    )
    args = parse("--nodes-file", str(f), "--ssh-user", "ops", "--ssh-key", "/k")
    cluster = open_nodes(args, check=False)
    assert cluster.kind == "ssh"
    assert cluster.names == ["db1", "10.0.0.2", "db3", "fd00::4", "fd00::5"]
    got = {
        n: (r.host, r.config.user, r.config.port, r.config.key_file)
        for n in cluster.names
        for r in [cluster.remote(n)]
    }
    assert got == {
        "db1": ("db1", "ops", 22, "/k"),
        "10.0.0.2": ("10.0.0.2", "ops", 22, "/k"),
        "db3": ("db3", "admin", 2222, "/k"),
        "fd00::4": ("fd00::4", "ops", 2200, "/k"),
        "fd00::5": ("fd00::5", "ops", 22, "/k"),
    }
    assert cluster.node("db3").workdir == "/var/lib/dsjepsen/db3"


def test_plain_nodes_file_one_host_several_ports(tmp_path):
    f = tmp_path / "nodes"
    f.write_text("127.0.0.1:2201\n127.0.0.1:2202\n")
    cluster = open_nodes(parse("--nodes-file", str(f)), check=False)
    assert cluster.names == ["127.0.0.1:2201", "127.0.0.1:2202"]
    assert [cluster.remote(n).config.port for n in cluster.names] == [2201, 2202]


@pytest.mark.parametrize(
    "text, message, line",
    [
        ("db1\ndb2 db3\n", "malformed node line 'db2 db3'", 2),
        ("# c\n\nroot@@db1\n", "malformed node line", 3),
        ("db1\ndb2:99999\n", "port must be 1-65535", 2),
        ("db1\ndb2:ssh\n", "malformed node line", 2),
        ("[fd00::1::2]:22\n", "no IPv6 address", 1),
        ("db1\n\ndb1\n", "duplicate node 'db1' (first on line 1)", 3),
        ("# nothing here\n\n", "no nodes", None),
    ],
)
def test_plain_nodes_file_errors_name_file_and_line(tmp_path, text, message, line):
    f = tmp_path / "nodes.txt"
    f.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)) as e:
        open_nodes(parse("--nodes-file", str(f)), check=False)
    assert e.value.path == str(f) and e.value.line == line
    assert e.value.exit_code == 254


def test_plain_nodes_file_of_containers(tmp_path):
    f = tmp_path / "containers.txt"
    f.write_text("dsj-n1\ndsj-n2\n")
    docker = DockerBackend()
    specs = load_nodes_file(str(f), docker, Backends(argparse.Namespace()))
    assert [(s.name, s.backend, s.settings["container"]) for s in specs] == [
        ("dsj-n1", "docker", "dsj-n1"),
        ("dsj-n2", "docker", "dsj-n2"),
    ]
    f.write_text("dsj-n1\nroot@dsj-n2\n")
    with pytest.raises(InputError, match="one container name per line") as e:
        load_nodes_file(str(f), docker, Backends(argparse.Namespace()))
    assert e.value.line == 2


def test_toml_is_told_apart_from_a_plain_list():
    assert is_toml_nodes_file('[nodes.n1]\nhost = "a"\n')
    assert is_toml_nodes_file("[defaults]\n")
    assert is_toml_nodes_file("[nodes.n2\n")  # broken TOML stays TOML: its own error
    assert not is_toml_nodes_file("# hosts\ndb1\n[fd00::1]:22\nfd00::2\nu@h:1\n")


def test_malformed_plain_line_is_one_line_exit_254(tmp_path, capsys):
    f = tmp_path / "nodes.txt"
    f.write_text("db1\ndb2;rm\n")
    code = cli.main(["cluster", "exec", "--nodes-file", str(f), "db1", "--", "true"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 254
    assert err == [
        f"dsjepsen: error: {f}:2: malformed node line 'db2;rm' (expected [user@]host[:port])"
    ]
