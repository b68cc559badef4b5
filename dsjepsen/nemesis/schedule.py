"""When faults start and stop: a seeded alternation of start and stop ops.

Jepsen's classic schedule: sleep an interval, start a fault, sleep, stop it, repeat. Only one
fault is active at a time, so every stop undoes exactly the fault that its start began, and
the history reads as clean windows of "fault active" that reports can draw.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from dsjepsen.nemesis.catalog import FAMILY, check_names


class FaultSchedule:
    """`next_op()` yields (f, value) for the nemesis process: start of a fault drawn by the
    rng from `names`, then its stop, and so on; None when no fault was asked for."""

    def __init__(self, names: Sequence[str], interval: float, rng: random.Random):
        self.names = check_names(names)
        self.interval = float(interval)
        self.rng = rng
        self.active: str | None = None  # the fault whose stop comes next

    @property
    def enabled(self) -> bool:
        return bool(self.names)

    def next_op(self) -> tuple[str, dict[str, Any]] | None:
        if not self.names:
            return None
        if self.active is None:
            fault = self.rng.choice(self.names)
            self.active = fault
            return f"start-{FAMILY[fault]}", {"fault": fault}
        fault, self.active = self.active, None
        return f"stop-{FAMILY[fault]}", {"fault": fault}

    def stop_op(self) -> tuple[str, dict[str, Any]] | None:
        """The op that ends the active fault (for the runner's final heal), if one is active."""
        if self.active is None:
            return None
        fault, self.active = self.active, None
        return f"stop-{FAMILY[fault]}", {"fault": fault}
