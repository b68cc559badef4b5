"""Issue 10: a local cluster larger than this machine can host is refused with the figures,
before anything is created or torn down, unless forced (`--force-node-count`)."""

from __future__ import annotations

import os

import pytest

from dsjepsen.cluster import localnet
from dsjepsen.cluster.localnet import GIB, MIB, check_node_count, max_node_count
from dsjepsen.errors import EXIT_BAD_CONFIG, ConfigError


def test_the_rule() -> None:
    # the machine the issue was found on: 2 cores, 24 GiB
    assert max_node_count(2, 24 * GIB) == 16
    for n in (3, 5, 7):
        assert n <= max_node_count(2, 24 * GIB)
    assert max_node_count(2, 24 * GIB) < 200
    # memory bounds a small machine, CPU a big one, MAX_NODES everything
    assert max_node_count(1, 1 * GIB) == 6  # 768 MiB left after a quarter for the controller
    assert max_node_count(8, 2 * GIB) == 12  # 1.5 GiB left (a quarter kept): 12 x 128 MiB
    assert max_node_count(256, 1024 * GIB) == localnet.MAX_NODES
    assert max_node_count(1, 64 * MIB) == 1  # never below one node
    assert max_node_count(0, 0) == 1


def test_machine_resources_are_this_machines() -> None:
    cores, memory = localnet.machine_resources()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    assert memory > 64 * MIB


def test_refusal_names_the_option_the_count_and_the_estimate() -> None:
    cores, memory = localnet.machine_resources()
    limit = max_node_count(cores, memory)
    check_node_count(limit)  # the estimate itself is allowed
    with pytest.raises(ConfigError) as e:
        check_node_count(limit + 1)
    msg = str(e.value)
    assert msg.startswith(f"--node-count {limit + 1}: this machine can host about {limit} ")
    assert f"{cores} cores" in msg and "--force-node-count" in msg and "\n" not in msg
    assert e.value.exit_code == EXIT_BAD_CONFIG
    check_node_count(limit + 1, force=True)


@pytest.mark.cluster
def test_up_refuses_before_creating_or_rebuilding_and_force_overrides(make_cluster) -> None:
    limit = max_node_count(*localnet.machine_resources())
    name = localnet.random_name()
    try:
        with pytest.raises(ConfigError, match=rf"--node-count {limit + 1}: .* about {limit} "):
            localnet.up(name, node_count=limit + 1)
        assert localnet.remains(name) == []  # nothing was made
    finally:
        localnet.down(name)
    # an existing cluster is not torn down for a rebuild that is then refused
    existing = make_cluster(node_count=2)
    with pytest.raises(ConfigError, match="--node-count"):
        localnet.up(existing.name, node_count=limit + 1, rebuild=True)
    assert localnet.missing_parts(localnet.read_state(existing.name)) == []
    # and an existing cluster of the right size is returned without a check
    assert len(localnet.up(existing.name).nodes) == 2
    # the override really builds it (one past the estimate: cheap, a namespace is ~70 ms)
    forced = localnet.random_name()
    try:
        cluster = localnet.up(forced, node_count=limit + 1, force=True)
        assert len(cluster.nodes) == limit + 1
        cluster.close()
    finally:
        localnet.down(forced)
        assert localnet.remains(forced) == []
