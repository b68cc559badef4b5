"""Clock faults: bump, strobe, skew and reset the wall clock of nodes, as the target sees it.

Two ways to move a node's clock, chosen per node by a fact, never by the kind of cluster:

- the node shares this machine's kernel (local namespaces, docker containers, an SSH "node"
  that is this host; `cluster/faketime.py` compares kernel boot ids): its clock *is* the
  controller's, which must never change. The target's processes run under libfaketime
  (the package sets `target.clock_control`, which `HttpServerTarget.start` asks for the
  environment), reading their offset from a per-node control file that this nemesis
  rewrites while they run. A target whose server libfaketime cannot start (`clock_shim`,
  Redis) runs under the project's own clock shim instead (`cluster/clockshim.py`), which
  reads the same file;
- the node has its own kernel (a real machine over SSH): time synchronisation is stopped
  (`timedatectl set-ntp false`, `systemctl stop` of chrony / ntp / systemd-timesyncd) and
  CLOCK_REALTIME is set with the node's own `date -u -s @EPOCH.NNN`, computed from the
  controller's clock plus the offset; heal sets true time again.

Jepsen's semantics (jepsen.nemesis.time): a bump adds an offset to a random non-empty subset
of nodes and stays until a reset (or the end of the run); a strobe flips clocks between two
offsets at a high rate for its window; skew gives every node a different steady offset for its
window; reset brings every node back to true time. Offsets are drawn as Jepsen draws them:
±2^x ms, x uniform, here from about 10 ms to 288 s.

Every completion records `clock_offsets` (the offset now applied, per node, seconds) and then
`measured_offsets`: each node's clock read the way the target's processes read it (`date`
under the same libfaketime environment, or plain `date` on a real node), minus the midpoint of
the controller's clock around the read, with `measure_rtt` bounding the error. `verified` says
whether every node measured within tolerance of its offset; a start that was not verified does
not count as taken effect for the vacuous-run check.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

from dsjepsen.cluster import clockshim
from dsjepsen.cluster.daemon import start_daemon, stop_daemon
from dsjepsen.cluster.faketime import (
    LIBFAKETIME,
    FaketimeControl,
    bypasses_libc,
    format_offset,
    shares_controller_kernel,
)
from dsjepsen.errors import HarnessError
from dsjepsen.faults import FaultLook
from dsjepsen.nemesis.base import ON_THIS_KERNEL, FaultPackage, Nemesis, NodeFacts
from dsjepsen.nemesis.common import done, fault_name, maybe_done, not_done

if TYPE_CHECKING:
    from dsjepsen.cluster.cluster import Cluster
    from dsjepsen.cluster.control.base import Remote
    from dsjepsen.history import Op
    from dsjepsen.targets.base import Target

START, STOP = "start-clock", "stop-clock"
TIMEOUT = 20.0
#: Jepsen draws |offset| = 2^x ms; these bounds give about 10 ms .. 288 s
MIN_MS, MAX_MS = 10.0, 288_000.0
#: a measured offset within this much (plus half the measuring round trip) of the intended one
#: counts as applied
TOLERANCE = 0.05
#: time synchronisation services stopped on real nodes before their clock is set
SYNC_UNITS = ("chrony.service", "chronyd.service", "ntp.service", "ntpd.service",
              "ntpsec.service", "systemd-timesyncd.service")  # fmt: skip


def draw_offset(rng: random.Random) -> float:
    """±2^x ms with x uniform between log2(10) and log2(288000), in seconds (to the ms)."""
    ms = 2 ** rng.uniform(math.log2(MIN_MS), math.log2(MAX_MS))
    return round(rng.choice((-1, 1)) * ms / 1000.0, 3)


def random_subset(nodes: list[str], rng: random.Random) -> list[str]:
    """A random non-empty subset, in cluster order (Jepsen's random-nonempty-subset)."""
    picked = set(rng.sample(nodes, rng.randint(1, len(nodes))))
    return [n for n in nodes if n in picked]


def _epoch_arg(t: float) -> str:
    return f"@{t:.3f}"


# -- per-node clocks ---------------------------------------------------------------------------


class SystemClock:
    """A node with its own kernel: stop time sync, set CLOCK_REALTIME with `date`.

    Refuses (HarnessError) a node that shares the controller's kernel: setting its clock would
    set this machine's. `allow_shared_kernel` exists only for tests whose node runs `date`
    test doubles first on its PATH."""

    path = "system"

    def __init__(self, remote: Remote, allow_shared_kernel: bool = False) -> None:
        self.remote = remote
        self.allow_shared_kernel = allow_shared_kernel
        self.sync_stopped = False
        self._checked = False

    def _check(self) -> None:
        if self._checked or self.allow_shared_kernel:
            return
        if shares_controller_kernel(self.remote):
            raise HarnessError(
                f"node {self.remote.node.name} runs on the controller's own kernel: refusing to "
                "set its clock (that would set this machine's); its processes need libfaketime"
            )
        self._checked = True

    def stop_sync(self) -> None:
        """Stop whatever keeps the clock in sync, so that it does not undo our offsets."""
        if self.sync_stopped:
            return
        self.remote.run(["timedatectl", "set-ntp", "false"], timeout=TIMEOUT, check=False)
        self.remote.run(["systemctl", "stop", *SYNC_UNITS], timeout=TIMEOUT, check=False)
        self.sync_stopped = True

    def set(self, offset: float) -> None:
        self._check()
        self.stop_sync()
        self.remote.run(["date", "-u", "-s", _epoch_arg(time.time() + offset)], timeout=TIMEOUT)

    def reset(self) -> None:
        """True time again (the controller's), and time sync back on."""
        self._check()
        self.remote.run(["date", "-u", "-s", _epoch_arg(time.time())], timeout=TIMEOUT)
        self.remote.run(["timedatectl", "set-ntp", "true"], timeout=TIMEOUT, check=False)
        self.sync_stopped = False

    def date_argv(self) -> list[str]:
        return ["date", "+%s.%N"]

    def strobe_script(self, base: float, delta: float, period: float) -> list[str]:
        """A loop on the node that jumps +delta, waits, jumps -delta, waits."""
        d = int(round(delta * 1e9))
        script = (
            "d=$1; p=$2\n"
            "jump() { t=$(( $(date +%s%N) + $1 )); "
            'date -u -s "@$((t/1000000000)).$(printf %09d $((t%1000000000)))" >/dev/null; }\n'
            'while :; do jump "$d"; sleep "$p"; jump "$((-d))"; sleep "$p"; done\n'
        )
        return ["sh", "-c", script, "dsj-strobe", str(d), f"{period:.3f}"]


class FaketimeClock:
    """A node on the controller's kernel: its target processes read a libfaketime file
    (through libfaketime or the clock shim: `path` says which)."""

    def __init__(self, cluster: Cluster, node: str, control: FaketimeControl) -> None:
        self.cluster, self.node, self.control = cluster, node, control
        self.path = control.kind

    def set(self, offset: float) -> None:
        self.control.write(self.cluster, self.node, offset)

    def reset(self) -> None:
        self.control.write(self.cluster, self.node, 0.0)

    def date_argv(self) -> list[str]:
        env = self.control.env(self.cluster, self.node)
        return ["env", *(f"{k}={v}" for k, v in env.items()), "date", "+%s.%N"]

    def strobe_script(self, base: float, delta: float, period: float) -> list[str]:
        path = self.control.control_file(self.cluster.node(self.node))
        script = (
            "f=$1; a=$2; b=$3; p=$4\n"
            'put() { printf "%s\\n" "$1" >"$f.strobe" && mv "$f.strobe" "$f"; }\n'
            'while :; do put "$b"; sleep "$p"; put "$a"; sleep "$p"; done\n'
        )
        a, b = format_offset(base), format_offset(base + delta)
        return ["sh", "-c", script, "dsj-strobe", path, a, b, f"{period:.3f}"]


NodeClock = SystemClock | FaketimeClock


def measure(remote: Remote, argv: list[str]) -> tuple[float, float]:
    """(offset, round trip) of the node's clock as `argv` (a `date +%s.%N`) reads it."""
    t0 = time.time()
    res = remote.run(argv, timeout=TIMEOUT)
    t1 = time.time()
    return float(res.stdout.strip().splitlines()[-1]) - (t0 + t1) / 2, t1 - t0


# -- shared state of one run ---------------------------------------------------------------------


class ClockState:
    """What every clock nemesis of one run shares: each node's intended offset, how its clock
    is moved, the strobes running. Set as the target's `clock_control`, so it also gives the
    target's daemons their libfaketime (or clock shim) environment (`env`)."""

    def __init__(self, shim: bool = False) -> None:
        self.control = FaketimeControl(shim=shim)
        self.offsets: dict[str, float] = {}
        self.clocks: dict[str, NodeClock] = {}
        self.strobing: dict[str, float] = {}  # node -> delta of a running strobe
        self.strobe_period = 0.0
        self.lock = threading.RLock()

    def env(self, cluster: Cluster, node: str) -> dict[str, str]:
        return self.control.env(cluster, node)

    def clock(self, cluster: Cluster, node: str) -> NodeClock:
        if node not in self.clocks:
            if self.control.uses_faketime(cluster, node):
                self.clocks[node] = FaketimeClock(cluster, node, self.control)
            else:
                self.clocks[node] = SystemClock(cluster.remote(node))
        return self.clocks[node]

    def strobe_files(self, cluster: Cluster, node: str) -> tuple[str, str]:
        d = f"{cluster.node(node).workdir.rstrip('/')}/dsj-clock"
        return f"{d}/strobe.pid", f"{d}/strobe.log"

    def on_nodes(self, nodes: list[str], fn: Any) -> dict[str, Any]:
        """fn(node) on every node at once; {node: result}; one HarnessError for all failures."""
        if not nodes:
            return {}
        with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
            futures = {n: pool.submit(fn, n) for n in nodes}
        errors, out = [], {}
        for n, f in futures.items():
            e = f.exception()
            if e is not None:
                errors.append(str(e) if n in str(e) else f"node {n}: {e}")
            else:
                out[n] = f.result()
        if errors:
            raise HarnessError("; ".join(errors))
        return out

    def apply(self, cluster: Cluster, offsets: dict[str, float]) -> None:
        """Set these nodes' offsets (others keep theirs)."""

        def one(node: str) -> None:
            clock = self.clock(cluster, node)
            if offsets[node] == 0.0:
                clock.reset()
            else:
                clock.set(offsets[node])
            self.offsets[node] = offsets[node]

        self.on_nodes(list(offsets), one)

    def measure_all(self, cluster: Cluster) -> tuple[dict[str, float], dict[str, float]]:
        """({node: measured offset}, {node: round trip}) for every node, rounded to the ms."""
        got = self.on_nodes(
            cluster.names,
            lambda n: measure(cluster.remote(n), self.clock(cluster, n).date_argv()),
        )
        offsets = {n: round(got[n][0], 3) for n in cluster.names}
        rtts = {n: round(got[n][1], 3) for n in cluster.names}
        return offsets, rtts

    def record(self, cluster: Cluster) -> dict[str, Any]:
        """The completion fields: intended and measured offsets, and whether they agree."""
        intended = {n: self.offsets.get(n, 0.0) for n in cluster.names}
        data: dict[str, Any] = {
            "clock_offsets": intended,
            "clock_paths": {n: self.clock(cluster, n).path for n in cluster.names},
        }
        try:
            measured, rtts = self.measure_all(cluster)
        except Exception as e:  # the fault may be fine; say that it could not be checked
            data.update(measured_offsets=None, verified=False, measure_error=str(e))
            return data
        off = {
            n: abs(measured[n] - intended[n])
            for n in cluster.names
            if n not in self.strobing  # a strobing clock is at either of two offsets
        }
        verified = all(off[n] <= TOLERANCE + rtts[n] / 2 for n in off)
        if self.strobing:  # a strobing clock must be seen at its strobed offset too
            samples = self.strobe_samples(cluster)
            data["strobe_samples"] = samples
            for n, delta in self.strobing.items():
                strobed = intended[n] + delta
                verified = verified and any(
                    abs(x - strobed) <= TOLERANCE + rtts[n] / 2 for x in samples[n]
                )
        data.update(measured_offsets=measured, measure_rtt=rtts, verified=verified)
        return data

    def strobe_samples(self, cluster: Cluster) -> dict[str, list[float]]:
        """Offsets of each strobing node read again and again for over two strobe periods
        (at least 8 reads, at most 40): they should show both offsets."""
        nodes = sorted(self.strobing)

        def one(node: str) -> list[float]:
            argv = self.clock(cluster, node).date_argv()
            out: list[float] = []
            end = time.monotonic() + 2.2 * self.strobe_period
            while len(out) < 40 and (len(out) < 8 or time.monotonic() < end):
                out.append(round(measure(cluster.remote(node), argv)[0], 3))
            return out

        return self.on_nodes(nodes, one)

    def stop_strobes(self, cluster: Cluster, nodes: list[str] | None = None) -> None:
        """Stop the strobe loops (all nodes: also ones a crashed run left) and put the nodes
        back at their offsets before the strobe."""
        names = cluster.names if nodes is None else nodes

        def one(node: str) -> None:
            pidfile, _log = self.strobe_files(cluster, node)
            stop_daemon(cluster.remote(node), pidfile, grace=0.5)

        self.on_nodes(names, one)
        for n in names:
            self.strobing.pop(n, None)
        self.apply(cluster, {n: self.offsets.get(n, 0.0) for n in names})

    def reset_all(self, cluster: Cluster) -> None:
        """Every node back to true time, strobes stopped; idempotent."""
        with self.lock:
            self.stop_strobes(cluster)
            self.apply(cluster, {n: 0.0 for n in cluster.names})


def _shown(values: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:+.3f}s" for n, v in values.items())


class ClockNemesis(Nemesis):
    """One clock fault (`clock-bump`, `clock-strobe`, `clock-skew` or `clock-reset`)."""

    fs = (START, STOP)

    def __init__(self, name: str, state: ClockState, rng: random.Random) -> None:
        self.name, self.state, self.rng = name, state, rng
        self.before: dict[str, float] = {}  # skew: the offsets to return to on stop

    def invoke(self, cluster: Cluster, op: Op) -> Op:
        fault = fault_name(op, self.name)
        with self.state.lock:
            if op.f not in self.fs:
                return not_done(op, fault, f"{self.name} does not handle f={op.f!r}")
            action = getattr(self, f"_{op.f.split('-')[0]}_{self.name.removeprefix('clock-')}")
            try:
                return action(cluster, op, fault)
            except Exception as e:  # part of the nodes may have moved: say so, heal resets
                data = {"clock_offsets": dict(self.state.offsets)}
                return maybe_done(op, fault, cluster.names, self.name, str(e), **data)

    def _finish(self, cluster: Cluster, op: Op, fault: str, nodes: list[str], what: str,
                **extra: Any) -> Op:  # fmt: skip
        data = self.state.record(cluster)
        if not data["verified"]:
            what += " (not verified: measured offsets differ, see measured_offsets)"
        return done(op, fault, nodes, what, **data, **extra)

    # bump: add an offset to a random non-empty subset; it stays until a reset
    def _start_bump(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = random_subset(cluster.names, self.rng)
        deltas = {n: draw_offset(self.rng) for n in nodes}
        target = {n: round(self.state.offsets.get(n, 0.0) + deltas[n], 3) for n in nodes}
        self.state.apply(cluster, target)
        return self._finish(cluster, op, fault, nodes, f"bumped clocks: {_shown(deltas)}",
                            bumps=deltas)  # fmt: skip

    def _stop_bump(self, cluster: Cluster, op: Op, fault: str) -> Op:
        what = "a bump is a jump: offsets stay until clock-reset or the end of the run"
        return self._finish(cluster, op, fault, [], what)

    # strobe: flip between the current offset and offset + delta every period, until stop
    def _start_strobe(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = random_subset(cluster.names, self.rng)
        delta = draw_offset(self.rng)
        period = round(2 ** self.rng.uniform(math.log2(10), 10) / 1000.0, 3)
        self.state.stop_strobes(cluster, nodes)
        self.state.strobe_period = period

        def one(node: str) -> None:
            clock = self.state.clock(cluster, node)
            if isinstance(clock, SystemClock):
                clock._check()
                clock.stop_sync()
            pidfile, logfile = self.state.strobe_files(cluster, node)
            argv = clock.strobe_script(self.state.offsets.get(node, 0.0), delta, period)
            start_daemon(cluster.remote(node), argv, pidfile=pidfile, logfile=logfile,
                         cwd="/", timeout=TIMEOUT)  # fmt: skip
            self.state.strobing[node] = delta

        self.state.on_nodes(nodes, one)
        what = f"strobing the clocks of {', '.join(nodes)} by {delta:+.3f}s every {period:g}s"
        return self._finish(cluster, op, fault, nodes, what,
                            strobe={"delta": delta, "period": period, "nodes": nodes})  # fmt: skip

    def _stop_strobe(self, cluster: Cluster, op: Op, fault: str) -> Op:
        nodes = sorted(self.state.strobing)
        self.state.stop_strobes(cluster)
        return self._finish(cluster, op, fault, nodes, "stopped strobing, offsets as before")

    # skew: every node a different steady offset for the window
    def _start_skew(self, cluster: Cluster, op: Op, fault: str) -> Op:
        self.before = {n: self.state.offsets.get(n, 0.0) for n in cluster.names}
        offsets: dict[str, float] = {}
        for n in cluster.names:
            o = draw_offset(self.rng)
            while o in offsets.values():
                o = draw_offset(self.rng)
            offsets[n] = o
        self.state.apply(cluster, offsets)
        return self._finish(cluster, op, fault, cluster.names, f"skewed clocks: {_shown(offsets)}",
                            skew=offsets)  # fmt: skip

    def _stop_skew(self, cluster: Cluster, op: Op, fault: str) -> Op:
        back = self.before or {n: 0.0 for n in cluster.names}
        self.state.apply(cluster, back)
        self.before = {}
        return self._finish(cluster, op, fault, cluster.names, "skew undone")

    # reset: true time on every node
    def _start_reset(self, cluster: Cluster, op: Op, fault: str) -> Op:
        self.state.reset_all(cluster)
        return self._finish(cluster, op, fault, cluster.names, "reset every clock to true time")

    def _stop_reset(self, cluster: Cluster, op: Op, fault: str) -> Op:
        return self._finish(cluster, op, fault, [], "nothing to undo")

    def heal(self, cluster: Cluster) -> None:
        self.state.reset_all(cluster)


def _program(target: Any) -> str | None:
    """The executable the target runs on its nodes, if it names one (`binary` attribute, or a
    module-level BINARY as etcd's target has), resolved on this machine."""
    name = getattr(target, "binary", None) or getattr(
        sys.modules.get(getattr(target, "__module__", ""), None), "BINARY", None
    )
    if not isinstance(name, str) or not name:
        return None
    return shutil.which(name) or (name if name.startswith("/") else None)


class ClockFaults(FaultPackage):
    """bump / strobe / skew / reset. Clocks heal after the network and before process faults
    restart anything, so a restarted process starts at true time."""

    family: ClassVar[str] = "clock"
    look: ClassVar[FaultLook] = FaultLook(
        label="clock",
        colour="#b7791f",
        title="The answering node's clock was moved: {node}",
        on_node="its clock was off by {detail} s (\u201c{fault}\u201d) during the op",
        detail_field="clock_offsets",
        suggests=(
            "Something on this node trusted its wall clock: a lease or a timeout computed from "
            "it let the node act as if it still held a lease, or ordered events by time stamps "
            "from clocks that disagree."
        ),
        rank=25,
    )
    heal_order: ClassVar[int] = 15
    faults: ClassVar[dict[str, str]] = {
        "clock-bump": "jump the clocks of a random non-empty subset of nodes by ±10 ms..288 s "
        "each (stays until clock-reset)",
        "clock-strobe": "flip the clocks of random nodes between two offsets every 10 ms..1 s "
        "for the window",
        "clock-skew": "give every node a different steady clock offset for the window",
        "clock-reset": "set every node's clock back to true time",
    }

    def unsupported(self, name: str, target: Any, nodes: NodeFacts = ON_THIS_KERNEL) -> str | None:
        """On nodes with kernels of their own (machines over SSH) every target works: their
        clocks are set with `date` (SystemClock), whatever the target's binaries do. Where a
        node shares this machine's kernel (local namespaces, docker, or an SSH host that turns
        out to be this machine once the nodes are open) its processes are moved with
        libfaketime, so targets it cannot reach are refused. `target` is the class when the
        options are validated, an instance when the nemesis is built."""
        if nodes.own_kernels:
            return None
        tname = getattr(target, "name", "this target")
        program = _program(target)
        if program is not None:
            try:
                why = bypasses_libc(program)
            except (OSError, ValueError):
                why = None
            if why:
                return (
                    f"{why}, so libfaketime cannot move {tname}'s clock on nodes that share "
                    "this machine's kernel (local namespaces, docker); clock faults need real "
                    "machines over SSH (--nodes), whose clocks the nemesis sets with date"
                )
        if not hasattr(target, "clock_control"):
            return (
                f"{tname} does not start its processes with a clock control (clock_control), "
                "so its clock cannot be moved without moving this machine's"
            )
        if getattr(target, "clock_shim", False):
            return clockshim.problem()
        if not os.path.exists(LIBFAKETIME):
            return f"libfaketime is not installed ({LIBFAKETIME}; apt-get install libfaketime)"
        return None

    def nemesis(
        self, name: str, target: Target, rng: random.Random, options: dict[str, Any]
    ) -> Nemesis:
        state = getattr(target, "clock_control", None)
        if not isinstance(state, ClockState):
            state = ClockState(shim=bool(getattr(target, "clock_shim", False)))
            target.clock_control = state  # type: ignore[attr-defined]
        return ClockNemesis(name, state, rng)

    def took_effect(self, completion: Op) -> bool:
        """An `ok` start whose offsets were measured on the nodes as intended."""
        value = completion.value
        return (
            completion.type == "ok"
            and isinstance(value, dict)
            and value.get("verified") is True
            and value.get("measured_offsets") is not None
        )


__all__ = ["ClockFaults", "ClockNemesis", "ClockState", "FaketimeClock", "SystemClock"]
