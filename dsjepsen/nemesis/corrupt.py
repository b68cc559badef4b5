"""File corruption (Jepsen's bitflip and truncate nemeses): what a store does when the bytes
it once wrote and fsynced come back different, or shorter.

A power failure (disk.py) only takes back what was never fsynced; a disk that rots, a
firmware bug or an operator's slip can change what was. Jepsen's `jepsen.nemesis.file`
corrupts a minority of nodes' data files so that the rest of the cluster still holds the
truth: a store that detects the damage and stops (or refuses to start, or repairs itself from
its peers) keeps the cluster correct; one that reads the damaged bytes as data serves a
silently different value, which the checker finds.

* `file-bitflip`: on a minority of the nodes where the target runs (drawn once per run, so that
  however often it strikes a majority holds every file whole), the target is killed, then
  `--bitflip-count` random bits (1) of one random data file are flipped, each recorded (file,
  offset, bit, old and new byte); stop restarts it.
* `file-truncate`: likewise, but the file loses a random 1 to `--truncate-max-bytes` (4096)
  bytes off its end.

The data files are the regular, non-empty files under the target's `data_dirs` matching
`--corrupt-file GLOB` (a path relative to the data directory; default: any). Everything is
done through the node's remote, as argument lists with timeouts, so it works on every kind of
node (no fault file system is needed). Stop restarts the target and records, a few seconds
later, whether it is running or has exited, with the last lines of its log: what the store
did about the damage is part of the record.
"""

from __future__ import annotations

import fnmatch
import random
from typing import TYPE_CHECKING, Any, ClassVar

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
from dsjepsen.nemesis.process import choose, on_nodes, share
from dsjepsen.options import Option
from dsjepsen.targets.base import Target

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.history import Op

FAMILY = "file"
DEFAULT_BITFLIPS = 1
DEFAULT_TRUNCATE_MAX = 4096
#: remote commands: listing a data directory, changing one file
TIMEOUT_S = 30.0

# Flips bits in place and fsyncs: argv[1] the file, then OFFSET:BIT pairs; prints
# "offset bit old new" for each (run with the node's python3: no tool of coreutils flips a bit).
_FLIP = """import os, sys
with open(sys.argv[1], "r+b") as f:
    for a in sys.argv[2:]:
        o, b = (int(x) for x in a.split(":"))
        f.seek(o)
        old = f.read(1)[0]
        f.seek(o)
        f.write(bytes([old ^ (1 << b)]))
        print(o, b, old, old ^ (1 << b))
    f.flush()
    os.fsync(f.fileno())
"""


