"""The runner: one test, from healing leftovers to results.json.

Order of a run, and why:
1. heal first: a crashed earlier run may have left partitions or paused processes behind;
2. set the target up, then start one worker thread per client process (each bound to one node,
   round robin) and a nemesis thread driving the fault schedule;
3. at the time limit stop the clients, stop the fault in progress, heal everything, wait until
   the target serves again, and read every key through every node (recorded as normal ops, so
   a lost write shows up as a linearizability violation);
4. collect node logs, tear down (unless --leave-running), check, write results.json.
Heal and teardown also run on exceptions, Ctrl-C and SIGTERM; the history is flushed per op,
so whatever was recorded survives. Jepsen's process rule is kept: after an `info` the worker
continues under a new process id (old id + number of workers).
"""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dsjepsen import __version__
from dsjepsen.checkers.result import CheckResult, Validity, compose
from dsjepsen.errors import EXIT_INVALID, EXIT_UNKNOWN, EXIT_VALID, DsjError, HarnessError
from dsjepsen.harness import registry
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.harness.config import TestConfig
from dsjepsen.cluster.daemon import fetch_files
from dsjepsen.harness.generator import RateLimiter
from dsjepsen.harness.progress import Progress
from dsjepsen.harness.recorder import Recorder
from dsjepsen.harness.store import RunDir, create_run_dir, iso_now
from dsjepsen.history import NEMESIS, History, Op, read_jsonl
from dsjepsen.workloads.base import OpSpec, Workload

log = logging.getLogger("dsjepsen.runner")

#: how long a stopping worker may take to finish the op it has in flight
WORKER_JOIN_TIMEOUT = 30.0
#: how long the nemesis thread may take to finish a fault op in flight
NEMESIS_JOIN_TIMEOUT = 90.0
#: attempts per final read (a fail or info is retried on a fresh process)
FINAL_READ_ATTEMPTS = 5


