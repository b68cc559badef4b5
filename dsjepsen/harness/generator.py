"""Pacing shared by all client workers: one token schedule for the whole test.

Jepsen limits the rate of the whole test, not of each worker, so that adding workers adds
concurrency (more overlapping ops, more interesting histories) without adding load. Here every
worker reserves the next slot of one schedule under a lock and sleeps until it; when workers fall
behind (slow ops), the schedule restarts from now instead of bursting to catch up, because a
burst after a fault heals would be load the user did not ask for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Hands out start times `1/rate` seconds apart across all callers; rate 0 = unlimited."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def reserve(self) -> float:
        """Reserve the next slot; returns its time on `clock`."""
        with self._lock:
            now = self._clock()
            slot = max(self._next, now)
            self._next = slot + self.interval
            return slot

    def wait(self, stop: threading.Event) -> bool:
        """Sleep until this caller's slot. False when `stop` was set meanwhile."""
        if self.interval == 0:
            return not stop.is_set()
        delay = self.reserve() - self._clock()
        if delay > 0:
            return not stop.wait(delay)
        return not stop.is_set()