class FileNemesis(StartStopNemesis):
    """One corruption fault of a run; it remembers the nodes it stopped, so that stop (or heal
    after a failed stop) restarts exactly those."""

    def __init__(
        self,
        name: str,
        target: Target,
        rng: random.Random,
        pattern: str | None,
        bitflips: int,
        truncate_max: int,
    ) -> None:
        if name not in FileFaults.faults:
            raise ValueError(f"file: no fault {name!r}")
        self.name = name
        self.target = target
        self.rng = rng
        self.pattern = pattern
        self.bitflips = bitflips
        self.truncate_max = truncate_max
        self.fs = (f"start-{FAMILY}", f"stop-{FAMILY}")
        self.faulted: list[str] = []
        #: the minority drawn at the first start, corrupted again at every later one
        self.victims: list[str] = []
        super().__init__()  # the lock invoke and heal share

    # -- start --------------------------------------------------------------------------------

    def data_files(self, cluster: Cluster, node: str) -> list[tuple[str, str, int]]:
        """The node's data files that may be corrupted: (data dir, path relative to it, size),
        regular and non-empty, matching --corrupt-file."""
        found: list[tuple[str, str, int]] = []
        remote = cluster.remote(node)
        for d in self.target.data_dirs(cluster, node):
            res = remote.run(
                ["find", d, "-type", "f", "-size", "+0c", "-printf", "%s\\t%P\\n"],
                timeout=TIMEOUT_S,
                check=False,
            )
            for line in res.stdout.splitlines():
                size, _, rel = line.partition("\t")
                if (
                    size.isdigit()
                    and rel
                    and (self.pattern is None or fnmatch.fnmatchcase(rel, self.pattern))
                ):
                    found.append((d, rel, int(size)))
        return sorted(found)

    def _start(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes_all = process_nodes(self.target, cluster)
        if self.faulted:
            return not_done(op, fault, f"{', '.join(self.faulted)} still stopped")
        if not self.victims:  # the same minority every time: the majority keeps the truth
            try:
                self.victims = choose("minority", nodes_all, nodes_all, self.rng)
            except ValueError as e:
                return not_done(op, fault, str(e))
        nodes = list(self.victims)
        corrupted: dict[str, dict[str, Any]] = {}
        errors: list[str] = []
        # one node after another: the draws come from the run's rng, in cluster order
        for node in nodes:
            try:
                self.target.kill(cluster, node)
                self.faulted.append(node)
                corrupted[node] = self._corrupt(cluster, node)
            except Exception as e:  # noqa: BLE001 - recorded: the op is then info
                errors.append(f"{node}: {e}")
        data: dict[str, Any] = {"corrupted": corrupted}
        if errors:
            tried = f"{self.name} on {', '.join(nodes)}"
            return maybe_done(op, fault, nodes, tried, "; ".join(errors), **data)
        data["verified"] = all("file" in c for c in corrupted.values())
        shown = "; ".join(f"{n}: {self._shown(c)}" for n, c in corrupted.items())
        what = (
            f"stopped {self.target.name} on {share(len(nodes), len(nodes_all))} and "
            f"{'flipped bits in' if self.name == 'file-bitflip' else 'truncated'} a data "
            f"file: {shown}"
        )
        return done(op, fault, nodes, what, **data)

    def _corrupt(self, cluster: Cluster, node: str) -> dict[str, Any]:
        files = self.data_files(cluster, node)
        if not files:
            where = ", ".join(self.target.data_dirs(cluster, node))
            glob = f" matching {self.pattern!r}" if self.pattern else ""
            return {"skipped": f"no non-empty data file{glob} under {where}"}
        d, rel, size = self.rng.choice(files)
        path = f"{d.rstrip('/')}/{rel}"
        remote = cluster.remote(node)
        record: dict[str, Any] = {"file": rel, "data_dir": d, "size": size}
        if self.name == "file-bitflip":
            offsets = sorted(self.rng.sample(range(size), min(self.bitflips, size)))
            pairs = [f"{o}:{self.rng.randrange(8)}" for o in offsets]
            res = remote.run(["python3", "-c", _FLIP, path, *pairs], timeout=TIMEOUT_S)
            record["flips"] = [
                dict(zip(("offset", "bit", "old", "new"), map(int, line.split()), strict=True))
                for line in res.stdout.splitlines()
                if len(line.split()) == 4
            ]
        else:
            drop = self.rng.randint(1, min(size, self.truncate_max))
            remote.run(["truncate", "-s", str(size - drop), "--", path], timeout=TIMEOUT_S)
            remote.run(["sync", "--", path], timeout=TIMEOUT_S, check=False)
            record.update(truncated_to=size - drop, dropped=drop)
        return record

    @staticmethod
    def _shown(c: dict[str, Any]) -> str:
        if "file" not in c:
            return f"nothing corrupted ({c.get('skipped')})"
        if "flips" in c:
            bits = ", ".join(f"bit {f['bit']} of byte {f['offset']}" for f in c["flips"])
            return f"{c['file']} ({c['size']} B): {bits}"
        return f"{c['file']} cut from {c['size']} to {c['truncated_to']} B (-{c['dropped']})"

    # -- stop and heal ------------------------------------------------------------------------

    def _restart(self, cluster: Cluster, node: str) -> None:
        self.target.start(cluster, node)

    def _stop(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = list(self.faulted)
        if not nodes:
            return done(op, fault, [], "nothing to undo: no node is stopped")
        outcome = on_nodes(nodes, lambda n: self._restart(cluster, n))
        # A start that fails because the store exited at once is the store's answer to the
        # damage (a refusal), not a failure to undo the fault: it is observed like the rest.
        after = {n: observe_restart(self.target, cluster, n) for n in nodes}
        restarted = [n for n in nodes if outcome[n] is None or not after[n]["running"]]
        for n in restarted:
            self.faulted.remove(n)
            if outcome[n] is not None:
                after[n]["start_error"] = str(outcome[n])[-300:]
        errors = [f"{n}: {outcome[n]}" for n in nodes if n not in restarted]
        if errors:
            return maybe_done(op, fault, nodes, f"restart {', '.join(nodes)}", "; ".join(errors))
        what = f"restarted {self.target.name} on {', '.join(restarted)}: {restart_shown(after)}"
        return done(op, fault, restarted, what, after=after)

    def heal(self, cluster: Cluster) -> None:
        with self._lock:
            outcome = on_nodes(list(self.faulted), lambda n: self._restart(cluster, n))
            for n, e in outcome.items():
                if e is None:
                    self.faulted.remove(n)


class FileFaults(FaultPackage):
    """Bit flips and truncation of a minority's data files while their target is stopped.
    They heal last (a restart, after the network, the disks and the killed processes)."""

    family: ClassVar[str] = FAMILY
    heal_order: ClassVar[int] = 35
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "corrupt-file",
            "str",
            None,
            "file-bitflip / file-truncate: which data files may be corrupted, a glob relative "
            "to the target's data directory (default: any non-empty file)",
            metavar="GLOB",
        ),
        Option(
            "bitflip-count",
            "int",
            DEFAULT_BITFLIPS,
            "file-bitflip: how many random bits of the chosen file are flipped",
            minimum=1,
            maximum=10_000,
        ),
        Option(
            "truncate-max-bytes",
            "int",
            DEFAULT_TRUNCATE_MAX,
            "file-truncate: the most bytes cut off the end of the chosen file",
            minimum=1,
            maximum=1 << 40,
        ),
    )
    look: ClassVar[FaultLook] = FaultLook(
        label="file corruption",
        colour="#6b3d8c",
        title="The answering node's data files were corrupted before the op: {node}",
        on_node="\u201c{fault}\u201d changed its data files around the op",
        suggests=(
            "The node read back damaged data (flipped bits, a shortened file) as if it were "
            "what it had written: a store must detect it (checksums over every record) and "
            "stop or recover from its peers, never serve it."
        ),
        rank=26,
    )
    faults: ClassVar[dict[str, str]] = {
        "file-bitflip": (
            "stop the system on a minority of nodes, flip --bitflip-count (1) random bits in "
            "one of its data files, restart it"
        ),
        "file-truncate": (
            "stop the system on a minority of nodes, cut 1 to --truncate-max-bytes (4096) "
            "bytes off the end of one of its data files, restart it"
        ),
    }

    def unsupported(
        self, name: str, target: Target, nodes: NodeFacts = ON_THIS_KERNEL
    ) -> str | None:
        cls = target if isinstance(target, type) else type(target)
        if getattr(cls, "data_dirs", Target.data_dirs) is Target.data_dirs:
            return (
                f"{getattr(target, 'name', 'this target')} declares no data directory "
                "(data_dirs), so it has no files to corrupt"
            )
        return None

    def min_nodes(self, name: str) -> int:
        return 2  # a minority of one node is no node

    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        return FileNemesis(
            name,
            target,
            rng,
            options.get("corrupt-file") or None,
            int(options.get("bitflip-count") or DEFAULT_BITFLIPS),
            int(options.get("truncate-max-bytes") or DEFAULT_TRUNCATE_MAX),
        )

    def took_effect(self, completion: Op) -> bool:
        """An `ok` start that corrupted a file on every chosen node."""
        value = completion.value
        return completion.type == "ok" and isinstance(value, dict) and value.get("verified") is True


__all__ = ["FileFaults", "FileNemesis"]