def exit_code_for(valid: Validity) -> int:
    if valid is True:
        return EXIT_VALID
    if valid is False:
        return EXIT_INVALID
    return EXIT_UNKNOWN


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


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
    """Test seams: callables run at fixed points (they see the runner)."""

    after_setup: list[Callable[[Runner], None]] = field(default_factory=list)


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
        self.node_names = cluster.names
        self.clients = config.clients_for(len(self.node_names))
        self.stop_clients = threading.Event()
        self.stop_nemesis = threading.Event()
        self.workers: list[_Worker] = []
        self.nemesis: Any = None
        self.schedule: Any = None
        self.nemesis_thread: threading.Thread | None = None
        self.active_fault: str | None = None
        self._last_nemesis_f: str | None = None
        self._nemesis_lock = threading.Lock()
        self.recorder: Recorder | None = None
        self.run_dir: RunDir | None = None
        self.workload: Workload | None = None
        self.progress: Progress | None = None
        self.final_start_index: int | None = None
        self._next_process = 0
        self._process_lock = threading.Lock()
        self._log_handler: logging.Handler | None = None
        self._setup_done = False
        self._healed = True
        self._torn_down = False

    # -----------------------------------------------------------------------------------------
    # the whole run

    def run(self) -> RunOutcome:
        cfg = self.config
        self.run_dir = run_dir = create_run_dir(cfg.store, cfg.test_name)
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
            clients=self.clients,
            versions={"dsjepsen": __version__, "target": None},
            start_time=iso_now(),
            end_time=None,
        )
        self.recorder = Recorder(run_dir.history_path)
        interrupted = False
        error: BaseException | None = None
        with _sigterm_raises_interrupt():
            try:
                self._main()
            except KeyboardInterrupt:
                interrupted = True
                log.warning("interrupted: stopping clients, healing faults, tearing down")
            except BaseException as e:  # noqa: BLE001 - cleanup first, report after
                error = e
                log.error("run failed: %s", _describe(e))
                log.debug("%s", traceback.format_exc())
            finally:
                with _signals_deferred():
                    self._cleanup()
        try:
            outcome = self._conclude(interrupted, error)
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
            self._detach_log()
        if interrupted:
            raise KeyboardInterrupt
        if error is not None:
            if isinstance(error, DsjError):
                raise error
            raise HarnessError(f"{_describe(error)} (run directory {run_dir.path})") from error
        return outcome

    def _main(self) -> None:
        cfg = self.config
        assert self.recorder is not None and self.run_dir is not None
        if self.target is None:
            spec = registry.target_spec(cfg.target)
            self.target = spec.build(
                bugs=cfg.bugs, serializable_reads=cfg.serializable_reads, config=cfg
            )
        self.workload = registry.load(registry.workload_spec(cfg.workload).path).from_config(cfg)
        if cfg.nemesis:
            from dsjepsen.nemesis.catalog import build_nemesis
            from dsjepsen.nemesis.schedule import FaultSchedule

            self.nemesis = build_nemesis(
                list(cfg.nemesis), self.target, random.Random(f"{cfg.seed}:nemesis")
            )
            self.schedule = FaultSchedule(
                list(cfg.nemesis), cfg.nemesis_interval, random.Random(f"{cfg.seed}:schedule")
            )
        log.info(
            "test %s: seed %d, %d nodes (%s), %d clients, %gs, nemesis %s",
            cfg.test_name,
            cfg.seed,
            len(self.node_names),
            ", ".join(self.node_names),
            self.clients,
            cfg.time_limit,
            ",".join(cfg.nemesis) or "none",
        )
        self._heal("before setup")
        log.info("setting up %s on %s", cfg.target, ", ".join(self.node_names))
        self._setup_done = True  # from here on, teardown is owed even if setup fails half-way
        self.target.setup(self.cluster)
        self.run_dir.update_test(
            versions={"dsjepsen": __version__, "target": getattr(self.target, "version", None)}
        )
        for hook in self.hooks.after_setup:
            hook(self)

        # the test proper: the clock of the history starts now
        self.recorder.start_ns = time.monotonic_ns()
        limiter = RateLimiter(cfg.rate)
        for i in range(self.clients):
            node = self.node_names[i % len(self.node_names)]
            self.workers.append(_Worker(self, i, node, limiter))
        self._next_process = self.clients
        self.progress = Progress(
            self.recorder,
            cfg.time_limit,
            lambda: self.active_fault,
            stream=self.progress_stream,
        )
        self.progress.start()
        for w in self.workers:
            w.start()
        if self.nemesis is not None:
            self.nemesis_thread = threading.Thread(
                target=self._nemesis_loop, name="nemesis", daemon=True
            )
            self.nemesis_thread.start()
        deadline = time.monotonic() + cfg.time_limit
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
        log.info("time limit reached: stopping clients")
        self.progress.phase = "stopping"
        self._stop_workers()
        self._stop_nemesis()
        self._heal("after the test")
        self.progress.phase = "recovering"
        self._wait_for_recovery()
        self.progress.phase = "final reads"
        self._final_reads()
        self.progress.stop()

    # -----------------------------------------------------------------------------------------
    # clients

    def new_process(self) -> int:
        with self._process_lock:
            p = self._next_process
            self._next_process += 1
            return p

    def invoke(self, client: Any, spec: OpSpec, process: int, node: str) -> Op:
        """Record the invocation, perform it, record the completion; returns the completion."""
        assert self.recorder is not None
        inv = self.recorder.record(
            Op(0, 0, process, "invoke", spec.f, spec.value, key=spec.key, node=node)
        )
        return self.complete(client, inv)

    def complete(self, client: Any, inv: Op) -> Op:
        assert self.recorder is not None
        try:
            res = client.invoke(inv)
            if not isinstance(res, Op) or res.type not in ("ok", "fail", "info"):
                raise HarnessError(f"client returned {res!r}, not an ok/fail/info completion")
            typ, value, err = res.type, res.value, res.error
        except Exception as e:  # noqa: BLE001 - whatever happened, the op may have taken effect
            typ, value, err = "info", inv.value, _describe(e)
        return self.recorder.record(
            Op(0, 0, inv.process, typ, inv.f, value, key=inv.key, node=inv.node, error=err)
        )

    def limiter_wait(self, limiter: RateLimiter) -> bool:
        return limiter.wait(self.stop_clients)

    def _stop_workers(self) -> None:
        self.stop_clients.set()
        deadline = time.monotonic() + WORKER_JOIN_TIMEOUT
        for w in self.workers:
            w.join(timeout=max(0.1, deadline - time.monotonic()))
        stuck = [w.name for w in self.workers if w.is_alive()]
        if stuck:
            log.warning("clients still blocked after %gs: %s", WORKER_JOIN_TIMEOUT, stuck)

    # -----------------------------------------------------------------------------------------
    # nemesis

    def _nemesis_loop(self) -> None:
        assert self.schedule is not None
        while not self.stop_nemesis.wait(self.config.nemesis_interval):
            try:
                op = self.schedule.next_op()
                if op is None:
                    return
                self._nemesis_op(*op)
            except Exception as e:  # noqa: BLE001 - the schedule itself broke: stop faulting
                log.error("nemesis schedule failed, no more faults: %s", _describe(e))
                return

    def _nemesis_op(self, f: str, value: Any) -> Op:
        assert self.recorder is not None
        with self._nemesis_lock:
            inv = self.recorder.record(Op(0, 0, NEMESIS, "invoke", f, value))
            self._last_nemesis_f = f
            self._healed = False
            try:
                res = self.nemesis.invoke(self.cluster, inv)
                typ, out, err = res.type, res.value, res.error
            except Exception as e:  # noqa: BLE001 - a fault half-applied is still possible
                typ, out, err = "info", value, _describe(e)
                log.warning("nemesis %s failed: %s", f, err)
            comp = self.recorder.record(Op(0, 0, NEMESIS, typ, f, out, error=err))
            what = out.get("description") if isinstance(out, dict) else None
            fault = out.get("fault") if isinstance(out, dict) else None
            if f.startswith("start"):
                self.active_fault = (fault or f.removeprefix("start-")) if typ != "fail" else None
            else:
                self.active_fault = None
            log.info("nemesis %s %s: %s", f, typ, what or err or out)
            return comp

    def _stop_nemesis(self) -> None:
        """Stop the schedule; end the fault in progress with its own stop op (recorded)."""
        self.stop_nemesis.set()
        t = self.nemesis_thread
        if t is not None:
            t.join(timeout=NEMESIS_JOIN_TIMEOUT)
            if t.is_alive():
                log.warning("nemesis op still running after %gs", NEMESIS_JOIN_TIMEOUT)
                return
        if self.schedule is not None and (self._last_nemesis_f or "").startswith("start"):
            try:
                op = self.schedule.stop_op()
                if op is not None:
                    self._nemesis_op(*op)
            except Exception as e:  # noqa: BLE001 - heal() below undoes it anyway
                log.warning("could not stop the last fault cleanly: %s", _describe(e))

    def _heal(self, when: str) -> None:
        """Undo every fault: the nemesis's own heal, and on the local cluster the cluster's."""
        problems: list[str] = []
        if self.nemesis is not None:
            try:
                self.nemesis.heal(self.cluster)
            except Exception as e:  # noqa: BLE001 - try every healer, report all
                problems.append(f"nemesis heal: {_describe(e)}")
        if self.cluster.kind == "local":
            try:
                from dsjepsen.cluster import localnet

                localnet.heal(self.cluster.name)
            except Exception as e:  # noqa: BLE001
                problems.append(f"local cluster heal: {_describe(e)}")
        if problems and when != "before setup":
            log.warning("healing %s: %s", when, "; ".join(problems))
        elif problems:
            log.debug("healing %s: %s", when, "; ".join(problems))
        else:
            log.info("healed all faults %s", when)
        self._healed = not problems or when == "before setup"

    # -----------------------------------------------------------------------------------------
    # the end of a run

    def _wait_for_recovery(self) -> None:
        """Quiet period: give the target time to elect a leader again (bounded)."""
        cfg = self.config
        from dsjepsen.targets.base import Target

        has_leader = type(self.target).leader is not Target.leader
        if not has_leader:
            log.info("target reports no leader: waiting 1s before the final reads")
            time.sleep(min(1.0, cfg.recovery_timeout))
            return
        deadline = time.monotonic() + cfg.recovery_timeout
        while True:
            try:
                leader = self.target.leader(self.cluster)
            except Exception as e:  # noqa: BLE001
                leader = None
                log.debug("leader(): %s", _describe(e))
            if leader:
                log.info("recovered: %s is leader", leader)
                return
            if time.monotonic() >= deadline:
                log.warning("no leader within %gs of healing", cfg.recovery_timeout)
                return
            time.sleep(0.5)

    def _final_reads(self) -> None:
        """Read every key through every node, recorded as ordinary ops (retried on fail)."""
        assert self.workload is not None and self.recorder is not None
        specs = self.workload.final_ops()
        self.final_start_index = self.recorder.next_index
        with self._process_lock:  # fresh ids above every id a worker has had
            used = [w.process for w in self.workers]
            self._next_process = max([self._next_process - 1, *used]) + 1
        if not specs:
            return
        log.info("final reads: %d ops through each of %d nodes", len(specs), len(self.node_names))
        deadline = time.monotonic() + max(30.0, self.config.recovery_timeout) + 0.05 * len(specs)
        threads = [
            threading.Thread(target=self._final_reads_on, args=(node, specs, deadline), daemon=True)
            for node in self.node_names
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.1, deadline + 15 - time.monotonic()))

    def _final_reads_on(self, node: str, specs: list[OpSpec], deadline: float) -> None:
        client = None
        process = self.new_process()
        failed_in_a_row = 0
        try:
            for spec in specs:
                if failed_in_a_row >= 2:
                    log.warning("final reads on %s: node does not answer, skipping the rest", node)
                    return
                failed_in_a_row += 1
                for attempt in range(FINAL_READ_ATTEMPTS):
                    if time.monotonic() > deadline:
                        log.warning("final reads on %s: out of time", node)
                        return
                    if client is None:
                        client = self.target.client(self.cluster, node)
                    comp = self.invoke(client, spec, process, node)
                    if comp.type == "ok":
                        failed_in_a_row = 0
                        break
                    if comp.type == "info":
                        process = self.new_process()
                        _close(client)
                        client = None
                    if attempt + 1 < FINAL_READ_ATTEMPTS:
                        time.sleep(0.2 * (attempt + 1))
        except Exception as e:  # noqa: BLE001
            log.warning("final reads on %s stopped: %s", node, _describe(e))
        finally:
            _close(client)

    def _cleanup(self) -> None:
        """Everything owed, whatever happened: stop threads, heal, collect logs, tear down."""
        if self.progress is not None:
            self.progress.stop()
        self._stop_workers()
        with contextlib.suppress(Exception):
            self._stop_nemesis()
        if not self._healed:
            self._heal("at cleanup")
        if self._setup_done:
            self._collect_logs()
            if self.config.leave_running:
                log.info("--leave-running: the target is left running")
            elif not self._torn_down:
                try:
                    log.info("tearing down %s", self.config.target)
                    self.target.teardown(self.cluster)
                except Exception as e:  # noqa: BLE001
                    log.error("teardown failed: %s", _describe(e))
                self._torn_down = True
        if self.recorder is not None:
            self.recorder.close()
            if self.recorder.dropped:
                log.warning(
                    "%d late completions after the end were not recorded", self.recorder.dropped
                )

    def _collect_logs(self) -> None:
        assert self.run_dir is not None
        for node in self.node_names:
            try:
                paths = list(self.target.log_files(self.cluster, node))
                if paths:
                    fetch_files(self.cluster.remote(node), paths, self.run_dir.node_dir(node))
            except Exception as e:  # noqa: BLE001 - logs are nice to have, never fatal
                log.warning("collecting logs of %s: %s", node, _describe(e))

    # -----------------------------------------------------------------------------------------
    # verdict

    def _conclude(self, interrupted: bool, error: BaseException | None) -> RunOutcome:
        assert self.run_dir is not None and self.recorder is not None
        run_dir = self.run_dir
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
                else f"harness error: {_describe(error)}"
                if error is not None
                else "history file unreadable"
            )
            results: dict[str, Any] = {"valid": "unknown", "reason": reason, "checks": {}}
            if history is not None:
                from dsjepsen.checkers.stats import check_stats

                results["stats"] = check_stats(history).details
            results.update(interrupted=interrupted, error=_describe(error) if error else None)
        else:
            results = self.check(history)
        run_dir.write_results(results)
        log.info(
            "verdict: %s%s",
            {True: "valid", False: "invalid"}.get(results["valid"], "unknown"),
            f" ({results['reason']})" if results.get("reason") else "",
        )
        self._render_report()
        valid = results["valid"]
        return RunOutcome(
            run_dir=run_dir.path,
            valid=valid,
            exit_code=exit_code_for(valid),
            results=results,
            interrupted=interrupted,
            error=_describe(error) if error else None,
        )

    def check(self, history: History) -> dict[str, Any]:
        from dsjepsen.checkers.stats import check_stats
        from dsjepsen.checkers.vacuous import check_vacuous

        assert self.workload is not None
        results: list[CheckResult] = []
        try:
            history.validate()
            t0 = time.monotonic()
            results.extend(self.workload.check(history, self.config.check_time_limit))
            log.info("workload checks took %.2fs", time.monotonic() - t0)
        except Exception as e:  # noqa: BLE001 - a broken checker is unknown, never a pass
            log.error("checker failed: %s", _describe(e))
            log.debug("%s", traceback.format_exc())
            results.append(
                CheckResult("linearizable", "unknown", reason=f"checker failed: {_describe(e)}")
            )
        stats = check_stats(history)
        results.append(stats)
        results.append(
            check_vacuous(
                history,
                required_ok=self.workload.required_ok,
                faults=self.config.nemesis,
                before_index=self.final_start_index,
            )
        )
        composed = compose("dsjepsen", results)
        return {
            "valid": composed.valid,
            "reason": composed.reason,
            "checks": {r.checker: r.to_dict() for r in results},
            "stats": stats.details,
            "final_reads_from_index": self.final_start_index,
        }

    def _render_report(self) -> None:
        assert self.run_dir is not None
        # imported here: pandas and jinja2 are only needed once the run is over
        from dsjepsen.reports.html import render_run_report

        try:
            out = render_run_report(self.run_dir.path)
            log.info("report: %s", out or self.run_dir.path / "report.html")
        except Exception as e:  # noqa: BLE001 - a report failure never changes the verdict
            log.error("report rendering failed (the verdict stands): %s", _describe(e))
            log.debug("%s", traceback.format_exc())

    # -----------------------------------------------------------------------------------------
    # logging to the run directory

    def _attach_log(self, path: Path) -> None:
        handler = logging.FileHandler(path, encoding="utf-8")
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


