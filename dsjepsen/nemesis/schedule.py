"""When faults start and stop: a seeded alternation of start and stop ops.

Jepsen's classic schedule: sleep an interval, start a fault, sleep, stop it, repeat. Only one
fault is active at a time, so every stop undoes exactly the fault that its start began, and
the history reads as clean windows of "fault active" that reports can draw.

Faults are drawn in rounds: every requested fault once, in an order shuffled by the seed,
then a new shuffled round. A plain random choice per start could leave a requested fault
out of a short run, and the vacuous-run check would then call the run unknown for no fault
of the system; with rounds, a run long enough for n windows exercises all n faults.

`mode="combined"` is Jepsen's combined nemesis (jepsen.nemesis.combined composes one generator
per package): faults of *different* packages overlap. Each window starts one fault of every
package asked for (each package drawing its own rounds), and the window's end stops all of
them, in heal order (network first, then clocks, pauses, kills), so a restarted node finds the
network whole. Faults of one package never overlap: a second partition shape would replace
the first one's rules, not add to them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from dsjepsen.errors import ConfigError
from dsjepsen.nemesis.base import FaultPackage
from dsjepsen.nemesis.catalog import resolve

MODES = ("classic", "combined")


def required_time(count: int, interval: float, mode: str = "classic") -> float:
    """Seconds of --time-limit that `count` faults need, each for one full window.

    The runner's nemesis loop waits `interval` before every op, so fault i (from 0) starts at
    (2i+1) x interval and stops at (2i+2) x interval: the last one stops at 2 x count x
    interval. Merely starting before the time limit, (2 x count - 1) x interval, is not
    enough: the loop drifts by the time each op takes (a kill waits for pids, a partition for
    iptables on every node), and a fault that starts as the clients stop tests nothing.

    In combined mode every package's fault runs in every window, so one window is enough.
    """
    if mode == "combined":
        return 2 * interval if count else 0.0
    return count * 2 * interval


def check_fits(
    names: str | Sequence[str] | Mapping[str, FaultPackage],
    interval: float,
    time_limit: float,
    mode: str = "classic",
) -> None:
    """ConfigError (one line) when the run is too short for every fault in `names` to run
    once for a full window; the message names the --time-limit and the --nemesis-interval
    that would fit. `names` are read as `check_names` reads them (its errors included):
    repeats count once and "none" asks for nothing, which always fits.
    """
    if mode not in MODES:
        raise ConfigError(f"--nemesis-mode: one of {', '.join(MODES)}, got {mode!r}")
    count = len(resolve(names))
    if count == 0:
        return
    if mode == "combined":
        need = required_time(count, interval, mode)
        if need <= time_limit + 1e-9:
            return
        raise ConfigError(
            f"--nemesis: combined faults need 2 x {interval:g}s = {need:g}s but --time-limit "
            f"is {time_limit:g}s; use --time-limit {math.ceil(need - 1e-9):g} or "
            f"--nemesis-interval {math.floor(time_limit / 2 * 100) / 100:g}"
        )
    need = required_time(count, interval)
    if need <= time_limit + 1e-9:
        return
    fitting = math.floor(time_limit / (2 * count) * 100) / 100
    word = "fault needs" if count == 1 else "faults need"
    advice = f"use --time-limit {math.ceil(need - 1e-9):g}"
    if fitting > 0:
        advice += f" or --nemesis-interval {fitting:g}"
    raise ConfigError(
        f"--nemesis: {count} {word} {count} x 2 x {interval:g}s = {need:g}s "
        f"but --time-limit is {time_limit:g}s; {advice}"
    )


class FaultSchedule:
    """`next_op()` yields (f, value) for the nemesis process: the start of the next fault of
    the current round, then its stop, and so on; None when no fault was asked for.

    The ops come from each fault's package (`start_op` / `stop_op`), so a plugin's faults are
    scheduled like the built-in ones. The same rng gives the same sequence. The windows in
    `skip` (1-based) are drawn as usual but neither started nor stopped: their ticks pass with
    no op, so every other window keeps its fault and its time.
    """

    def __init__(
        self,
        names: str | Sequence[str] | Mapping[str, FaultPackage],
        interval: float,
        rng: random.Random,
        mode: str = "classic",
        skip: Sequence[int] = (),
    ):
        if mode not in MODES:
            raise ConfigError(f"--nemesis-mode: one of {', '.join(MODES)}, got {mode!r}")
        self.packages = resolve(names)
        self.names = list(self.packages)
        self.interval = float(interval)
        self.rng = rng
        self.mode = mode
        self.active: str | None = None  # the fault whose stop comes next
        self._round: list[str] = []  # faults of this round not started yet, next one last
        # combined: the faults of each package (by family, in the order asked), its own rounds,
        # and the faults started in the current window
        self.groups: dict[str, list[str]] = {}
        for name in self.names:
            self.groups.setdefault(self.packages[name].family, []).append(name)
        self._rounds: dict[str, list[str]] = {family: [] for family in self.groups}
        self.active_set: list[str] = []
        self.skip = frozenset(skip)
        self.window = 0  # windows drawn so far
        self._skipping = False  # the window drawn last is left out: its stop is no op either

    @property
    def enabled(self) -> bool:
        return bool(self.names)

    def _draw(self) -> str:
        if not self._round:
            self._round = list(self.names)
            self.rng.shuffle(self._round)
            self._round.reverse()  # pop() from the end takes them in shuffled order
        return self._round.pop()

    def _draw_from(self, family: str) -> str:
        pending = self._rounds[family]
        if not pending:
            pending.extend(self.groups[family])
            self.rng.shuffle(pending)
            pending.reverse()
        return pending.pop()

    def _heal_sorted(self, faults: list[str]) -> list[str]:
        """Lowest heal order first; ties in the order the faults were started."""
        return sorted(faults, key=lambda f: (self.packages[f].heal_order, faults.index(f)))

    def next_ops(self) -> list[tuple[str, dict[str, Any]]]:
        """The ops of the next tick: classic, the one op of `next_op`; combined, the start
        of one fault of every package (in an order shuffled by the seed), or, when a window
        is open, the stops of all of them in heal order. [] when no fault was asked for, or
        at the start and the stop of a window left out (`skip`)."""
        if self._skipping:
            self._skipping = False
            self.active, self.active_set = None, []
            return []
        opening = self.active is None and not self.active_set
        ops = self._next_ops()
        if opening and ops:
            self.window += 1
            if self.window in self.skip:
                self._skipping = True
                return []
        return ops

    def _next_ops(self) -> list[tuple[str, dict[str, Any]]]:
        if self.mode != "combined":
            op = self.next_op()
            return [] if op is None else [op]
        if not self.names:
            return []
        if self.active_set:
            return self.stop_ops()
        starts = [self._draw_from(family) for family in self.groups]
        self.rng.shuffle(starts)
        self.active_set = starts
        return [self.packages[f].start_op(f) for f in starts]

    def stop_ops(self) -> list[tuple[str, dict[str, Any]]]:
        """The ops that end every active fault, in heal order (the runner's final heal)."""
        if self._skipping:
            self._skipping = False
            self.active, self.active_set = None, []
            return []
        if self.mode != "combined":
            op = self.stop_op()
            return [] if op is None else [op]
        faults, self.active_set = self._heal_sorted(self.active_set), []
        return [self.packages[f].stop_op(f) for f in faults]

    def next_op(self) -> tuple[str, dict[str, Any]] | None:
        if not self.names:
            return None
        if self.active is None:
            fault = self._draw()
            self.active = fault
            return self.packages[fault].start_op(fault)
        fault, self.active = self.active, None
        return self.packages[fault].stop_op(fault)

    def stop_op(self) -> tuple[str, dict[str, Any]] | None:
        """The op that ends the active fault (for the runner's final heal), if one is active."""
        if self.active is None:
            return None
        fault, self.active = self.active, None
        return self.packages[fault].stop_op(fault)
