"""The runner: one test on an opened cluster, from healing leftovers to results.json.

It only sequences the phases (dsjepsen.harness.phases) and guarantees what is owed whatever
happens: heal and teardown also run on exceptions, Ctrl-C and SIGTERM; the history is flushed
per op, so whatever was recorded survives; an interrupted or failed run is `unknown`, never a
pass. Rendering the report is the caller's job (`dsjepsen test` does it).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsjepsen import __version__, plugins
from dsjepsen.checkers.base import CheckContext
from dsjepsen.checkers.result import Validity
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, DsjError, HarnessError
from dsjepsen.files import write_error
from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness import phases
from dsjepsen.harness.config import TestConfig
from dsjepsen.harness.interpreter import describe
from dsjepsen.harness.phases import RunContext
from dsjepsen.harness.recorder import Recorder
from dsjepsen.harness.store import create_run_dir, iso_now
from dsjepsen.history import History, printable
from dsjepsen.nemesis.catalog import fault_looks

log = logging.getLogger("dsjepsen.runner")


def exit_code_for(valid: Validity) -> int:
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


@dataclass
class RunOutcome:
    run_dir: Path
    valid: Validity
    exit_code: int
    results: dict[str, Any]
    interrupted: bool = False
    error: str | None = None


@dataclass
class _Hooks:
    """Test seams: callables run at fixed points (they see the run context)."""

    after_setup: list[Callable[[RunContext], None]] = field(default_factory=list)


class Runner:
    """Runs one test on an opened cluster. Use `run()` once."""

    def __init__(
        self,
        config: TestConfig,
        cluster: Cluster,
        *,
        target: Any = None,
        progress_stream: Any = None,
        hooks: _Hooks | None = None,
    ):
        self.config = config
        self.cluster = cluster
        self.target = target
        self.progress_stream = progress_stream
        self.hooks = hooks or _Hooks()
        self.ctx: RunContext | None = None
        self._log_handler: logging.Handler | None = None

    def run(self) -> RunOutcome:
        cfg = self.config
        run_dir = create_run_dir(cfg.store, cfg.test_name)
        self._attach_log(run_dir.log_path)
        log.info("run directory %s", run_dir.path)
        run_dir.update_test(
            name=cfg.test_name,
            argv=cfg.reproduce_argv(),
            invoked_argv=list(cfg.argv),
            options=cfg.to_dict(),
            seed=cfg.seed,
            nodes=[
                {"name": n.name, "address": n.address, "workdir": n.workdir}
                for n in self.cluster.nodes
            ],
            cluster={"kind": self.cluster.kind, "name": self.cluster.name},
            clients=cfg.clients_for(len(self.cluster.names)),
            # how the report draws and explains this run's faults (their packages' looks)
            fault_looks=fault_looks(cfg.fault_packages.values()),
            versions={"dsjepsen": __version__, "target": None},
            start_time=iso_now(),
            end_time=None,
        )
        self.ctx = ctx = RunContext(
            cfg,
            self.cluster,
            run_dir,
            Recorder(run_dir.history_path),
            target=self.target,
            progress_stream=self.progress_stream,
        )
        interrupted = False
        error: BaseException | None = None
        with _signals_raise_interrupt():
            try:
                self._main(ctx)
            except KeyboardInterrupt:
                interrupted = True
                log.warning("interrupted: stopping clients, healing faults, tearing down")
            except BaseException as e:  # noqa: BLE001 - cleanup first, report after
                error = e
                log.error("run failed: %s", describe(e))
                log.debug("%s", traceback.format_exc())
            finally:
                with _signals_deferred() as deferred:
                    self._cleanup(ctx)
                if deferred and not interrupted:
                    # Ctrl-C or SIGTERM while healing: cleanup went on, the user still asked
                    # to stop (no further runs of --test-count; exit 130)
                    interrupted = True
        if error is None and ctx.recorder.failure is not None:
            error = ctx.recorder.failure  # the history stopped being written part-way
        try:
            outcome = self._conclude(ctx, interrupted, error)
        except KeyboardInterrupt:
            # interrupted while checking: everything is healed and recorded; say so and stop
            run_dir.write_results(
                {
                    "valid": "unknown",
                    "reason": "interrupted while checking; re-check with dsjepsen check",
                    "checks": {},
                    "interrupted": True,
                }
            )
            raise
        finally:
            run_dir.release_reserve()
            self._detach_log()
        if interrupted:
            raise KeyboardInterrupt
        if error is not None:
            if isinstance(error, DsjError):
                raise error
            raise HarnessError(f"{describe(error)} (run directory {run_dir.path})") from error
        return outcome

    def _main(self, ctx: RunContext) -> None:
        cfg = self.config
        phases.build(ctx)
        self.target = ctx.target
        log.info(
            "test %s: seed %d, %d nodes (%s), %d clients, %gs, nemesis %s",
            cfg.test_name, cfg.seed, len(self.cluster.names), ", ".join(self.cluster.names),
            ctx.clients, cfg.time_limit, ",".join(cfg.nemesis) or "none",
        )  # fmt: skip
        phases.heal(ctx, "before setup")
        phases.setup(ctx)
        ctx.run_dir.update_test(
            versions={"dsjepsen": __version__, "target": getattr(ctx.target, "version", None)}
        )
        for hook in self.hooks.after_setup:
            hook(ctx)
        phases.run_clients(ctx)
        phases.heal(ctx, "after the test")
        assert ctx.progress is not None
        ctx.progress.phase = "recovering"
        phases.recover(ctx)
        ctx.progress.phase = "final reads"
        phases.final_reads(ctx)
        ctx.progress.stop()

    def _cleanup(self, ctx: RunContext) -> None:
        """Everything owed, whatever happened: stop threads, heal, collect logs, tear down."""
        if ctx.progress is not None:
            ctx.progress.stop()
        with contextlib.suppress(Exception):
            phases.stop_workers(ctx)
        if not ctx.healed:
            phases.heal(ctx, "at cleanup")
        if ctx.setup_done:
            phases.collect_logs(ctx)
            phases.teardown(ctx)
        ctx.recorder.close()
        if ctx.recorder.dropped:
            log.warning("%d late completions after the end were not recorded", ctx.recorder.dropped)

    def _conclude(
        self, ctx: RunContext, interrupted: bool, error: BaseException | None
    ) -> RunOutcome:
        run_dir = ctx.run_dir
        run_dir.update_test(end_time=iso_now())
        history: History | None = None
        try:
            history = read_jsonl(run_dir.history_path)
        except DsjError as e:
            log.error("history unreadable: %s", e)
        if interrupted or error is not None or history is None:
            reason = (
                "interrupted before the end: the history is partial and was not checked"
                if interrupted
                else f"harness error: {describe(error)}"
                if error is not None
                else "history file unreadable"
            )
            results: dict[str, Any] = {"valid": "unknown", "reason": reason, "checks": {}}
            if history is not None:
                stats = plugins.get("checkers", "stats")()
                results["stats"] = stats.check(history, CheckContext()).details
            results.update(interrupted=interrupted, error=describe(error) if error else None)
        else:
            results = phases.check(ctx, history)
        run_dir.write_results(results)
        log.info(
            "verdict: %s%s",
            {True: "valid", False: "invalid"}.get(results["valid"], "unknown"),
            f" ({results['reason']})" if results.get("reason") else "",
        )
        valid = results["valid"]
        return RunOutcome(
            run_dir=run_dir.path,
            valid=valid,
            exit_code=exit_code_for(valid),
            results=results,
            interrupted=interrupted,
            error=describe(error) if error else None,
        )

    def _attach_log(self, path: Path) -> None:
        handler = _RunLogHandler(path, encoding="utf-8")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root = logging.getLogger("dsjepsen")
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.DEBUG:
            root.setLevel(logging.DEBUG)
        self._log_handler = handler

    def _detach_log(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("dsjepsen").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


class _RunLogHandler(logging.FileHandler):
    """dsjepsen.log. When it cannot be written (the store's disk is full) it says so once on
    stderr and stops, instead of logging's own traceback for every record after that."""

    failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.failed:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        if not self.failed:
            self.failed = True
            line = write_error(Path(self.baseFilename), error)
            sys.stderr.write(printable(f"dsjepsen: {line}; the run log stops here") + "\n")


@contextlib.contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C (heal, tear down, keep the history). SIGINT is set too:
    a process started in the background by a non-interactive shell inherits SIGINT ignored,
    and Python then installs no Ctrl-C handler of its own, so an explicit `kill -INT` would
    be ignored and the run would go on to its time limit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    previous_int = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[int]]:
    """While cleaning up, Ctrl-C and SIGTERM only say "please wait": every step is bounded,
    and stopping half-way would leave faults behind. The signals are remembered (the list
    yielded holds them), so the run still ends as interrupted once cleanup is done."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        log.warning("still healing faults and tearing down; please wait")

    prev_int = signal.signal(signal.SIGINT, handler)
    prev_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, prev_int)
        signal.signal(signal.SIGTERM, prev_term)


def run_with_seed_offset(config: TestConfig, i: int) -> TestConfig:
    """Run i of --test-count N uses seed + i, so each run can be reproduced alone."""
    return replace(config, seed=config.seed + i) if i else config
