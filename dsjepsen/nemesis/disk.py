"""Disk faults through the fault file system (cluster/faultfs.py, mounted by cluster/faultmount.py): power failures that lose
what was never fsynced, stalled disks, disks that fail writes (EIO) or are full (ENOSPC).

When a run asks for one of these, the package gives the target a `disk_control` before setup,
and the target mounts the fault file system over each of its data directories (`data_dirs`)
before it starts a server there; teardown unmounts it. Without a disk fault nothing changes:
the target runs on the node's own file system.

Every fault is verified on the node and the record says what was measured:

* `power-failure-<scope>`: SIGKILL the target on the chosen nodes at once (as process.py's
  kill does), then drop everything they had not fsynced (bytes, files rolled back, name
  changes undone, per node); stop restarts them, as power coming back would.
* `torn-write[-all]`: a power failure in the middle of a write (LazyFS's torn-op): the next
  write to a file matching `--torn-file` is held, the target SIGKILLed, and that write torn
  into `--torn-parts` parts of which only some persist; the rest un-fsynced is dropped.
* `disk-stall`: every I/O on one random node waits `--disk-stall-ms` (200 ms); a probe fsync
  through the mount is timed.
* `disk-error`: writes, fsyncs and name changes on one random node fail with EIO; the probe's
  write must fail so.
* `disk-full`: writes and name changes on one random node fail with ENOSPC; likewise probed.

The fault file system runs on the controller for nodes that share its files and mount table
(the local namespace cluster: FaultMount) and on the node itself elsewhere (SSH hosts, docker
containers made with `dsjepsen docker up --disk-faults`: NodeFaultMount), commanded through the
node's Remote; each node is asked before the run whether it can (faultmount.node_problem).
"""

from __future__ import annotations

import contextlib
import errno
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.cluster import faultmount
from dsjepsen.cluster.faultmount import FaultMount, NodeFaultMount
from dsjepsen.errors import HarnessError
from dsjepsen.faults import FaultLook
from dsjepsen.nemesis.base import ON_THIS_KERNEL, FaultPackage, Nemesis, NodeFacts, StartStopNemesis
from dsjepsen.nemesis.common import (
    done,
    maybe_done,
    not_done,
    observe_restart,
    process_nodes,
    restart_shown,
)
from dsjepsen.nemesis.process import SCOPES, choose, on_nodes, share
from dsjepsen.options import Option
from dsjepsen.targets.base import Target

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op

FAMILY = "disk"
DEFAULT_STALL_MS = 200
#: torn-write: how many equal parts the torn write is split into (LazyFS's torn-op example)
DEFAULT_TORN_PARTS = 3
#: torn-write: a disk writes a sector whole or not at all, so a write tears at the file's
#: 512-byte boundaries (0: anywhere, into --torn-parts equal parts)
DEFAULT_TORN_SECTOR = 512
#: torn-write: how long to wait for the target's next write to tear before cutting the power
TRAP_WAIT_S = 5.0
#: torn-write: how long the held write's process is given to take its SIGKILL before the tear
HELD_KILL_S = 1.0
#: and how long its death is awaited after the release (the target's own kill waits 10 s)
KILL_WAIT_S = 30.0


class DiskControl:
    """The fault file systems of one run, one or more per node; set as the target's
    `disk_control`, which mounts them before a server starts and unmounts them at teardown."""

    def __init__(self) -> None:
        self.mounts: dict[str, list[FaultMount | NodeFaultMount]] = {}
        self._lock = threading.Lock()

    def mount(self, cluster: Cluster, node: str, path: str) -> None:
        m = faultmount.for_node(cluster, node, path)
        m.start()
        with self._lock:
            have = self.mounts.setdefault(node, [])
            if m not in have:
                have.append(m)

    def unmount(self, cluster: Cluster, node: str) -> list[str]:
        with self._lock:
            mounts = self.mounts.pop(node, [])
        lines: list[str] = []
        for m in mounts:
            lines += m.stop()
        return lines

    def log_files(self, node: str) -> list[str]:
        return [m.log_file for m in self.of(node)]

    def of(self, node: str) -> list[FaultMount | NodeFaultMount]:
        with self._lock:
            return list(self.mounts.get(node, []))

    def command(self, node: str, line: str) -> list[dict[str, Any]]:
        """`line` to every fault file system of `node`; their answers (OSError if it has none
        or one fails)."""
        mounts = self.of(node)
        if not mounts:
            raise OSError(errno.ENOENT, f"node {node}: no fault file system is mounted")
        return [m.command(line) for m in mounts]


