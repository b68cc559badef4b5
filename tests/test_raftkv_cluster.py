"""The reference raft-kv on real local namespace clusters: real processes, real iptables.

Each test builds its own cluster (pooled_cluster), runs RaftKvTarget on it and always stops the
servers and removes its iptables chain (`dsj-test`) at the end, also when it fails. The bug
tests are paired with the same scenario on the correct server, so that each shows a
misbehaviour that the bug causes and the correct server does not.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from dsjepsen.cluster.cluster import Cluster
from dsjepsen.history import Op
from dsjepsen.nemesis.disk import DiskControl
from dsjepsen.targets.raft_kv.target import RaftKvTarget

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CHAIN = "dsj-test"
DEADLINE = 30.0  # generous: the machine has 2 shared cores


# -- helpers ------------------------------------------------------------------------------------


def op(f: str, key: int, value: object = None) -> Op:
    return Op(index=0, time=0, process=0, type="invoke", f=f, key=key, value=value)


def poll(cond: Callable[[], object], what: str, timeout: float = DEADLINE) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)


class Harness:
    """A running raft-kv cluster plus the test's own partition rules."""

    def __init__(self, cluster: Cluster, target: RaftKvTarget):
        self.cluster = cluster
        self.t = target
        self.cut: set[str] = set()

    def status(self, node: str) -> dict | None:
        return self.t.status(self.cluster, node)

    def call(self, node: str, f: str, key: int, value: object = None) -> Op:
        client = self.t.client(self.cluster, node)
        try:
            return client.invoke(op(f, key, value))
        finally:
            client.close()

    def leader(self, among: list[str] | None = None, exclude: tuple[str, ...] = ()) -> str:
        """A node that says it leads and that a majority of `among` (default: all) follows."""
        nodes = among or self.cluster.names

        def find() -> str | None:
            sts = {n: self.status(n) for n in nodes if n not in exclude}
            for n, st in sts.items():
                if st and st["role"] == "leader":
                    following = [m for m, s in sts.items() if s and s["leader"] == n]
                    if len(following) >= len(self.cluster.names) // 2 + 1:
                        return n
            return None

        return str(poll(find, f"a leader among {nodes} (excluding {list(exclude)})"))

    def rejoined(self, node: str, majority: list[str]) -> str:
        """Wait until `node`, back from a partition or a restart, follows a leader from
        `majority`. Not necessarily the leader it left: without pre-vote the returning node's
        higher term may depose that one, but only a node whose log holds the committed
        writes, one of the majority, can win the next election."""

        def settled() -> str | None:
            now = self.leader()
            return (
                now if now in majority and (self.status(node) or {}).get("leader") == now else None
            )

        return str(poll(settled, f"{node} to follow a leader from {majority}"))

    def write(self, node: str, key: int, value: int) -> Op:
        """Write through `node` until acknowledged: failures (e.g. just after an election) and
        timeouts of a slow machine are retried; writing the same value again is harmless."""

        def attempt() -> Op | None:
            done = self.call(node, "write", key, value)
            return done if done.type == "ok" else None

        return poll(attempt, f"write {key}={value} via {node} to succeed")  # type: ignore[return-value]

    def read(self, node: str, key: int) -> object:
        def attempt() -> Op | None:
            done = self.call(node, "read", key)
            return done if done.type == "ok" else None

        done = poll(attempt, f"read of {key} via {node} to succeed")
        return done.value  # type: ignore[union-attr]

    # -- partitions (symmetric, by source address on INPUT, inside the node namespaces) --------

    def _iptables(self, node: str, *args: str, check: bool = True) -> None:
        self.cluster.remote(node).run(["iptables", "-w", *args], timeout=20.0, check=check)

    def isolate(self, group: list[str]) -> None:
        """Cut `group` off from every other node (both directions); the controller still
        reaches everyone, as a Jepsen client would."""
        others = [n for n in self.cluster.names if n not in group]
        for side, far in ((group, others), (others, group)):
            for node in side:
                if node not in self.cut:
                    self._iptables(node, "-N", CHAIN)
                    self._iptables(node, "-I", "INPUT", "1", "-j", CHAIN)
                    self.cut.add(node)
                for peer in far:
                    addr = self.cluster.node(peer).address
                    self._iptables(node, "-A", CHAIN, "-s", addr, "-j", "DROP")

    def heal(self) -> None:
        for node in sorted(self.cut):
            self._iptables(node, "-D", "INPUT", "-j", CHAIN, check=False)
            self._iptables(node, "-F", CHAIN, check=False)
            self._iptables(node, "-X", CHAIN, check=False)
            res = self.cluster.remote(node).run(["iptables", "-w", "-S"], timeout=20.0)
            assert CHAIN not in res.stdout, f"{CHAIN} rules left on {node}: {res.stdout}"
        self.cut.clear()


