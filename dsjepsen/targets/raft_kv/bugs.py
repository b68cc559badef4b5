"""The deliberate bugs the reference server can switch on, by name (`--bug NAME`), and its
read modes (`--read-mode`).

Free of imports on purpose: the CLI lists these without loading the server.
"""

BUGS: dict[str, str] = {
    "stale-read": "any node answers reads from its local state without a quorum",
    "no-fsync": (
        "acknowledge after write(), before fsync: a power failure (disk faults) loses the "
        "unsynced tail, a kill does not"
    ),
    "early-ack": "answer a write when the leader has appended it, before it commits",
    "no-term-check": (
        "never compare terms: accept AppendEntries from a stale term, grant several votes per "
        "term, and a leader never steps down for a newer term (split brain)"
    ),
    "lease-read": (
        "the leader reads locally while it holds a lease timed by wall clocks (its own and its "
        "followers'); safe while clocks agree, stale reads when they jump or skew"
    ),
    "txn-no-isolation": (
        "transactions: each micro-op is its own log entry, so others interleave with it, and one "
        "that fails halfway is answered failed with its first micro-ops applied"
    ),
    "txn-read-uncommitted": (
        "transactions: run micro-op by micro-op on the leader, reading other running "
        "transactions' uncommitted writes (and a write-write conflict aborts the later writer)"
    ),
    "txn-stale-snapshot": (
        "transactions: reads come from the receiving node's own applied state, outside the log, "
        "with no leadership check; only the writes go through the leader"
    ),
    "lease-no-fencing": (
        "lease locks (/lock/acquire) are granted without their fencing token, so a resource "
        "cannot tell a holder whose lease ran out from the one that has the lock now"
    ),
}

#: linearizable (ReadIndex) is the default; sticky-follower is a correct but weaker design, not a
#: bug: each node answers reads from its own applied state and a write returns only once the
#: node that took it has applied it, so every client sees a prefix of one log that grows with
#: its own writes (sequentially consistent, not linearizable)
READ_MODES: tuple[str, ...] = ("linearizable", "sticky-follower")
