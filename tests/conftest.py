"""Shared fixtures. `make_cluster` builds real local namespace clusters for a test and always
tears them down (and checks that nothing is left) afterwards, also when the test fails."""

from __future__ import annotations

import secrets
import shutil
import string
from collections.abc import Callable, Iterator

import pytest

from dsjepsen.harness import localnet
from dsjepsen.harness.cluster import Cluster


def cluster_unsupported() -> str | None:
    """Why real namespace clusters cannot run here, or None when they can."""
    if not localnet.has_net_admin():
        return "needs root (CAP_NET_ADMIN) for network namespaces"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    try:
        localnet.list_netns()
    except Exception as e:  # noqa: BLE001 - any failure means: cannot run here
        return f"`ip netns` does not work here: {e}"
    return None


def unique_cluster_name() -> str:
    """7 characters, 't' + 6 random: parallel test processes never share a cluster."""
    alphabet = string.ascii_lowercase + string.digits
    return "t" + "".join(secrets.choice(alphabet) for _ in range(6))


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(node_count=3, subnet=None) -> Cluster`: a fresh, uniquely named local
    cluster; every one made is taken down and verified gone when the test ends."""
    reason = cluster_unsupported()
    if reason:
        pytest.skip(reason)
    made: list[tuple[str, Cluster | None]] = []

    def make(node_count: int = 3, subnet: str | None = None) -> Cluster:
        name = unique_cluster_name()
        made.append((name, None))
        cluster = localnet.up(name, node_count=node_count, subnet=subnet)
        made[-1] = (name, cluster)
        return cluster

    yield make

    problems = []
    for name, cluster in made:
        if cluster is not None:
            cluster.close()
        try:
            localnet.down(name)
        except Exception as e:  # noqa: BLE001 - report every cluster, then fail
            problems.append(f"{name}: {e}")
        left = localnet.remains(name)
        if left:
            problems.append(f"{name}: left behind {left}")
    if problems:
        pytest.fail("cluster teardown: " + "; ".join(problems))