@pytest.fixture
def raftkv(pooled_cluster) -> Iterator[Callable[..., Harness]]:
    """`raftkv(nodes=3, bugs=(), **target_options) -> Harness`, started and leader-elected;
    servers stopped and partition rules removed at the end, whatever happened."""
    made: list[Harness] = []

    def make(nodes: int = 3, bugs: tuple[str, ...] = (), **options: object) -> Harness:
        cluster = pooled_cluster(node_count=nodes)
        options.setdefault("election_timeout_ms", 300)
        disk_control = options.pop("disk_control", None)
        target = RaftKvTarget(bugs=bugs, client_timeout=2.0, **options)  # type: ignore[arg-type]
        target.disk_control = disk_control
        h = Harness(cluster, target)
        made.append(h)
        target.setup(cluster)
        return h

    yield make
    for h in made:
        with contextlib.suppress(Exception):
            h.heal()
        h.t.teardown(h.cluster)


# -- the correct server -------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [3, 5])
def test_leader_elected_and_writes_readable_from_every_node(raftkv, nodes):
    h = raftkv(nodes)
    leader = h.leader()
    poll(
        lambda: all((h.status(n) or {}).get("leader") == leader for n in h.cluster.names),
        f"every node to follow {leader}",
    )
    h.write(leader, 1, 10)
    follower = next(n for n in h.cluster.names if n != leader)
    h.write(follower, 2, 20)  # forwarded to the leader
    for n in h.cluster.names:
        assert h.read(n, 1) == 10, n
        assert h.read(n, 2) == 20, n
        assert h.read(n, 99) is None, n
    # cas through a follower: a match succeeds, a mismatch and an absent key are definite fails
    assert h.call(follower, "cas", 1, [10, 11]).type == "ok"
    mismatch = h.call(follower, "cas", 1, [10, 12])
    assert (mismatch.type, mismatch.error) == ("fail", "cas-mismatch")
    absent = h.call(leader, "cas", 77, [1, 2])
    assert (absent.type, absent.error) == ("fail", "cas-absent")
    assert h.read(leader, 1) == 11
    # every node applied everything that was committed
    poll(
        lambda: len({h.status(n)["last_applied"] for n in h.cluster.names}) == 1,
        "all nodes to apply the same prefix",
    )


@pytest.mark.parametrize("nodes", [3, 5])
def test_killing_the_leader_elects_another_and_loses_no_committed_write(raftkv, nodes):
    h = raftkv(nodes)
    old = h.leader()
    old_term = h.status(old)["term"]
    for k in range(5):
        h.write(old, k, 100 + k)
    h.t.kill(h.cluster, old)
    assert h.status(old) is None  # really gone
    new = h.leader(exclude=(old,))
    assert new != old
    assert h.status(new)["term"] > old_term
    for k in range(5):
        assert h.read(new, k) == 100 + k
    h.write(new, 9, 9)
    # the old leader comes back as a follower and catches up, including the new write
    h.t.start(h.cluster, old)
    h.rejoined(old, [n for n in h.cluster.names if n != old])
    assert h.read(old, 9) == 9


