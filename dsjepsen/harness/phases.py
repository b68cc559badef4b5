"""The phases of a run, as small functions over one RunContext.

setup -> run -> heal -> recover -> final reads -> collect logs -> teardown -> check.

Why in this order: heal first (a crashed earlier run may have left partitions or paused
processes behind); at the time limit stop the clients, end the fault in progress, heal
everything and give the target time to recover before reading every key through every node
(recorded as ordinary ops, so a lost write shows up in the checkers); collect logs and tear down
whatever happened; check last, from the history file alone.

A testing aid, not an option: with DSJEPSEN_TEST_HOLD=<phase>:<seconds> in the environment the
heal after the test, the final reads or the check waits that long at its start, after logging
so (see `hold`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from dsjepsen import plugins
from dsjepsen.checkers.base import CheckContext, Checker, run_checkers
from dsjepsen.checkers.minimize import attach_minimal_core
from dsjepsen.checkers.slo import SloChecker
from dsjepsen.cluster.cluster import Cluster
from dsjepsen.cluster.daemon import fetch_files
from dsjepsen.errors import HarnessError
from dsjepsen.harness.config import TestConfig
from dsjepsen.harness.generator import RateLimiter
from dsjepsen.harness.interpreter import Interpreter, describe
from dsjepsen.harness.progress import Progress
from dsjepsen.harness.recorder import Recorder
from dsjepsen.harness.store import RunDir, iso_now
from dsjepsen.harness.workers import ClientWorker, NemesisWorker, close_client
from dsjepsen.history import History
from dsjepsen.nemesis import catalog
from dsjepsen.nemesis.schedule import FaultSchedule
from dsjepsen.options import kwargs
from dsjepsen.workloads.base import OpSpec, Workload

log = logging.getLogger("dsjepsen.runner")

#: how long a stopping worker may take to finish the op it has in flight
WORKER_JOIN_TIMEOUT = 30.0
#: attempts per final read (a fail or info is retried on a fresh process)
FINAL_READ_ATTEMPTS = 5
#: rounds in a row in which every node must answer the same for a converging workload
AGREEING_ROUNDS = 3
#: seconds between a workload's final follow-up batches (Maelstrom's final polls: 0.2 s)
FOLLOWUP_PAUSE = 0.05
#: A long run leaves many keys (ten minutes at 1,000 ops/s: about 9,500), and one client per
#: node read them one after another in 41 s, most of the time from the run's end to its
#: verdict. Past FINAL_READS_PER_READER keys a node's final reads are shared by up to
#: FINAL_READERS clients, each with its own process id. A workload with follow-ups (Kafka's
#: polls until a node has returned every offset) keeps one client per node: its follow-ups
#: are computed from everything that one client has read.
FINAL_READERS = 4
FINAL_READS_PER_READER = 250
#: the testing aid's variable: `<phase>:<seconds>` (see `hold`)
HOLD_ENV = "DSJEPSEN_TEST_HOLD"


@dataclass
class RunContext:
    """Everything one run holds; each phase reads and updates it."""

    config: TestConfig
    cluster: Cluster
    run_dir: RunDir
    recorder: Recorder
    target: Any = None
    workload: Workload | None = None
    nemesis: Any = None
    schedule: FaultSchedule | None = None
    interpreter: Interpreter = field(init=False)
    clients: int = 0
    stop_clients: threading.Event = field(default_factory=threading.Event)
    workers: list[ClientWorker] = field(default_factory=list)
    nemesis_worker: NemesisWorker | None = None
    progress: Progress | None = None
    progress_stream: Any = None
    final_start_index: int | None = None
    healed_at: int | None = None
    converged: dict[str, Any] | None = None
    setup_done: bool = False
    healed: bool = True
    torn_down: bool = False
    #: what the heal before setup undid that an earlier run had left: [{node, undone}]
    healed_leftovers: list[dict[str, Any]] = field(default_factory=list)
    _next_process: int = 0
    _process_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.interpreter = Interpreter(self.recorder)
        self.clients = self.config.clients_for(len(self.cluster.names))

    def new_process(self) -> int:
        with self._process_lock:
            p = self._next_process
            self._next_process += 1
            return p

    @property
    def active_fault(self) -> str | None:
        return self.nemesis_worker.active if self.nemesis_worker is not None else None


def build(ctx: RunContext) -> None:
    """The target, the workload and the faults the config names, from the registries."""
    cfg = ctx.config
    if ctx.target is None:
        cls = plugins.get("targets", cfg.target)
        ctx.target = cls(**kwargs(cls.options, cfg.target_options))
    wl = plugins.get("workloads", cfg.workload)
    ctx.workload = wl(seed=cfg.seed, **kwargs(wl.options, cfg.workload_options))
    ctx.target.expect_ops(frozenset(ctx.workload.needs))
    if cfg.nemesis:
        rng = random.Random(f"{cfg.seed}:nemesis")
        faults = cfg.fault_packages or list(cfg.nemesis)  # resolved by the config, once
        ctx.nemesis = catalog.build_nemesis(
            faults, ctx.target, rng, cfg.nemesis_options, cluster=ctx.cluster
        )
        ctx.schedule = FaultSchedule(
            faults,
            cfg.nemesis_interval,
            random.Random(f"{cfg.seed}:schedule"),
            mode=cfg.nemesis_mode,
            skip=cfg.nemesis_skip,
        )


def hold(phase: str) -> None:
    """Wait at the start of `phase` when HOLD_ENV names it: a testing aid. Heal, the final
    reads and check take a fraction of a second, too short for a test that kills the controller to land inside them
    by watching the log; with the variable set, the phase logs that it holds and waits, so the
    kill lands in it every time. Unset (always, outside such tests), it does nothing."""
    named, _, seconds = os.environ.get(HOLD_ENV, "").partition(":")
    if named != phase:
        return
    try:
        delay = float(seconds)
        if not 0 <= delay <= 3600:  # also refuses nan
            raise ValueError(seconds)
    except ValueError:
        log.warning("%s ignored: expected %s:<seconds up to 3600>", HOLD_ENV, phase)
        return
    log.warning("%s: holding %s for %gs (a testing aid)", HOLD_ENV, phase, delay)
    time.sleep(delay)


def heal(ctx: RunContext, when: str) -> None:
    """Undo every fault: each fault package's heal, then whatever the cluster itself can find."""
    if when == "after the test":  # the heal phase proper, not the ones around it
        hold("heal")
    problems: list[str] = []
    before = when == "before setup"

    def cluster_heal() -> None:
        undone = undone_by_heal(ctx.cluster.heal_leftovers())
        if before:
            ctx.healed_leftovers = undone
            for entry in undone:
                log.warning("node %s: undid what an earlier run left: %s", entry["node"],
                            "; ".join(entry["undone"]))  # fmt: skip

    healers = [("cluster heal", cluster_heal)]
    if ctx.nemesis is not None:
        # Before setup the cluster's own heal goes first: it records what it finds (a paused
        # process still paused, a partition chain) before the fault packages undo it too.
        nemesis_heal = ("nemesis heal", lambda: ctx.nemesis.heal(ctx.cluster))
        healers.insert(1 if before else 0, nemesis_heal)
    for what, fn in healers:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - try every healer, report all
            problems.append(f"{what}: {describe(e)}")
    if problems:
        (log.debug if before else log.warning)("healing %s: %s", when, "; ".join(problems))
    else:
        log.info("healed all faults %s", when)
    ctx.healed = not problems or before