class _Worker(threading.Thread):
    """One client process bound to one node; continues under a new id after an info."""

    def __init__(self, runner: Runner, index: int, node: str, limiter: RateLimiter):
        super().__init__(name=f"client-{index}", daemon=True)
        self.runner = runner
        self.process = index
        self.node = node
        self.limiter = limiter

    def run(self) -> None:
        r = self.runner
        assert r.recorder is not None and r.workload is not None
        client = None
        try:
            while r.limiter_wait(self.limiter):
                if client is None:
                    try:
                        client = r.target.client(r.cluster, self.node)
                    except Exception as e:  # noqa: BLE001 - retry after a pause
                        log.warning("client for %s: %s", self.node, _describe(e))
                        if r.stop_clients.wait(1.0):
                            break
                        continue
                with r.recorder.lock:  # same seed, same op sequence in the history
                    if r.stop_clients.is_set():
                        break
                    spec = r.workload.next_op()
                    inv = r.recorder.record(
                        Op(0, 0, self.process, "invoke", spec.f, spec.value, spec.key, self.node)
                    )
                comp = r.complete(client, inv)
                if comp.type == "info":
                    self.process += r.clients
                    _close(client)
                    client = None
        except Exception as e:  # noqa: BLE001 - a dead worker is logged, the run goes on
            log.error("worker %s died: %s", self.name, _describe(e))
            log.debug("%s", traceback.format_exc())
        finally:
            _close(client)


def _close(client: Any) -> None:
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


# ---------------------------------------------------------------------------------------------
# signals


@contextlib.contextmanager
def _sigterm_raises_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C (heal, tear down, keep the history)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """While cleaning up, Ctrl-C and SIGTERM only say "please wait": every step is bounded,
    and stopping half-way would leave faults behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        log.warning("still healing faults and tearing down; please wait")

    prev_int = signal.signal(signal.SIGINT, handler)
    prev_term = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, prev_int)
        signal.signal(signal.SIGTERM, prev_term)


def run_with_seed_offset(config: TestConfig, i: int) -> TestConfig:
    """Run i of --test-count N uses seed + i, so each run can be reproduced alone."""
    return replace(config, seed=config.seed + i) if i else config