@pytest.mark.parametrize("nodes", [3, 5])
def test_minority_cannot_commit_while_majority_can(raftkv, nodes):
    h = raftkv(nodes)
    old = h.leader()
    # the old leader's side: 1 of 3 nodes, 2 of 5
    minority = [old] + [n for n in h.cluster.names if n != old][: nodes // 2 - 1]
    majority = [n for n in h.cluster.names if n not in minority]
    h.write(old, 1, 1)
    h.isolate(minority)
    stuck = h.call(old, "write", 1, 666)
    assert stuck.type in ("info", "fail"), f"minority leader acknowledged a write: {stuck}"
    new = h.leader(among=majority)
    h.write(new, 1, 2)
    assert h.read(new, 1) == 2
    for n in minority:  # still cut off: nothing the minority does commits
        done = h.call(n, "write", 3, 3)
        assert done.type in ("info", "fail"), f"{n} (minority) acknowledged a write: {done}"
    h.heal()
    h.rejoined(old, majority)
    for n in h.cluster.names:
        assert h.read(n, 1) == 2, n
        assert h.read(n, 3) is None, n


def test_restarted_cluster_recovers_its_log_from_disk(raftkv):
    h = raftkv(3)
    leader = h.leader()
    for k in range(10):
        h.write(leader, k, k * k)
    h.call(leader, "cas", 3, [9, 90])
    applied = h.status(leader)["last_applied"]
    for n in h.cluster.names:  # every copy of the data in memory is gone
        h.t.kill(h.cluster, n)
    for n in h.cluster.names:
        h.t.start(h.cluster, n)
    logs = sorted(
        poll(lambda n=n: h.status(n), f"{n} to serve")["last_log_index"] for n in h.cluster.names
    )
    # a majority held every committed entry on disk, and got it back on restart
    assert logs[-2] >= applied, f"log lengths after restart {logs}, {applied} entries committed"
    leader = h.leader()
    for k in range(10):
        assert h.read(leader, k) == (90 if k == 3 else k * k)


# -- the bug switches ---------------------------------------------------------------------------


@pytest.mark.parametrize("bug", [True, False], ids=["stale-read", "correct"])
def test_stale_read_serves_an_old_value_from_a_cut_off_node(raftkv, bug):
    h = raftkv(3, bugs=("stale-read",) if bug else ())
    leader = h.leader()
    h.write(leader, 1, 1)
    lonely = next(n for n in h.cluster.names if n != leader)
    poll(lambda: h.status(lonely)["last_applied"] >= h.status(leader)["commit_index"], "catch-up")
    h.isolate([lonely])
    h.write(leader, 1, 2)  # committed by the two others
    got = h.call(lonely, "read", 1)
    if bug:
        assert (got.type, got.value) == ("ok", 1), f"expected the stale value 1, got {got}"
    else:
        assert got.type != "ok", f"a cut-off node answered a read: {got}"


@pytest.mark.parametrize(
    ("bug", "power"),
    [(True, True), (False, True), (True, False)],
    ids=["no-fsync-power-failure", "correct-power-failure", "no-fsync-kill"],
)
def test_no_fsync_loses_an_acknowledged_write_only_in_a_power_failure(raftkv, bug, power):
    """The store's logs are on the fault file system; every node dies at once. Under no-fsync
    the acknowledged write is in the page cache only: a kill keeps it, a power failure (what
    was not fsynced dropped) loses it. The correct store keeps it through both."""
    control = DiskControl()
    h = raftkv(3, bugs=("no-fsync",) if bug else (), disk_control=control)
    leader = h.leader()
    assert h.write(leader, 5, 55).type == "ok"
    dropped = 0
    for n in [leader, *(m for m in h.cluster.names if m != leader)]:
        h.t.kill(h.cluster, n)  # the leader first, then the followers that acknowledged it
        if power:
            dropped += sum(a["bytes_dropped"] for a in control.command(n, "drop-unsynced"))
    for n in h.cluster.names:
        h.t.start(h.cluster, n)
    leader = h.leader()
    if bug and power:
        assert dropped > 0
        assert h.read(leader, 5) is None, "the acknowledged write survived a power failure"
    else:
        assert h.read(leader, 5) == 55
        if power:
            assert dropped == 0, "the correct store left writes it acknowledged unsynced"


@pytest.mark.parametrize("bug", [True, False], ids=["early-ack", "correct"])
def test_early_ack_acknowledges_a_write_that_is_then_lost(raftkv, bug):
    h = raftkv(3, bugs=("early-ack",) if bug else ())
    old = h.leader()
    h.write(old, 1, 1)
    h.isolate([old])
    acked = h.call(old, "write", 1, 2)
    if not bug:
        assert acked.type != "ok", f"isolated leader acknowledged a write: {acked}"
        return
    assert acked.type == "ok", f"early-ack should acknowledge at once: {acked}"
    majority = [n for n in h.cluster.names if n != old]
    new = h.leader(among=majority)
    assert h.read(new, 1) == 1  # the acknowledged 2 is nowhere in the committed log
    h.write(new, 1, 3)
    h.heal()
    h.rejoined(old, majority)
    for n in h.cluster.names:
        assert h.read(n, 1) == 3, n


@pytest.mark.parametrize("bug", [True, False], ids=["no-term-check", "correct"])
def test_no_term_check_votes_twice_and_obeys_a_stale_leader(raftkv, bug):
    """Speaks the Raft RPCs to one node directly, as two rival candidates and a deposed
    leader would: the buggy node grants both votes of one term and accepts the stale append."""
    h = raftkv(3, bugs=("no-term-check",) if bug else ())
    leader = h.leader()
    node = next(n for n in h.cluster.names if n != leader)
    client = h.t.client(h.cluster, node)
    try:
        st = h.status(node)
        term = st["term"] + 100
        last = st["last_log_index"] + 1000
        ballot = {"term": term, "last_log_index": last, "last_log_term": term - 1}
        _, first = client.request("POST", "/raft/vote", {**ballot, "candidate": "x1"})
        _, second = client.request("POST", "/raft/vote", {**ballot, "candidate": "x2"})
        assert first["granted"] is True
        votes = h.status(node)["votes_in_term"]
        stale = {
            "term": term - 1,
            "leader": "x0",
            "prev_index": 0,
            "prev_term": 0,
            "entries": [],
            "commit": 0,
        }
        _, append = client.request("POST", "/raft/append", stale)
    finally:
        client.close()
    if bug:
        assert second["granted"] is True, "second vote of the term refused"
        assert votes == ["x1", "x2"]
        assert append["success"] is True, "stale AppendEntries rejected"
    else:
        assert second["granted"] is False
        assert votes == ["x1"]
        assert append["success"] is False


@pytest.mark.parametrize("bug", [True, False], ids=["no-term-check", "correct"])
def test_no_term_check_leader_never_steps_down_for_a_newer_term(raftkv, bug):
    """Raft's leader steps down as soon as it sees a newer term (5.1); the buggy one keeps
    leading, which is what makes a paused leader come back as a second leader."""
    h = raftkv(3, bugs=("no-term-check",) if bug else ())
    leader = h.leader()
    before = h.status(leader)
    client = h.t.client(h.cluster, leader)
    try:
        ballot = {
            "term": before["term"] + 100,
            "candidate": "x9",
            "last_log_index": before["last_log_index"] + 1000,
            "last_log_term": before["term"] + 99,
        }
        _, vote = client.request("POST", "/raft/vote", ballot)
    finally:
        client.close()
    after = h.status(leader)
    if bug:
        assert vote["granted"] is False
        assert (after["role"], after["term"]) == ("leader", before["term"]), after
    else:
        assert vote["granted"] is True
        assert after["term"] >= before["term"] + 100, after
        # it voted for x9 in that term, so it cannot lead it: still leading it means it never
        # stepped down
        assert after["role"] != "leader" or after["term"] > before["term"] + 100, after


@pytest.mark.parametrize("mode", ["sticky-follower", "stale-read", "linearizable"])
def test_sticky_follower_reads_are_stale_but_see_their_own_writes(raftkv, mode):
    """sticky-follower answers reads from the node's own applied state (a cut-off follower
    serves an old value: not linearizable), and answers a write only once that node has
    applied it (read-your-writes: the textbook session guarantee that makes it sequentially
    consistent). stale-read also reads locally but has no session: with a slow heartbeat the
    follower learns of the commit late, so its client does not see its own write."""
    bugs = ("stale-read",) if mode == "stale-read" else ()
    read_mode = "sticky-follower" if mode == "sticky-follower" else "linearizable"
    # a slow heartbeat: a follower learns that an entry committed up to 0.6 s after it did
    h = raftkv(3, bugs=bugs, read_mode=read_mode, heartbeat_ms=600, election_timeout_ms=3000)
    leader = h.leader()
    follower = next(n for n in h.cluster.names if n != leader)
    own = []
    for i in range(5):
        assert h.call(follower, "write", 7, 100 + i).type == "ok"
        own.append(h.call(follower, "read", 7))
    seen = [(r.type, r.value) for r in own]
    if mode == "stale-read":
        assert any(v != ("ok", 100 + i) for i, v in enumerate(seen)), seen
    else:
        assert seen == [("ok", 100 + i) for i in range(5)], seen
    poll(
        lambda: h.status(follower)["last_applied"] >= h.status(leader)["commit_index"],
        "catch-up",
    )
    h.isolate([follower])
    h.write(leader, 7, 200)  # committed by the other two
    got = h.call(follower, "read", 7)
    if mode == "linearizable":
        assert got.type != "ok", f"a cut-off node answered a read: {got}"
    else:
        assert (got.type, got.value) == ("ok", 104), f"expected the stale value 104, got {got}"