def undone_by_heal(report: Any) -> list[dict[str, Any]]:
    """A cluster heal's report ({node: [lines]} from SSH / docker nodes, {node: {kind:
    [items]}} from the local cluster) as [{"node", "undone": [sentences]}], nodes with
    nothing undone left out."""
    out: list[dict[str, Any]] = []
    for node, done in (report or {}).items():
        if isinstance(done, dict):
            lines = [f"{kind}: {item}" for kind, items in done.items() for item in items]
        else:
            lines = [str(line) for line in done]
        if lines:
            out.append({"node": node, "undone": lines})
    return out


def setup(ctx: RunContext) -> None:
    log.info("setting up %s on %s", ctx.config.target, ", ".join(ctx.cluster.names))
    ctx.setup_done = True  # from here on, teardown is owed even if setup fails half-way
    try:
        ctx.target.setup(ctx.cluster)
    finally:  # what an earlier run left and this setup removed, even if setup then failed
        ctx.run_dir.update_test(leftovers=recorded_leftovers(ctx))


def recorded_leftovers(ctx: RunContext) -> list[dict[str, Any]]:
    """test.json's `leftovers`: the faults the heal before setup undid, then what the
    target's setup cleared. A process the heal found paused and resumed is recorded as paused
    (state T): by the time the target looks, it runs again."""
    resumed = {
        (entry["node"], line.split()[1])
        for entry in ctx.healed_leftovers
        for line in entry["undone"]
        if line.startswith("resumed") and len(line.split()) > 1
    }
    cleared = []
    for found in ctx.target.leftovers:
        procs = [
            dict(p, state="T", paused=True) if (found.get("node"), str(p.get("pid"))) in resumed
            else p
            for p in found.get("processes") or []
        ]  # fmt: skip
        cleared.append({**found, "processes": procs})
    return [*({"node": e["node"], "faults": e["undone"]} for e in ctx.healed_leftovers), *cleared]