def probe(mount: FaultMount | NodeFaultMount) -> dict[str, Any]:
    """Write and fsync a small file through the mount, timing the fsync, where the target's
    own I/O goes (faultfs.probe, on the node when the file system runs there): what that I/O
    meets now ({"fsync_ms"} or {"errno", "failed_at"})."""
    return mount.probe()


class _Killer(threading.Thread):
    """A target's kill, run in a thread; what it raised, if anything."""

    def __init__(self, kill: Callable[[], None]) -> None:
        super().__init__(daemon=True, name="torn-write-kill")
        self.kill = kill
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.kill()
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            self.error = e


class DiskNemesis(StartStopNemesis):
    """One disk fault of a run. It remembers which nodes it faulted, so that stop undoes
    exactly those (restarts the power-failed, heals the others) and heal after a failed stop
    still finds them."""

    def __init__(
        self,
        name: str,
        target: Target,
        control: DiskControl,
        rng: random.Random,
        stall_ms: int,
        torn_file: str | None = None,
        torn_parts: int = DEFAULT_TORN_PARTS,
        torn_sector: int = DEFAULT_TORN_SECTOR,
    ) -> None:
        self.name = name
        self.target = target
        self.control = control
        self.rng = rng
        self.stall_ms = stall_ms
        self.torn_file = torn_file
        self.torn_parts = torn_parts
        self.torn_sector = torn_sector
        self.fs = (f"start-{FAMILY}", f"stop-{FAMILY}")
        self.kind, _, scope = name.partition("-")
        if self.kind in ("power", "torn"):  # power-failure[-scope], torn-write[-scope]
            self.kind = "power-failure" if self.kind == "power" else "torn-write"
            scope = name.removeprefix(self.kind).removeprefix("-") or "one"
        else:
            self.kind, scope = name, "one"
        if scope not in SCOPES or scope == "leader":
            raise ValueError(f"disk: no fault {name!r}")
        self.scope = scope
        self.faulted: list[str] = []
        self.restarted: list[str] = []  # nodes whose target had exited when the disk healed
        super().__init__()  # the lock invoke and heal share

    # -- start --------------------------------------------------------------------------------

    def _disks(self, cluster: Cluster) -> list[str]:
        """The nodes whose data is on the fault file system: where the target runs (its
        `process_nodes`: postgres names its one server) and has mounted it."""
        return [n for n in process_nodes(self.target, cluster) if self.control.of(n)]

    def _start(self, cluster: Cluster, op: Op, fault: str) -> Op:
        disks = self._disks(cluster)
        if not disks:
            return not_done(op, fault, "no node has its data on the fault file system")
        free = [n for n in disks if n not in self.faulted]
        try:
            nodes = choose(self.scope, disks, free, self.rng)
        except ValueError as e:
            return not_done(op, fault, str(e))
        if self.kind in ("power-failure", "torn-write"):
            return self._power_failure(cluster, op, fault, nodes)
        return self._set(cluster, op, fault, nodes)

    def _power_failure(self, cluster: Cluster, op: Op, fault: str, nodes: list[str]) -> Op:
        dropped: dict[str, dict[str, Any]] = {}

        seeds = {n: self.rng.randrange(2**31) for n in nodes}  # drawn here: reproducible

        def one(node: str) -> None:
            held = True
            if self.kind == "torn-write":
                answers, held = self._tear(cluster, node, seeds[node])
            else:
                self.target.kill(cluster, node)  # dead first: nothing writes while we drop
                answers = self.control.command(node, "drop-unsynced")
            dropped[node] = {
                "bytes": sum(a["bytes_dropped"] for a in answers),
                "files": sorted(f for a in answers for f in a["files_rolled_back"]),
                "entries": sum(a["entries_undone"] for a in answers),
            }
            if self.kind == "torn-write":
                torn = [a["torn"] for a in answers if a.get("torn")]
                dropped[node]["torn"] = torn[0] if torn else None
                # the trap's wait, said either way: a store that wrote nothing to the file in
                # it leaves only the fallback (its newest un-fsynced write), or nothing to tear
                dropped[node]["write_held"] = held
                if not held:
                    dropped[node]["no_write_within_s"] = TRAP_WAIT_S
                if not torn:
                    dropped[node]["torn_skipped"] = next(
                        (a["torn_skipped"] for a in answers if a.get("torn_skipped")), ""
                    )

        outcome = on_nodes(nodes, one)
        self.faulted.extend(nodes)
        data: dict[str, Any] = {"signal": "SIGKILL", "dropped": dropped}
        errors = [f"{n}: {e}" for n, e in outcome.items() if e is not None]
        if errors:
            tried = f"cut the power of {', '.join(nodes)}"
            return maybe_done(op, fault, nodes, tried, "; ".join(errors), **data)
        shown = ", ".join(
            f"{n} ({d['bytes']} B in {len(d['files'])} file(s), {d['entries']} name change(s)"
            f"{self._torn_shown(d, self.torn_file or '*')})"
            for n, d in dropped.items()
        )
        if self.kind == "torn-write":
            data["torn_file"] = self.torn_file
            data["verified"] = all(
                d.get("torn") and d["torn"]["persisted"] for d in dropped.values()
            )
        what = (
            f"power failure on {share(len(nodes), len(self._disks(cluster)))}: killed "
            f"{self.target.name} and dropped what it had not fsynced: {shown}"
        )
        return done(op, fault, nodes, what, **data)

    def _tear(self, cluster: Cluster, node: str, seed: int) -> tuple[list[dict[str, Any]], bool]:
        """A torn power failure on one node, as LazyFS cuts it: the next write to a file
        matching --torn-file (any file by default) that can tear (it spans two sectors) is
        held before it returns, the target is
        killed in the middle of it, and that write is torn; every other un-fsynced byte is
        dropped. A correct store fsyncs right after it writes, so waiting for a write is what
        makes the tear land on one it has not yet made durable. When no write comes within
        TRAP_WAIT_S, the newest un-fsynced write to a matching file is torn, if there is one.
        The answers of the node's fault file systems, the tearing one first, and whether a
        write was held."""
        mounts = self.control.of(node)
        if not mounts:
            raise OSError(errno.ENOENT, f"node {node}: no fault file system is mounted")
        killer: _Killer | None = None
        try:
            for m in mounts:
                m.command(f"trap {self.torn_sector} {self.torn_file or '*'}")
            held = None
            deadline = time.monotonic() + TRAP_WAIT_S
            while held is None and time.monotonic() < deadline:
                held = next((m for m in mounts if m.command("status").get("trapped")), None)
                if held is None:
                    time.sleep(0.01)
            if held is not None:
                killer = self._kill_in_flight(cluster, node)
                mounts.remove(held)
                mounts.insert(0, held)
            else:  # nothing came: disarm first, so that no write is held while it dies
                for m in mounts:
                    m.command("release")
                self.target.kill(cluster, node)
                mounts.sort(key=lambda m: -int(m.command("status").get("unsynced_bytes", 0)))
            line = f"torn-write {seed} {self.torn_parts} {self.torn_sector}"
            if self.torn_file:
                line += f" {self.torn_file}"
            answers: list[dict[str, Any]] = []
            for m in mounts:
                done_already = any(a.get("torn") for a in answers)
                answers.append(m.command("drop-unsynced" if done_already else line))
        finally:
            for m in mounts:  # what waited behind the held write fails: its caller is dead
                with contextlib.suppress(OSError):
                    m.command("release")
        if killer is not None:
            killer.join(KILL_WAIT_S)
            if killer.is_alive() or killer.error is not None:
                raise OSError(errno.EIO, f"{node}: killing {self.target.name}: {killer.error}")
        return answers, held is not None

    def _kill_in_flight(self, cluster: Cluster, node: str) -> _Killer:
        """Kill the target while its write is held. Its threads that wait on the held write
        (or on the file's lock behind it) cannot exit until the fault file system answers, so
        the kill runs beside the tear: signalled now, its death awaited after the release.
        Returns once the process is gone or has had HELD_KILL_S to take the signal."""
        pid = self.target.pid(cluster, node)
        remote = cluster.remote(node)
        killer = _Killer(lambda: self.target.kill(cluster, node))
        killer.start()
        deadline = time.monotonic() + HELD_KILL_S
        while time.monotonic() < deadline and (pid is None or faultmount.alive_on(remote, pid)):
            if faultmount.fatal_signal_pending(remote, pid):
                break
            time.sleep(0.01)
        return killer

    @staticmethod
    def _torn_shown(d: dict[str, Any], glob: str) -> str:
        waited = (
            f"; no write to {glob} came within {d['no_write_within_s']:g} s"
            if "no_write_within_s" in d
            else ""
        )
        torn = d.get("torn")
        if torn is None:
            return waited + (f"; nothing torn: {d['torn_skipped']}" if "torn_skipped" in d else "")
        return (
            f"{waited}; tore {'the write in flight' if torn.get('held') else 'the newest un-fsynced write'}"
            f" to {torn['file']} ({torn['length']} B at {torn['offset']}) into "
            f"{len(torn['parts'])} {'sector ' if torn.get('sector') else ''}parts, kept part(s) "
            f"{', '.join(str(i + 1) for i in torn['persisted']) or 'none'} "
            f"({torn['persisted_bytes']} B)"
        )

    def _set(self, cluster: Cluster, op: Op, fault: str, nodes: list[str]) -> Op:
        line = {"disk-stall": f"stall {self.stall_ms}", "disk-error": "error", "disk-full": "full"}
        probes: dict[str, dict[str, Any]] = {}

        def one(node: str) -> None:
            self.control.command(node, line[self.kind])
            probes[node] = self.control.of(node)[0].probe()

        outcome = on_nodes(nodes, one)
        self.faulted.extend(nodes)
        data: dict[str, Any] = {"probe": probes}
        if self.kind == "disk-stall":
            data["stall_ms"] = self.stall_ms
        errors = [f"{n}: {e}" for n, e in outcome.items() if e is not None]
        if errors:
            tried = f"{self.kind} on {', '.join(nodes)}"
            return maybe_done(op, fault, nodes, tried, "; ".join(errors), **data)
        data["verified"] = all(self._verified(p) for p in probes.values())
        seen = "; ".join(f"{n}: {self._shown(p)}" for n, p in probes.items())
        what = {
            "disk-stall": f"every I/O delayed {self.stall_ms} ms",
            "disk-error": "writes and fsyncs fail with EIO",
            "disk-full": "writes fail with ENOSPC (disk full)",
        }[self.kind]
        return done(op, fault, nodes, f"{what} on {', '.join(nodes)} (probe {seen})", **data)

    def _verified(self, p: dict[str, Any]) -> bool:
        if self.kind == "disk-stall":
            return p.get("fsync_ms", 0.0) >= 0.9 * self.stall_ms
        return p.get("errno") == ("EIO" if self.kind == "disk-error" else "ENOSPC")

    @staticmethod
    def _shown(p: dict[str, Any]) -> str:
        if "fsync_ms" in p:
            return f"fsync took {p['fsync_ms']:g} ms"
        return f"{p['failed_at']} failed with {p['errno']}"

    # -- stop and heal ------------------------------------------------------------------------

    def _undo(self, cluster: Cluster, node: str) -> None:
        if self.kind in ("power-failure", "torn-write"):
            self.target.start(cluster, node)  # the power is back
            return
        self.control.command(node, "heal")
        # A store may stop itself when its disk fails it (the safe answer to EIO or ENOSPC);
        # the disk is whole again, so it is brought back, as an operator would, and said so.
        pid = self.target.pid(cluster, node)
        if not faultmount.alive_on(cluster.remote(node), pid):
            self.target.start(cluster, node)
            self.restarted.append(node)

    def _stop(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = list(self.faulted)
        if not nodes:
            return done(op, fault, [], "nothing to undo: no disk is faulted")
        # measured while the stall still holds: how far it has put its node behind
        lag = self._commit_lag(cluster) if self.kind == "disk-stall" else {}
        self.restarted = []
        outcome = on_nodes(nodes, lambda n: self._undo(cluster, n))
        after: dict[str, dict[str, Any]] = {}
        if self.kind == "torn-write":  # did the store come back from the tear, or not?
            # a start that fails because the store exited at once is its answer to the tear
            # (a refusal), not a failure to restore the power: observed like the rest
            after = {n: observe_restart(self.target, cluster, n) for n in nodes}
            for n in nodes:
                if outcome[n] is not None and not after[n]["running"]:
                    after[n]["start_error"] = str(outcome[n])[-300:]
                    outcome[n] = None
        undone = [n for n in nodes if outcome[n] is None]
        for n in undone:
            self.faulted.remove(n)
        errors = [f"{n}: {e}" for n, e in outcome.items() if e is not None]
        powered = self.kind in ("power-failure", "torn-write")
        verb = "power restored, restarted" if powered else "healed disk of"
        if errors:
            return maybe_done(op, fault, nodes, f"{verb} {', '.join(nodes)}", "; ".join(errors))
        data: dict[str, Any] = {}
        what = f"{verb} {', '.join(undone)}"
        if lag:
            data["commit_lag"] = lag
            shown = ", ".join(
                f"{n} {lag[n]}" if n in lag else f"{n} did not answer its status" for n in undone
            )
            what += f" (entries behind the most advanced node when the stall ended: {shown})"
        if self.restarted:
            data["restarted"] = sorted(self.restarted)
            what += f"; restarted {self.target.name} on {', '.join(data['restarted'])}, "
            what += "which had exited while its disk failed"
        if after:
            data["after"] = {n: after[n] for n in undone}
            what += f": {restart_shown(data['after'])}"
        if not powered:
            data["probe"] = {n: self.control.of(n)[0].probe() for n in undone}
        return done(op, fault, undone, what, **data)

    def _commit_lag(self, cluster: Cluster) -> dict[str, int]:
        """How far each node's commit index is behind the most advanced node's, from the
        HTTP contract's GET /status (`commit_index`): what a stalled disk did to a follower.
        Empty when the target has no such status."""
        status = getattr(self.target, "status", None)
        if not callable(status):
            return {}
        got: dict[str, int] = {}

        def one(node: str) -> None:
            st = status(cluster, node)
            if isinstance(st, dict) and isinstance(st.get("commit_index"), int):
                got[node] = st["commit_index"]

        on_nodes(cluster.names, one)
        if not got:
            return {}
        top = max(got.values())
        return {n: top - c for n, c in got.items()}

    def heal(self, cluster: Cluster) -> None:
        with self._lock:
            errors: list[str] = []
            for node in list(self.control.mounts):
                try:
                    self.control.command(node, "heal")
                except OSError as e:
                    errors.append(f"{node}: {e}")
            outcome = on_nodes(list(self.faulted), lambda n: self._undo(cluster, n))
            for n, e in outcome.items():
                if e is None:
                    self.faulted.remove(n)
                else:
                    errors.append(f"{n}: {e}")
            if errors:
                raise HarnessError(f"{self.name}: could not heal: {'; '.join(errors)}")


class DiskFaults(FaultPackage):
    """Disk faults on the fault file system. They heal after pauses and before kills: a
    stalled or failing disk must be whole again before restarted nodes replay their logs."""

    family: ClassVar[str] = FAMILY
    heal_order: ClassVar[int] = 25
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "disk-stall-ms",
            "int",
            DEFAULT_STALL_MS,
            "disk-stall: how long every I/O on the node waits, in ms",
            minimum=1,
            maximum=60_000,
        ),
        Option(
            "torn-file",
            "str",
            None,
            "torn-write: whose write is torn, a glob relative to the target's data directory "
            "(default: any file; the next write is held and the power cut in the middle of it)",
            metavar="GLOB",
        ),
        Option(
            "torn-sector",
            "int",
            DEFAULT_TORN_SECTOR,
            "torn-write: a write tears at the file's boundaries of this many bytes (a disk "
            "writes a sector whole); 0: anywhere, into --torn-parts equal parts (LazyFS's "
            "torn-op, which such a disk never does)",
            minimum=0,
            maximum=1 << 20,
        ),
        Option(
            "torn-parts",
            "int",
            DEFAULT_TORN_PARTS,
            "torn-write with --torn-sector 0: how many equal parts the write is split into",
            minimum=2,
            maximum=64,
        ),
    )
    look: ClassVar[FaultLook] = FaultLook(
        label="disk",
        colour="#8c5a2b",
        title="The answering node's disk failed around the op: {node}",
        on_node="\u201c{fault}\u201d acted on its disk around the op",
        suggests=(
            "Writes acknowledged before they were fsynced were lost when the power failed "
            "(acknowledge only after fsync of the file, and of its directory for a new name), "
            "or the node answered as if a write had been persisted when its disk had refused "
            "it (EIO, ENOSPC) or was too slow for its timeouts."
        ),
        rank=25,
    )
    faults: ClassVar[dict[str, str]] = {
        "power-failure-one": (
            "power failure on one random node: SIGKILL, drop every write not fsynced; restart"
        ),
        "power-failure-minority": (
            "power failure on n//2 random nodes at once: SIGKILL, drop what was not fsynced"
        ),
        "power-failure-majority": (
            "power failure on n//2+1 random nodes at once: SIGKILL, drop what was not fsynced"
        ),
        "power-failure-all": "power failure on every node: SIGKILL, drop what was not fsynced",
        "torn-write": (
            "power failure on one random node that tears its newest un-fsynced write to one "
            "file (--torn-file): some of its --torn-parts parts persist, the rest is dropped"
        ),
        "torn-write-all": (
            "torn-write on every node at once (each tears its own newest write to the file)"
        ),
        "disk-stall": "every I/O on one random node waits --disk-stall-ms (200 ms)",
        "disk-error": "writes and fsyncs on one random node fail with EIO",
        "disk-full": "writes on one random node fail with ENOSPC (disk full)",
    }

    def unsupported(
        self, name: str, target: Target, nodes: NodeFacts = ON_THIS_KERNEL
    ) -> str | None:
        tname = getattr(target, "name", "this target")
        if not hasattr(target, "disk_control"):
            return (
                f"{tname} does not start its processes with a disk control (disk_control), "
                "so its data directory cannot be put on the fault file system"
            )
        cls = target if isinstance(target, type) else type(target)
        if getattr(cls, "data_dirs", Target.data_dirs) is Target.data_dirs:
            return (
                f"{tname} declares no data directory (data_dirs), so there is nothing on "
                "its disk for a disk fault to act on"
            )
        cluster = nodes.cluster
        if cluster is None or cluster.shares_controller_files:
            # on the controller (and before the nodes are open: the local cluster's case,
            # checked again per node once they are)
            why = faultmount.available()
            if why and (cluster is not None or not nodes.own_kernels):
                return f"disk faults need the fault file system: {why}"
            return None
        return self._node_problems(cluster, target)

    @staticmethod
    def _node_problems(cluster: Cluster, target: Target) -> str | None:
        """Each node that does not share the controller's files runs its own fault file
        system: asked of every node at once, the first that cannot named."""
        python = getattr(target, "python", "python3")
        problems: dict[str, str] = {}

        def ask(node: str) -> None:
            why = faultmount.node_problem(cluster.remote(node), python)
            if why is not None:
                problems[node] = why

        on_nodes(cluster.names, ask)
        return (
            "; ".join(
                f"node {n}: disk faults need a fault file system there: {problems[n]}"
                for n in cluster.names
                if n in problems
            )
            or None
        )

    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        control = getattr(target, "disk_control", None)
        if not isinstance(control, DiskControl):
            control = DiskControl()
            target.disk_control = control  # type: ignore[attr-defined]
        stall = int(options.get("disk-stall-ms") or DEFAULT_STALL_MS)
        torn_file = options.get("torn-file") or None
        parts = int(options.get("torn-parts") or DEFAULT_TORN_PARTS)
        sector = options.get("torn-sector")
        sector = DEFAULT_TORN_SECTOR if sector is None else int(sector)
        return DiskNemesis(name, target, control, rng, stall, torn_file, parts, sector)

    def took_effect(self, completion: Op) -> bool:
        """An `ok` start that dropped on the chosen nodes (power failure), tore a write on
        each (torn-write), or whose probe saw the fault on every chosen node."""
        value = completion.value
        if completion.type != "ok" or not isinstance(value, dict) or not value.get("nodes"):
            return False
        if "torn_file" in value:
            return value.get("verified") is True
        return "dropped" in value or value.get("verified") is True


__all__ = ["DiskControl", "DiskFaults", "DiskNemesis", "probe"]
