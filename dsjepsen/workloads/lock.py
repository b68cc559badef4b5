"""The lock workload: clients take a lease on one lock, write to a fenced resource while they
believe they hold it, and give it back (issue 29; docs/locks.md).

Each client process cycles through Jepsen's lock ops, one after another (so this workload is
per process: `next_op_for`, told each completion by `observe`):

- `acquire` {"lease-ms": L}: ask for the lock with a lease of L ms; on ok, the process holds it
  and goes on; on fail (held by another, no leader) it asks again; on info the process is gone
  (the worker continues as a new process, which holds nothing);
- `write` {"value": n}, `writes-per-hold` times: a guarded write to the fenced resource, sent
  by the client with the hold's fencing token, only while the lease lasts by the client's own
  clock (counted from the acquire's sending); a write that is refused (lease over, fenced off)
  ends the hold early; values are unique across the run, so the resource's record maps back to
  history ops;
- `release`: give the lock back, then acquire again.

Setup: one `configure-resource` {"fencing": --fencing}, so the history says whether the resource
fenced. Final: one `read-resource` through every node: the resource's record of every write.

Checked by the three lock checkers (dsjepsen/checkers/lock.py): mutual exclusion over the
holds, the resource's own view (holders' writes interleaved, tokens that went backwards), and
the monotonicity of the tokens the lock handed out. With --fencing, two holders at once is the
lease's known limit (a pause or a clock jump outlives it), which the fence exists to absorb:
mutual exclusion is then reported, not judged, and the resource's view is the verdict.

The op sequence of one process is a function of the seed and of what its ops returned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsjepsen.checkers.lock import (
    ACQUIRE,
    CONFIGURE,
    READ_RESOURCE,
    RELEASE,
    WRITE,
    FencingChecker,
    MutexChecker,
    ResourceChecker,
)
from dsjepsen.options import Option
from dsjepsen.workloads.base import OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker
    from dsjepsen.history import Op


@dataclass
class _Process:
    """Where one client process is in its cycle."""

    next: str = ACQUIRE
    writes_left: int = 0


class LockWorkload(Workload):
    name = "lock"
    description = (
        "clients acquire a leased lock, write to a fenced resource while they hold it, release "
        "(mutual exclusion, the resource's view, fencing tokens)"
    )
    needs = frozenset({ACQUIRE, RELEASE, WRITE, READ_RESOURCE, CONFIGURE})
    required_ok = {ACQUIRE: 3, WRITE: 3}
    options = (
        Option(
            "lease-ms",
            "int",
            2000,
            "the lease a holder asks for (ms): the lock may give it to another after that",
            minimum=50,
            maximum=3_600_000,
            metavar="MS",
        ),
        Option(
            "writes-per-hold",
            "int",
            3,
            "guarded writes a holder makes before it releases",
            minimum=1,
            maximum=1000,
            metavar="N",
        ),
        Option(
            "fencing",
            "bool",
            False,
            "the resource rejects a write whose fencing token is older than the newest it "
            "accepted (two holders at once, both with tokens, are then the fence's to absorb: "
            "the resource's view is the verdict)",
        ),
    )

    def __init__(
        self, *, seed: int, lease_ms: int = 2000, writes_per_hold: int = 3, fencing: bool = False
    ) -> None:
        if lease_ms < 1 or writes_per_hold < 1:
            raise ValueError("lease-ms and writes-per-hold must be positive")
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:{self.name}")
        self.lease_ms = lease_ms
        self.writes_per_hold = writes_per_hold
        self.fencing = fencing
        self.processes: dict[Any, _Process] = {}
        self.value = 0

    def setup_ops(self) -> list[OpSpec]:
        return [OpSpec(CONFIGURE, None, {"fencing": self.fencing})]

    def next_op(self) -> OpSpec:
        return OpSpec(ACQUIRE, None, {"lease-ms": self.lease_ms})

    def next_op_for(self, process: int) -> OpSpec:
        p = self.processes.setdefault(process, _Process())
        if p.next == WRITE:
            self.value += 1
            return OpSpec(WRITE, None, {"value": self.value})
        if p.next == RELEASE:
            return OpSpec(RELEASE, None, None)
        return self.next_op()

    def observe(self, completion: Op) -> None:
        p = self.processes.get(completion.process)
        if p is None:
            return
        if completion.type == "info":  # the process is gone: Jepsen's rule
            del self.processes[completion.process]
            return
        if completion.f == ACQUIRE:
            if completion.type == "ok":
                p.next, p.writes_left = WRITE, self.writes_per_hold
        elif completion.f == WRITE:
            p.writes_left -= 1
            if p.writes_left <= 0 or completion.type == "fail":
                p.next = RELEASE
        elif completion.f == RELEASE:
            p.next = ACQUIRE

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec(READ_RESOURCE, None, None)]

    @property
    def check_extra(self) -> dict[str, Any]:
        return {"lease_ms": self.lease_ms}

    def checkers(self) -> list[Checker]:
        return [MutexChecker(), ResourceChecker(), FencingChecker()]