def run_clients(ctx: RunContext) -> None:
    """The test proper: clients and the nemesis for the time limit, then stop them all."""
    cfg = ctx.config
    ctx.recorder.start_ns = time.monotonic_ns()  # the clock of the history starts now
    # the wall time of history time 0, so node logs and message logs line up with the ops
    ctx.run_dir.update_test(history_start_time=iso_now())
    limiter = RateLimiter(cfg.rate)
    names = ctx.cluster.names
    ctx.workers = [ClientWorker(ctx, i, names[i % len(names)], limiter) for i in range(ctx.clients)]
    ctx._next_process = ctx.clients
    setup_ops(ctx)  # on the history's clock, before any worker or fault
    ctx.progress = Progress(
        ctx.recorder, cfg.time_limit, lambda: ctx.active_fault, stream=ctx.progress_stream
    )
    ctx.progress.start()
    for w in ctx.workers:
        w.start()
    if ctx.nemesis is not None:
        ctx.nemesis_worker = NemesisWorker(ctx)
        ctx.nemesis_worker.start()
    deadline = time.monotonic() + cfg.time_limit
    while (left := deadline - time.monotonic()) > 0:
        if ctx.recorder.failed.wait(min(left, 0.25)):
            raise ctx.recorder.failure or HarnessError("the history could not be written")
    log.info("time limit reached: stopping clients")
    ctx.progress.phase = "stopping"
    stop_workers(ctx)


def setup_ops(ctx: RunContext) -> None:
    """The workload's setup ops (`Workload.setup_ops`: bank's initial balances), in order,
    through one client on the first node and a process of their own, recorded like any op.
    One that does not end ok stops the run (HarnessError: the runner heals, tears down and
    writes verdict unknown): the workers would test a state the workload never established."""
    assert ctx.workload is not None
    specs = ctx.workload.setup_ops()
    if not specs:
        return
    node = ctx.cluster.names[0]
    process = ctx.new_process()
    log.info("setup ops: %d through %s", len(specs), node)
    client = ctx.target.client(ctx.cluster, node)
    try:
        for spec in specs:
            done = ctx.interpreter.perform(
                spec.f, spec.value, client.invoke, process=process, key=spec.key, node=node
            )
            if done.type != "ok":
                why = f" ({done.error})" if done.error else ""
                raise HarnessError(
                    f"setup op {spec.f} through {node} ended {done.type}{why}: the workload's "
                    "starting state was not established, so the test did not run"
                )
    finally:
        close_client(client)


