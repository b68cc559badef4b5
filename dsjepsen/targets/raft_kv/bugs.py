"""The deliberate bugs the reference server can switch on, by name (`--bug NAME`).

Standard library free of imports on purpose: the CLI lists these without loading the server.
"""

BUGS: dict[str, str] = {
    "stale-read": "any node answers reads from its local state without a quorum",
    "no-fsync": "acknowledge before the log reaches disk; a kill loses the unsynced tail",
    "early-ack": "answer a write when the leader has appended it, before it commits",
    "no-term-check": "accept AppendEntries from a stale term; grant several votes per term",
    "lease-read": (
        "the leader reads locally while it holds a lease timed by wall clocks (its own and its "
        "followers'); safe while clocks agree, stale reads when they jump or skew"
    ),
}
