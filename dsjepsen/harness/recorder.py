"""The one place ops enter the history while a test runs.

A single lock gives every op its index and its time (ns since the test started, monotonic)
and writes it through HistoryWriter (flushed per op) before anyone else can record, so index
order, time order and file order are the same thing, and a killed harness leaves a readable
history. It also keeps the live counts the progress line shows. It keeps no op in memory: an
hour at 1,000 ops/s is millions of them, and the controller's memory must stay flat; what a
workload's final phase needs of the history so far is read back from the file (`ops`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import overload

from dsjepsen.errors import HarnessError
from dsjepsen.files import write_error
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.history import HistoryWriter, Op


class Recorder:
    def __init__(self, path: str | Path, start_ns: int | None = None):
        self.path = Path(path)
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self.lock = threading.RLock()
        self._writer: HistoryWriter | None = HistoryWriter(self.path)
        self._written = 0  # ops written so far: the next op's index
        self.counts: Counter[str] = Counter()  # ok / fail / info of client ops
        self.dropped = 0
        #: why the history could not be written any more (the store's disk is full): the run
        #: stops, heals and ends unknown; set once, with `failed`
        self.failure: HarnessError | None = None
        self.failed = threading.Event()

    def elapsed(self) -> float:
        return (time.monotonic_ns() - self.start_ns) / 1e9

    def record(self, op: Op) -> Op:
        """Stamp op with the next index and the current time, write it, return the stamped op.

        After close() ops are counted in `dropped` and not written: only a worker abandoned
        by the runner (stuck past its deadline) can still complete then.
        """
        with self.lock:
            stamped = replace(op, index=self._written, time=time.monotonic_ns() - self.start_ns)
            if self._writer is None:
                self.dropped += 1
                return stamped
            try:
                self._writer.write(stamped)
            except OSError as e:
                # Nothing more can be recorded: keep what was written (a cut last line is
                # dropped by the reader), stop writing, and let the runner end the run.
                self.failure = write_error(self.path, e)
                self.failed.set()
                with contextlib.suppress(OSError):
                    self._writer.close()
                self._writer = None
                self.dropped += 1
                return stamped
            self._written += 1
            if stamped.is_client and stamped.type != "invoke":
                self.counts[stamped.type] += 1
            return stamped

    @property
    def next_index(self) -> int:
        with self.lock:
            return self._written

    @property
    def ops(self) -> Sequence[Op]:
        """Every op recorded so far, read back from the history file when first looked at
        (each line was flushed as it was written)."""
        return WrittenHistory(self)

    def read_back(self) -> list[Op]:
        with self.lock:
            return list(read_jsonl(self.path).ops) if self._written else []

    def close(self) -> None:
        with self.lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


class WrittenHistory(Sequence[Op]):
    """The ops a recorder had written when this was first read: the file is read once, on the
    first len() / index / iteration (the final phase of a kafka run asks; most runs never do)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._ops: list[Op] | None = None

    def _load(self) -> list[Op]:
        if self._ops is None:
            self._ops = self._recorder.read_back()
        return self._ops

    def __len__(self) -> int:
        return len(self._load())

    @overload
    def __getitem__(self, i: int) -> Op: ...
    @overload
    def __getitem__(self, i: slice) -> list[Op]: ...
    def __getitem__(self, i: int | slice) -> Op | list[Op]:
        return self._load()[i]