def stop_workers(ctx: RunContext) -> None:
    ctx.stop_clients.set()
    deadline = time.monotonic() + WORKER_JOIN_TIMEOUT
    for w in ctx.workers:
        w.join(timeout=max(0.1, deadline - time.monotonic()))
    stuck = [w.name for w in ctx.workers if w.is_alive()]
    if stuck:
        log.warning("clients still blocked after %gs: %s", WORKER_JOIN_TIMEOUT, stuck)
    if ctx.nemesis_worker is not None:
        ctx.nemesis_worker.finish()


def recover(ctx: RunContext) -> None:
    """Quiet period: give the target time to be ready for the final reads again (bounded by
    --recovery-timeout): `Target.ready_for_final_reads`, by default a leader elected again."""
    ctx.healed_at = time.monotonic_ns() - ctx.recorder.start_ns
    timeout = ctx.config.recovery_timeout
    if ctx.workload is not None and ctx.workload.converges:
        return  # the final reads come in rounds until every node agrees: they do the waiting
    if ctx.workload is not None and not ctx.workload.final_ops():
        return  # nothing is read at the end (echo, unique-ids): nothing to wait for
    if not ctx.target.elects_leader:
        log.info("waiting 1s for the nodes to settle before the final reads")
        time.sleep(min(1.0, timeout))
    deadline = time.monotonic() + timeout
    waited = False
    while True:
        try:
            ready = bool(ctx.target.ready_for_final_reads(ctx.cluster))
        except Exception as e:  # noqa: BLE001
            ready = False
            log.debug("ready_for_final_reads(): %s", describe(e))
        if ready:
            if ctx.target.elects_leader or waited:
                log.info("recovered: ready for the final reads")
            return
        if time.monotonic() >= deadline:
            log.warning("not ready for the final reads within %gs of healing", timeout)
            return
        waited = True
        time.sleep(0.5)


def final_reads(ctx: RunContext) -> None:
    """Read every key through every node, recorded as ordinary ops (retried on fail). A
    converging workload reads in rounds until every node has answered the same for
    AGREEING_ROUNDS rounds in a row, or its convergence timeout passes."""
    assert ctx.workload is not None
    specs = ctx.workload.final_ops()
    ctx.final_start_index = ctx.recorder.next_index
    with ctx._process_lock:  # fresh ids above every id a worker has had
        used = [w.process for w in ctx.workers]
        ctx._next_process = max([ctx._next_process - 1, *used]) + 1
    if not specs:
        return
    nodes = ctx.cluster.names
    log.info("final reads: %d ops through each of %d nodes", len(specs), len(nodes))
    hold("final-reads")
    if not ctx.workload.converges:
        deadline = time.monotonic() + max(30.0, ctx.config.recovery_timeout) + 0.05 * len(specs)
        _round(ctx, specs, deadline)
        return
    timeout = float(ctx.config.workload_options.get("convergence-timeout", 30.0))
    started = time.monotonic()
    deadline = started + timeout
    agreeing, rounds = 0, 0
    while True:
        answers = _round(ctx, specs, deadline + 0.05 * len(specs), rounds=True)
        rounds += 1
        agreeing = agreeing + 1 if _agree(answers, nodes, specs) else 0
        if agreeing >= AGREEING_ROUNDS or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    ctx.converged = {
        "converged": agreeing >= AGREEING_ROUNDS,
        "rounds": rounds,
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info(
        "convergence: %s after %d rounds (%.1fs)",
        "all nodes agree" if ctx.converged["converged"] else "nodes still disagree",
        rounds,
        ctx.converged["seconds"],
    )


def _agree(answers: dict[str, dict[Any, Any]], nodes: list[str], specs: list[OpSpec]) -> bool:
    """Every node answered every final op, and all answers per key are equal (lists as sets)."""

    def norm(v: Any) -> Any:
        return tuple(sorted(map(repr, v))) if isinstance(v, list) else repr(v)

    for spec in specs:
        values = {norm(answers.get(n, {}).get(spec.key, _MISSING)) for n in nodes}
        if len(values) != 1 or norm(_MISSING) in values:
            return False
    return True


_MISSING = object()


def _round(
    ctx: RunContext, specs: list[OpSpec], deadline: float, rounds: bool = False
) -> dict[str, dict[Any, Any]]:
    """One pass of the final ops through every node at once: {node: {key: ok value}}.
    `rounds`: one of a converging workload's rounds, whose deadline is the convergence
    timeout: reaching it is how the rounds end, not something to warn about."""
    answers: dict[str, dict[Any, Any]] = {n: {} for n in ctx.cluster.names}
    k = _readers_per_node(ctx.workload, len(specs))
    threads = [
        threading.Thread(
            target=_reads_on,
            args=(ctx, n, specs[part::k], deadline, answers[n], rounds),
            daemon=True,
        )
        for n in ctx.cluster.names
        for part in range(k)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, deadline + 15 - time.monotonic()))
    return answers


