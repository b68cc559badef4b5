"""Node selection: options and nodes files -> Cluster, with one-line errors naming the file,
line and key; the SSH path is opened against the real sshd of the test cluster."""

from __future__ import annotations

import argparse

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.control.ssh import SshRemote
from dsjepsen.cluster.nodes import add_node_options, open_nodes
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
        (["--nodes", "a;b"], "invalid node name"),
        (["--nodes", "a", "--nodes-file", "x.toml"], "mutually exclusive"),
        (["--docker"], "--docker needs --nodes"),
        (["--nodes", "a", "--ssh-port", "70000"], "--ssh-port 70000"),
    ],
)
def test_bad_options_are_config_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        open_nodes(parse(*argv), check=False)


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
    """`cluster up --nodes 3` then `dsjepsen test` uses those 3 nodes; an explicit
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
