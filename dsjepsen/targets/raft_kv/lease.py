"""raft-kv's lease lock: named locks granted through the log, with the grant's log index as
the fencing token (docs/locks.md).

A grant is a log command `{"op": "lock-grant", "lock", "holder", "ttl_ms", "prev"}` that the
leader proposes only when, by its own wall clock, the lock is free or its lease is over; `prev`
is the token the leader saw, and the grant applies only if that is still the lock's token when
the entry is applied (a compare-and-set in log order), so that two grants decided on the same
state, or by a deposed leader on a stale one, never both succeed. Every replica applies the
same outcome; only the expiry is local: each node counts a lease from the moment *it* applied
the grant, by its own wall clock. A node applies a grant no earlier than the leader committed
it, and the leader commits it no earlier than the client asked, so every node's expiry is at
or after the client's (`acquire sent + ttl`) while clocks run at the same rate: a new leader
never hands out a lease its predecessor's holder still believes it has. What leases cannot
survive is a clock that jumps (clock faults): then the leader expires a lease early, two
clients believe they hold the lock at once, and only the token lets the resource tell them
apart. The bug `lease-no-fencing` answers grants without the token.

`{"op": "lock-release", "lock", "holder", "token"}` frees the lock when the holder (and token)
still hold it; otherwise it is a mismatch (the lease was over and someone else took it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Lease:
    holder: str
    token: int
    ttl_ms: int
    #: this node's wall clock when it applied the grant
    applied: float

    def over(self, now: float) -> bool:
        return now >= self.applied + self.ttl_ms / 1000.0


class Leases:
    """The locks of the state machine."""

    def __init__(self) -> None:
        self.locks: dict[str, Lease] = {}

    def free_for(
        self, lock: str, holder: str, now: float | None = None
    ) -> tuple[bool, Lease | None]:
        """(whether the leader may propose a grant to `holder`, the current lease)."""
        cur = self.locks.get(lock)
        if cur is None or cur.holder == holder:
            return True, cur
        return cur.over(time.time() if now is None else now), cur

    def apply(self, cmd: dict[str, Any], index: int) -> tuple[str, Any]:
        lock = str(cmd["lock"])
        cur = self.locks.get(lock)
        if cmd["op"] == "lock-grant":
            if (cur.token if cur is not None else None) != cmd.get("prev"):
                return "mismatch", cur.holder if cur is not None else None
            self.locks[lock] = Lease(str(cmd["holder"]), index, int(cmd["ttl_ms"]), time.time())
            return "ok", index
        # lock-release
        if cur is None or cur.holder != cmd.get("holder"):
            return "mismatch", cur.holder if cur is not None else None
        token = cmd.get("token")
        if token is not None and token != cur.token:
            return "mismatch", cur.holder
        del self.locks[lock]
        return "ok", None