def _readers_per_node(workload: Workload | None, specs: int) -> int:
    """How many clients share one node's final reads (FINAL_READERS)."""
    if workload is None or type(workload).final_followups is not Workload.final_followups:
        return 1
    return max(1, min(FINAL_READERS, specs // FINAL_READS_PER_READER))


def _reads_on(
    ctx: RunContext,
    node: str,
    specs: list[OpSpec],
    deadline: float,
    out: dict[Any, Any],
    rounds: bool = False,
) -> None:
    """The final ops through one node, each retried on a fresh process after a fail or an
    info; then, for a workload that asks for more (`final_followups`: Kafka-style polls until
    the node has returned every offset known to exist), its follow-ups, until it has none."""
    state = {"client": None, "process": ctx.new_process(), "failed": 0}
    done: list[Any] = []

    def perform(batch: list[OpSpec]) -> bool:
        """Run a batch of specs; False when the node is out of time or does not answer."""
        for spec in batch:
            if state["failed"] >= 2:
                log.warning("final reads on %s: node does not answer, skipping the rest", node)
                return False
            state["failed"] += 1
            for attempt in range(FINAL_READ_ATTEMPTS):
                if time.monotonic() > deadline:
                    if rounds:  # the convergence timeout ended the rounds; the summary says so
                        log.debug("final reads on %s: convergence timeout reached", node)
                    else:
                        log.warning("final reads on %s stopped: out of time", node)
                    return False
                if state["client"] is None:
                    state["client"] = ctx.target.client(ctx.cluster, node)
                comp = ctx.interpreter.perform(
                    spec.f,
                    spec.value,
                    state["client"].invoke,
                    process=state["process"],
                    key=spec.key,
                    node=node,
                )
                done.append(comp)
                if comp.type == "ok":
                    state["failed"] = 0
                    out[spec.key] = comp.value
                    break
                if comp.type == "info":
                    state["process"] = ctx.new_process()
                    close_client(state["client"])
                    state["client"] = None
                if attempt + 1 < FINAL_READ_ATTEMPTS:
                    time.sleep(0.2 * (attempt + 1))
        return True

    assert ctx.workload is not None
    try:
        if not perform(specs):
            return
        while True:
            more = ctx.workload.final_followups(done, ctx.recorder.ops, ctx.final_start_index)
            if not more or not perform(more):
                return
            time.sleep(FOLLOWUP_PAUSE)
    except Exception as e:  # noqa: BLE001
        log.warning("final reads on %s stopped: %s", node, describe(e))
    finally:
        close_client(state["client"])


def collect_logs(ctx: RunContext) -> None:
    for node in ctx.cluster.names:
        try:
            paths = list(ctx.target.log_files(ctx.cluster, node))
            if paths:
                fetch_files(ctx.cluster.remote(node), paths, ctx.run_dir.node_dir(node))
        except Exception as e:  # noqa: BLE001 - logs are nice to have, never fatal
            log.warning("collecting logs of %s: %s", node, describe(e))


def teardown(ctx: RunContext) -> None:
    if ctx.config.leave_running:
        log.info("--leave-running: the target is left running")
        return
    if ctx.torn_down:
        return
    hold("teardown")
    try:
        log.info("tearing down %s", ctx.config.target)
        ctx.target.teardown(ctx.cluster)
    except Exception as e:  # noqa: BLE001
        log.error("teardown failed: %s", describe(e))
    ctx.torn_down = True


def generic_checkers() -> list[Checker]:
    """The checkers every run adds to its workload's: statistics and the vacuous-run check."""
    return [plugins.get("checkers", name)() for name in ("stats", "vacuous")]


def check(ctx: RunContext, history: History) -> dict[str, Any]:
    """The verdict: the workload's checkers composed with the generic ones."""
    assert ctx.workload is not None
    hold("check")
    context = CheckContext(
        time_limit=ctx.config.check_time_limit,
        model=ctx.workload.model,
        consistency=ctx.workload.consistency or "linearizable",
        faults=ctx.config.nemesis,
        fault_took_effect=catalog.took_effect,
        final_from_index=ctx.final_start_index,
        healed_at=ctx.healed_at,
        required_ok=ctx.workload.required_ok,
        extra=ctx.workload.check_extra,
    )
    t0 = time.monotonic()
    try:
        history.validate()
        checkers = [*ctx.workload.checkers(), *generic_checkers()]
        if ctx.config.slo:
            checkers.append(SloChecker(ctx.config.slo))
    except Exception as e:  # noqa: BLE001 - an unreadable history is unknown, never a pass
        log.error("cannot check: %s", describe(e))
        log.debug("%s", traceback.format_exc())
        checkers = generic_checkers()
        problem = describe(e)
    else:
        problem = None
    composed, results = run_checkers(checkers, history, context)
    for r in results:  # the report shows the fewest ops that still fail first
        attach_minimal_core(r, history.operations(), minimize_budget(ctx.config.check_time_limit))
    log.info("checks took %.2fs", time.monotonic() - t0)
    stats = next((r for r in results if r.checker == "stats"), None)
    out: dict[str, Any] = {
        "valid": "unknown" if problem else composed.valid,
        "reason": f"cannot check: {problem}" if problem else composed.reason,
        "checks": {r.checker: r.to_dict() for r in results},
        "stats": stats.details if stats is not None else {},
        "final_reads_from_index": ctx.final_start_index,
        "healed_at": ctx.healed_at,
    }
    if ctx.converged is not None:
        out["convergence"] = ctx.converged
    try:
        facts = ctx.target.run_results(ctx.run_dir.path, history)
    except Exception as e:  # noqa: BLE001 - facts for the report, never the verdict
        log.warning("target results: %s", describe(e))
        facts = None
    if facts:
        out["target"] = facts
        distrust(out, facts)
    return out


#: at most this long for a run's minimal history (the check's time limit when shorter)
MINIMIZE_SECONDS = 20.0


def minimize_budget(check_time_limit: float | None) -> float:
    return min(MINIMIZE_SECONDS, check_time_limit or MINIMIZE_SECONDS)


def distrust(results: dict[str, Any], facts: Any) -> None:
    """A failed verdict becomes unknown when the target saw the test's own ground give way
    (`untrustworthy`: e.g. a network that must not lose messages lost some outside every
    fault): the failure may be the machine's doing, not the system's. A pass stays a pass."""
    caveat = facts.get("untrustworthy") if isinstance(facts, dict) else None
    if caveat and results.get("valid") is False:
        results["valid"] = "unknown"
        results["reason"] = f"not trusted: {caveat}; the checks said: {results.get('reason')}"
