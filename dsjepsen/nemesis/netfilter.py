"""iptables rules for partitions, installed inside each node through its Remote.

All our rules live in one chain of our own (`DSJ-PARTITION`, filter table) that INPUT jumps
to, so healing removes exactly what we added and nothing the node's owner configured: delete
every jump to the chain, flush it, delete it. Healing parses `iptables -S` instead of
interpreting error messages, so it is idempotent, quiet when there is nothing to remove and
works after a harness crash left rules behind.

Packets are dropped by source address on INPUT. With symmetric grudges that cuts both
directions of every TCP connection, and the controller (whose address is not a node's) keeps
reaching every node, as Jepsen's clients do.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.control.base import Remote
from dsjepsen.errors import HarnessError

CHAIN = "DSJ-PARTITION"
TIMEOUT = 20.0


def _rules(remote: Remote, timeout: float) -> list[list[str]]:
    res = remote.run(["iptables", "-w", "-t", "filter", "-S"], timeout=timeout)
    return [shlex.split(line) for line in res.stdout.splitlines() if line.strip()]


def _jumps(rules: Iterable[list[str]]) -> list[list[str]]:
    """The `-A <chain> ... -j DSJ-PARTITION` rules, as iptables -S prints them."""
    out = []
    for r in rules:
        if r[:1] == ["-A"] and any(
            r[i] in ("-j", "-g") and r[i + 1] == CHAIN for i in range(len(r) - 1)
        ):
            out.append(r)
    return out


def chain_present(remote: Remote, timeout: float = TIMEOUT) -> bool:
    """True when the node has our chain or any jump to it."""
    rules = _rules(remote, timeout)
    return bool(_jumps(rules)) or ["-N", CHAIN] in rules


def heal_node(remote: Remote, timeout: float = TIMEOUT) -> bool:
    """Remove our chain and every jump to it; True when there was something to remove."""
    rules = _rules(remote, timeout)
    jumps = _jumps(rules)
    has_chain = ["-N", CHAIN] in rules
    for rule in jumps:
        remote.run(["iptables", "-w", "-t", "filter", "-D", *rule[1:]], timeout=timeout)
    if has_chain:
        remote.run(["iptables", "-w", "-t", "filter", "-F", CHAIN], timeout=timeout)
        remote.run(["iptables", "-w", "-t", "filter", "-X", CHAIN], timeout=timeout)
    if chain_present(remote, timeout):
        raise HarnessError(f"node {remote.node.name}: {CHAIN} rules still present after healing")
    return bool(jumps) or has_chain


def drop_from(remote: Remote, sources: Iterable[str], timeout: float = TIMEOUT) -> None:
    """Install (atomically, with iptables-restore) rules dropping packets from `sources`.

    Any earlier rules of ours are removed first, so the node ends with exactly this set.
    """
    heal_node(remote, timeout)
    srcs = list(sources)
    if not srcs:
        return
    lines = ["*filter", f":{CHAIN} - [0:0]"]
    lines += [f"-A {CHAIN} -s {shlex.quote(s)} -j DROP" for s in srcs]
    lines += [f"-I INPUT 1 -j {CHAIN}", "COMMIT", ""]
    remote.run(["iptables-restore", "-w", "--noflush"], timeout=timeout, input="\n".join(lines))


def _each_node(cluster: Cluster, names: Iterable[str], fn) -> dict[str, object]:
    """Run fn(name) on nodes in parallel (a cut should land everywhere at about the same
    time); collect results, raise one HarnessError naming every node that failed."""
    names = list(names)
    if not names:
        return {}
    results: dict[str, object] = {}
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        futures = {n: pool.submit(fn, n) for n in names}
        for n, fut in futures.items():
            try:
                results[n] = fut.result()
            except Exception as e:  # reported below, with the node
                errors.append(str(e) if n in str(e) else f"node {n}: {e}")
    if errors:
        raise HarnessError("; ".join(errors))
    return results


def apply_grudge(
    cluster: Cluster, grudge: Mapping[str, Iterable[str]], timeout: float = TIMEOUT
) -> None:
    """Make every node drop traffic from the nodes its grudge names (by Node.address).

    Nodes without a grudge are healed, so the cluster ends with exactly this partition.
    """
    addr = {n.name: n.address for n in cluster.nodes}

    def one(name: str) -> None:
        drop_from(cluster.remote(name), [addr[m] for m in grudge.get(name, ())], timeout)

    _each_node(cluster, cluster.names, one)


def heal_cluster(cluster: Cluster, timeout: float = TIMEOUT) -> list[str]:
    """Remove our rules on every node; return the nodes that had some."""
    done = _each_node(cluster, cluster.names, lambda n: heal_node(cluster.remote(n), timeout))
    return [n for n in cluster.names if done.get(n)]
