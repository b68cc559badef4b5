"""The deliberate bugs the crdt-kv server can switch on, by name (`--bug NAME`).

Free of imports on purpose: the target and the CLI list these without loading the server.
Each entry says what the server does wrong; docs/crdt.md says which fault exposes it.
"""

BUGS: dict[str, str] = {
    "lww-set": "sets merge by last-writer-wins on the whole set: concurrent adds are lost",
    "sum-merge": (
        "counters merge a peer's count for itself by adding it to ours instead of taking the "
        "max: every repeated gossip counts the same increments again"
    ),
    "no-anti-entropy": (
        "updates are pushed once, as operations, to the peers reachable at that moment and "
        "never repaired: a peer that was cut off, paused or down never gets them"
    ),
    "volatile": (
        "acknowledge before anything is on disk (the journal is written every "
        "--flush-interval): a killed node forgets its own recent updates"
    ),
}
