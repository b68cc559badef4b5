"""The Workload contract: what clients do, what is read at the end, and how it is judged.

A workload is a deterministic function of its seed and options: the run asks it for the next op
under the history lock, so the sequence of invocations in history.jsonl is the same for the
same seed (which worker gets which op depends on timing, as in Jepsen). It knows nothing of
nodes, threads or the harness: it stands on the op vocabulary (`needs`, the f values a target's
client must speak) and on the checkers.

To add one: subclass Workload in one file, declare `name`, `description`, `needs`, `options`,
and register the class in the `dsjepsen.workloads` entry-point group (docs/extending.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.options import Option

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dsjepsen.checkers.base import Checker
    from dsjepsen.history import Op


#: keys a workload keeps in use at once, at most: each has its generator state, and far past
#: this a run is a typo or an attack (a billion keys once grew past 3 GB before any op)
MAX_KEYS = 100_000
#: the `--keys` option every keyed workload declares (one declaration, one meaning)
KEYS = Option(
    "key-count",
    "int",
    5,
    "keys in use at once",
    minimum=1,
    maximum=MAX_KEYS,
    metavar="N",
    keyword="keys",
    aliases=("keys",),
)


@dataclass(frozen=True, slots=True)
class OpSpec:
    """An op to invoke: f, key and value (the runner adds process, node, index, time)."""

    f: str
    key: Any = None
    value: Any = None


class Workload(ABC):
    name: ClassVar[str] = "workload"
    description: ClassVar[str] = ""
    #: the op vocabulary: every f this workload invokes; a target runs it when its clients
    #: speak all of them
    needs: ClassVar[frozenset[str]] = frozenset()
    #: options of `dsjepsen test` this workload takes (passed to __init__ as keywords, with
    #: '-' turned into '_')
    options: ClassVar[tuple[Option, ...]] = ()
    #: the model its checkers use, when it has one (recorded in results and used by reports)
    model: ClassVar[str | None] = None
    #: the consistency model its checkers judge the history for (the transactional workloads'
    #: --consistency, Elle's names); None: the checkers' own default
    consistency: str | None = None
    #: minimum number of `ok` completions per f, during the run proper, for a run to count as
    #: having tested anything (see checkers.vacuous)
    required_ok: ClassVar[dict[str, int]] = {}
    #: after the final ops, repeat them through every node until every node answers the same
    #: for a few rounds (CRDTs: convergence), instead of reading once
    converges: ClassVar[bool] = False

    def __init__(self, *, seed: int, **options: Any) -> None:
        self.seed = seed

    @classmethod
    def check_options(cls, **values: Any) -> None:
        """Validate option values together (keywords as the constructor takes them) before
        anything touches a node; raise ConfigError naming the options. Most workloads need
        nothing beyond each option's own bounds."""
        return None

    @abstractmethod
    def next_op(self) -> OpSpec:
        """The next client op. Not thread-safe: the runner serialises calls."""

    def next_op_for(self, process: int) -> OpSpec:
        """The next op of one client process. A workload whose ops follow one another within
        a process (the lock workload: acquire, then writes while holding, then release; like
        Jepsen's per-thread generators) overrides this and `observe`; by default every process
        draws from the one sequence of `next_op`. Not thread-safe: the runner serialises
        calls."""
        return self.next_op()

    def observe(self, completion: Op) -> None:  # noqa: B027 - most workloads need nothing
        """Told every client op's completion (under the same lock as `next_op_for`), so that a
        per-process workload knows what its process's last op did. Nothing by default."""
        return None

    def setup_ops(self) -> list[OpSpec]:
        """Ops that establish the state the test starts from (bank's initial balances): run
        once, in order, through one client on the first node, after the target is set up and
        before the workers and the nemesis start; recorded like any op. Each must end ok, or
        the run stops with verdict unknown. [] (the default): nothing to establish."""
        return []

    @abstractmethod
    def final_ops(self) -> list[OpSpec]:
        """Ops to run through every node after faults are healed (e.g. a read of every key)."""

    def final_followups(
        self, done: Sequence[Op], history: Sequence[Op], final_from: int | None
    ) -> list[OpSpec]:
        """More final ops for one node, after its final ops: `done` are the completions of
        that node's final ops so far, `history` every op recorded until now and `final_from`
        where the final ops began. [] when that node is done (the default: one pass). Called
        by one thread per node at once: must not change the workload."""
        return []

    @abstractmethod
    def checkers(self) -> list[Checker]:
        """The workload's own correctness checkers (the run adds stats and vacuous)."""

    @property
    def check_extra(self) -> dict[str, Any]:
        """What the checkers may assume beyond the history (CheckContext.extra: e.g.
        rw-register's wfr_keys), as the workload's options say; none by default."""
        return {}
