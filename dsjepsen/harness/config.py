"""TestConfig: every option of `dsjepsen test`, validated once into one frozen value.

Validation happens before anything touches a node, so a typo costs one line and exit 254, not a
half-built cluster. The runner, the workload and the store only ever see a TestConfig, which is
also what test.json records so that a run can be reproduced exactly.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, field, fields
from typing import Any

from dsjepsen import plugins
from dsjepsen.checkers import base as checkers_base
from dsjepsen.errors import ConfigError
from dsjepsen.files import check_output_dir
from dsjepsen.machine import memory_available
from dsjepsen.nemesis import catalog, schedule
from dsjepsen.nemesis.base import FaultPackage, NodeFacts
from dsjepsen.options import Option, add_renamed, kwargs, merge_declarations, parse_options

DEFAULT_CONCURRENCY = "2n"
DEFAULT_TIME_LIMIT = 60.0
DEFAULT_NEMESIS_INTERVAL = 10.0
DEFAULT_RATE = 100.0
DEFAULT_RECOVERY_TIMEOUT = 30.0
DEFAULT_CHECK_TIME_LIMIT = checkers_base.DEFAULT_TIME_LIMIT
DEFAULT_STORE = "store"
NEMESIS_MODES = ("classic", "combined")

_CONCURRENCY = re.compile(r"^\s*(\d{1,9})\s*(n?)\s*$")

# Upper bounds of the run's own numbers (docs/running.md lists them with every extension's):
# past these a value is a typo or an attack, not a test, and would end in an OverflowError, a
# kernel kill or 100,000 threads after the cluster was built.
MAX_TIME_LIMIT = 7 * 86400.0
MAX_NEMESIS_INTERVAL = 86400.0
MAX_RATE = 100_000.0
MAX_SEED = 2**63 - 1
MAX_TEST_COUNT = 10_000
MAX_RECOVERY_TIMEOUT = 3600.0
MAX_CHECK_TIME_LIMIT = checkers_base.MAX_TIME_LIMIT
#: client workers (threads) of one run, over all nodes
MAX_CLIENTS = 1024
#: memory a run holds per client op: its invocation and completion while recorded, and again
#: while the history is checked (measured: about 700 B per op parsed, bench/history_parse.py)
BYTES_PER_CLIENT_OP = 2048
#: the rate an unlimited run (--rate 0) is costed at: about the most the harness drives
UNLIMITED_RATE = 20_000.0


@dataclass(frozen=True)
class TestConfig:
    """One test's options. `concurrency` is per node when `concurrency_per_node` (Jepsen's
    `2n`), resolved against the real node count by `clients_for`.

    The options of the chosen target, workload and fault packages (each declared by the
    extension itself, see dsjepsen.options) live in `target_options`, `workload_options` and
    `nemesis_options`, keyed by option name; `option(name)` reads any of them.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    target: str = "raft-kv"
    workload: str = "register"
    nemesis: tuple[str, ...] = ()
    nemesis_interval: float = DEFAULT_NEMESIS_INTERVAL
    nemesis_mode: str = "classic"
    #: windows of the fault schedule left out (1-based, in the order the seed schedules them):
    #: `dsjepsen shrink` drops single windows with it; the others keep their fault and time
    #: (a fault's own random choices, such as which nodes a partition cuts, come from the
    #: nemesis's generator as each window starts, so those after a skipped one may differ)
    nemesis_skip: tuple[int, ...] = ()
    time_limit: float = DEFAULT_TIME_LIMIT
    concurrency: int = 2
    concurrency_per_node: bool = True
    rate: float = DEFAULT_RATE
    seed: int = 0
    seed_given: bool = False
    test_count: int = 1
    leave_running: bool = False
    store: str = DEFAULT_STORE
    json: bool = False
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    check_time_limit: float = DEFAULT_CHECK_TIME_LIMIT
    #: service-level objectives the run must meet (checkers/slo.py), None: none
    slo: str | None = None
    target_options: dict[str, Any] = field(default_factory=dict)
    workload_options: dict[str, Any] = field(default_factory=dict)
    nemesis_options: dict[str, Any] = field(default_factory=dict)
    #: the extensions' parts of the test name (e.g. "bug-stale-read"), in order
    name_parts: tuple[str, ...] = ()
    #: the extensions' options as command-line tokens, to reproduce a run
    option_argv: tuple[str, ...] = ()
    #: the extensions' options as test.json records them
    recorded_options: dict[str, Any] = field(default_factory=dict)
    #: {fault name: its package}, as `--nemesis` was validated (once: the schedule and the
    #: nemesis take these rather than the names)
    fault_packages: dict[str, FaultPackage] = field(default_factory=dict, compare=False, repr=False)
    argv: tuple[str, ...] = field(default=(), compare=False)

    def option(self, name: str) -> Any:
        """The value of an extension's option by name (`keys`, `bug`, ...)."""
        for opts in (self.target_options, self.workload_options, self.nemesis_options):
            if name in opts:
                return opts[name]
        raise KeyError(f"no option {name!r} in this test")

    def clients_for(self, node_count: int) -> int:
        """Number of client workers on a cluster of node_count nodes."""
        return self.concurrency * node_count if self.concurrency_per_node else self.concurrency

    @property
    def concurrency_spec(self) -> str:
        return f"{self.concurrency}n" if self.concurrency_per_node else str(self.concurrency)

    @property
    def test_name(self) -> str:
        """Directory name of this test in the store: target, switches, workload, faults, and
        the op rate when it is not the default (`...-none-rate-50`, `-rate-unlimited` for
        --rate 0), so that runs at different rates never share a directory while the names
        of runs at the default rate stay what they were."""
        faults = "+".join(self.nemesis) if self.nemesis else "none"
        parts = [self.target, *self.name_parts, self.workload, faults]
        if self.rate != DEFAULT_RATE:
            parts.append(f"rate-{self.rate:g}" if self.rate else "rate-unlimited")
        return "-".join(parts)

    def reproduce_argv(self) -> list[str]:
        """The command line that repeats exactly this run: argv with the seed pinned and
        --test-count dropped (run i of --test-count N uses seed + i)."""
        out: list[str] = []
        args = list(self.argv)
        i = 0
        while i < len(args):
            a = args[i]
            if a in ("--seed", "--test-count"):
                i += 2
                continue
            if a.startswith(("--seed=", "--test-count=")):
                i += 1
                continue
            out.append(a)
            i += 1
        if not out:
            out = self.canonical_argv()
        return [*out, "--seed", str(self.seed)]

    def canonical_argv(self) -> list[str]:
        """A command line giving this config (without node options or seed), for runs
        started from Python rather than from a shell."""
        argv = ["dsjepsen", "test", "--target", self.target, "--workload", self.workload]
        argv += list(self.option_argv)
        argv += ["--nemesis", ",".join(self.nemesis) or "none"]
        argv += ["--nemesis-interval", f"{self.nemesis_interval:g}"]
        if self.nemesis_mode != "classic":
            argv += ["--nemesis-mode", self.nemesis_mode]
        if self.nemesis_skip:
            argv += ["--nemesis-skip", ",".join(map(str, self.nemesis_skip))]
        argv += ["--time-limit", f"{self.time_limit:g}", "--concurrency", self.concurrency_spec]
        argv += ["--rate", f"{self.rate:g}", "--store", self.store]
        if self.slo:
            argv += ["--slo", self.slo]
        if self.leave_running:
            argv.append("--leave-running")
        return argv

    def to_dict(self) -> dict[str, Any]:
        """What test.json records: every option, the extensions' options by name."""
        d = {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name
            not in (
                "concurrency_per_node",
                "target_options",
                "workload_options",
                "nemesis_options",
                "option_argv",
                "recorded_options",
                "name_parts",
                "fault_packages",
            )
        }
        d["concurrency"] = self.concurrency_spec
        d["nemesis"] = list(self.nemesis)
        d["argv"] = list(self.argv)
        d["options"] = dict(self.recorded_options)
        return d


def _slo(spec: Any) -> str | None:
    """--slo as given, once its terms parse (ConfigError naming the first that does not)."""
    if spec is None:
        return None
    from dsjepsen.checkers.slo import parse_slo

    parse_slo(str(spec))
    return str(spec)


# ---------------------------------------------------------------------------------------------
# Parsing single values. Each raises ConfigError naming the option, so the CLI prints one line.


def parse_concurrency(text: str | int, option: str = "--concurrency") -> tuple[int, bool]:
    """`10` -> (10, False); `2n` -> (2, True) meaning 2 clients per node (Jepsen's syntax),
    at most MAX_CLIENTS (per node, for Nn: the total is checked against the node count)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    m = _CONCURRENCY.match(str(text))
    if not m or int(m.group(1)) < 1:
        raise ConfigError(
            f"{option}: expected a positive integer N or Nn (N per node), got {str(text)[:40]!r}"
        )
    if int(m.group(1)) > MAX_CLIENTS:
        raise ConfigError(f"{option}: at most {MAX_CLIENTS} client workers, got {text!r}")
    return int(m.group(1)), bool(m.group(2))


def _number(
    value: Any, option: str, *, minimum: float, maximum: float, allow_zero: bool = False
) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{option}: expected a number, got {str(value)[:40]!r}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ConfigError(f"{option}: expected a finite number, got {value!r}")
    if allow_zero and x == 0:
        return 0.0
    if x < minimum or (minimum == 0 and x <= 0):
        what = "a positive number" if minimum == 0 else f"at least {minimum:g}"
        raise ConfigError(f"{option}: must be {what}, got {value!r}")
    if x > maximum:
        raise ConfigError(f"{option}: must be at most {maximum:g}, got {value!r}")
    return x


def _integer(value: Any, option: str, *, minimum: int, maximum: int) -> int:
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        x = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{option}: expected an integer, got {str(value)[:40]!r}") from None
    if isinstance(x, bool) or x < minimum:
        raise ConfigError(f"{option}: must be an integer >= {minimum}, got {value!r}")
    if x > maximum:
        raise ConfigError(f"{option}: must be an integer <= {maximum}, got {str(value)[:40]!r}")
    return x


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(s.strip() for s in str(item).split(",") if s.strip())
    return out


def extension_options() -> dict[str, Option]:
    """Every option any installed target, workload or fault package declares, merged by
    name (so `dsjepsen test --help` lists them all, each saying who takes it)."""
    groups: list[tuple[str, tuple[Option, ...]]] = []
    for kind, what in (("targets", "target"), ("workloads", "workload"), ("nemeses", "faults")):
        for name, ext in plugins.available(kind).items():
            groups.append((f"{what} {name}", tuple(getattr(ext, "options", ()))))
    return merge_declarations(groups)


# ---------------------------------------------------------------------------------------------
# argparse wiring


def add_test_options(parser: argparse.ArgumentParser) -> None:
    """Every option of `dsjepsen test` except node selection (cluster.nodes adds those).

    Values are taken as strings and validated by `config_from_args`, so that every bad value
    gets the same one-line message naming the option, whatever its type.
    """
    g = parser.add_argument_group("what to test")
    targets = ", ".join(plugins.available("targets")) or "none installed"
    g.add_argument("--target", default="raft-kv", help=f"system under test ({targets})")
    g.add_argument("--workload", default=None, help="workload (default: the target's own)")
    g.add_argument(
        "--nemesis",
        default=None,
        metavar="F1,F2",
        help="comma list of faults from `dsjepsen list nemeses`, or none (default)",
    )
    g.add_argument(
        "--nemesis-interval",
        default=str(DEFAULT_NEMESIS_INTERVAL),
        metavar="SECONDS",
        help="seconds between fault start and stop (default 10)",
    )
    g.add_argument(
        "--nemesis-mode",
        default=None,
        metavar="classic|combined",
        help="classic: one fault at a time (default); combined: one fault of every fault "
        "package at once, in every window (Jepsen's combined packages)",
    )
    g.add_argument(
        "--nemesis-skip",
        default=None,
        metavar="N1,N2",
        help="leave out these fault windows (1-based, in schedule order); the others keep "
        "their fault and time as the seed gives them (what `dsjepsen shrink` narrows)",
    )
    g = parser.add_argument_group("options of targets, workloads and faults")
    for opt in extension_options().values():
        kind = {"bool": "flag", "list": "append"}.get(opt.type, "value")
        for old in opt.aliases:
            add_renamed(g, f"--{old}", opt.flag, opt.dest, kind)
        if opt.type == "bool":
            g.add_argument(
                opt.flag, dest=opt.dest, action="store_true", default=None, help=opt.help
            )
        elif opt.type == "list":
            g.add_argument(
                opt.flag, dest=opt.dest, action="append", default=None,
                metavar=opt.metavar or "NAME", help=opt.help + " (repeatable)",
            )  # fmt: skip
        else:
            g.add_argument(
                opt.flag, dest=opt.dest, default=None, metavar=opt.metavar or opt.type.upper(),
                help=opt.help + (f" (default {opt.default})" if opt.default is not None else ""),
            )  # fmt: skip
    g = parser.add_argument_group("load")
    g.add_argument(
        "--time-limit",
        default=str(DEFAULT_TIME_LIMIT),
        metavar="SECONDS",
        help="how long clients run (default 60)",
    )
    g.add_argument(
        "--concurrency",
        default=DEFAULT_CONCURRENCY,
        metavar="N|Nn",
        help="client workers; Nn means N per node (default 2n)",
    )
    g.add_argument(
        "--rate",
        default=str(DEFAULT_RATE),
        metavar="OPS_PER_SECOND",
        help="total op rate over all clients; 0 = unlimited (default 100)",
    )
    g.add_argument(
        "--seed",
        default=None,
        metavar="N",
        help="random seed: same seed, same op sequence and fault schedule (default random)",
    )
    g = parser.add_argument_group("run")
    g.add_argument(
        "--test-count", default="1", metavar="N", help="run the test N times (run i uses seed+i)"
    )
    g.add_argument(
        "--leave-running", action="store_true", help="do not tear the target down at the end"
    )
    g.add_argument(
        "--recovery-timeout",
        default=str(DEFAULT_RECOVERY_TIMEOUT),
        metavar="SECONDS",
        help="after healing, wait at most this long for the target to serve again (default 30)",
    )
    g.add_argument(
        "--check-time-limit",
        default=str(DEFAULT_CHECK_TIME_LIMIT),
        metavar="SECONDS",
        help="budget of the checkers; past it the verdict is unknown (default 120)",
    )
    g.add_argument(
        "--slo",
        default=None,
        metavar="OBJECTIVES",
        help="service-level objectives that make the run invalid when missed, comma-separated: "
        "p50..p999 / max latency with a unit, availability (ok / completed), throughput (ok "
        "ops/s), optionally per f (read.p99<10ms); e.g. 'p99<10ms,availability>0.99'",
    )
    g.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="DIR",
        help="where run directories go (default ./store)",
    )
    g.add_argument("--json", action="store_true", help="print the results as JSON on stdout")


def _resolve_faults(raw: Any) -> dict[str, FaultPackage]:
    """--nemesis as the user wrote it, validated once into {fault name: package}: `none`
    stands alone and no fault is listed twice; the names themselves (and an empty list such
    as '' or ',,,') are the catalog's to judge."""
    if raw is None:
        return {}
    names = _names(raw)
    if "none" in names and len(names) > 1:
        raise ConfigError("--nemesis: 'none' cannot be combined with other faults")
    if len(set(names)) != len(names):
        raise ConfigError(f"--nemesis: a fault is listed twice in {','.join(names)}")
    return catalog.resolve(raw)


def config_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> TestConfig:
    """Validate parsed options into a TestConfig; the first bad one raises ConfigError."""
    get = args.__dict__.get
    target_name = str(get("target") or "raft-kv")
    target = plugins.get("targets", target_name)
    workload_name = str(get("workload") or target.default_workload)
    workload = plugins.get("workloads", workload_name)
    missing = sorted(set(workload.needs) - set(target.speaks))
    if missing:
        raise ConfigError(
            f"--workload: target {target_name} does not support workload {workload_name!r} "
            f"(its clients do not speak {', '.join(missing)}; "
            f"supported: {', '.join(supported_workloads(target)) or 'none'})"
        )
    faults = _resolve_faults(get("nemesis"))
    fault_names = list(faults)
    packages = list(dict.fromkeys(type(p) for p in faults.values()))

    # every extension option the user gave must belong to one of the chosen extensions
    given = {o.name: get(o.dest) for o in extension_options().values()}
    owners = [
        (f"target {target_name}", target.options, "target"),
        (f"workload {workload_name}", workload.options, "workload"),
        *((f"faults {p.family}", p.options, "nemesis") for p in packages),
    ]
    taken = {o.name for _, opts, _ in owners for o in opts}
    for name, raw in given.items():
        if raw is not None and name not in taken:
            chosen = ", ".join(owner for owner, _, _ in owners)
            raise ConfigError(f"--{name}: not an option of {chosen}")
    values: dict[str, dict[str, Any]] = {"target": {}, "workload": {}, "nemesis": {}}
    parts: list[str] = []
    option_argv: list[str] = []
    recorded: dict[str, Any] = {}
    for owner, opts, slot in owners:
        mine = {o.name: given.get(o.name) for o in opts}
        parsed = parse_options(opts, mine, owner)
        values[slot].update(parsed)
        for o in opts:
            part = o.name_part(parsed[o.name])
            if part:
                parts.append(part)
            option_argv += o.argv(parsed[o.name])
            recorded[o.name] = o.recorded(parsed[o.name])
    target.check_options(**kwargs(target.options, values["target"]))
    workload.check_options(**kwargs(workload.options, values["workload"]))
    nodes = NodeFacts()  # what the node options say decides some faults (clock, packet)
    if fault_names:
        from dsjepsen.cluster.nodes import own_kernels  # here: it loads the SSH client

        nodes = NodeFacts(own_kernels=own_kernels(args))
    for name, package in faults.items():
        why = catalog.unsupported(package, name, target, nodes)
        if why:
            raise ConfigError(f"--nemesis: {name} cannot run against {target_name}: {why}")

    concurrency, per_node = parse_concurrency(get("concurrency") or DEFAULT_CONCURRENCY)
    seed_text = get("seed")
    if seed_text is None:
        seed, seed_given = random.SystemRandom().randrange(2**31), False
    else:
        seed, seed_given = _integer(seed_text, "--seed", minimum=0, maximum=MAX_SEED), True
    interval = _number(
        get("nemesis_interval", DEFAULT_NEMESIS_INTERVAL),
        "--nemesis-interval",
        minimum=0,
        maximum=MAX_NEMESIS_INTERVAL,
    )
    time_limit = _number(
        get("time_limit", DEFAULT_TIME_LIMIT), "--time-limit", minimum=0, maximum=MAX_TIME_LIMIT
    )
    nemesis_mode = str(get("nemesis_mode") or "classic")
    if nemesis_mode not in NEMESIS_MODES:
        raise ConfigError(
            f"--nemesis-mode: unknown mode {nemesis_mode[:40]!r} (known: {', '.join(NEMESIS_MODES)})"
        )
    if fault_names:
        schedule.check_fits(faults, interval, time_limit, nemesis_mode)
    skip_text = get("nemesis_skip")
    nemesis_skip: tuple[int, ...] = ()
    if skip_text:
        if not fault_names:
            raise ConfigError("--nemesis-skip leaves out fault windows, but --nemesis is none")
        nemesis_skip = tuple(
            sorted(
                {_integer(w.strip(), "--nemesis-skip", minimum=1, maximum=1_000_000)
                 for w in str(skip_text).split(",") if w.strip()}
            )
        )  # fmt: skip
    rate = _number(
        get("rate", DEFAULT_RATE), "--rate", minimum=0, maximum=MAX_RATE, allow_zero=True
    )
    store_raw = get("store")
    store = check_output_dir(DEFAULT_STORE if store_raw is None else store_raw, "--store")
    # what the node options select, checked before any node is touched: contradictions, and a
    # fault that can do nothing on that many nodes (a partition on one)
    from dsjepsen.cluster.nodes import planned_node_count  # here: it loads the SSH client

    node_count = planned_node_count(args)
    catalog.check_cluster_size(fault_names, node_count)
    check_fits_machine(
        concurrency * node_count if per_node else concurrency,
        rate,
        time_limit,
        spec=get("concurrency") or DEFAULT_CONCURRENCY,
        node_count=node_count,
    )

    return TestConfig(
        target=target_name,
        workload=workload_name,
        nemesis=tuple(fault_names),
        fault_packages=faults,
        nemesis_interval=interval,
        nemesis_mode=nemesis_mode,
        nemesis_skip=nemesis_skip,
        time_limit=time_limit,
        concurrency=concurrency,
        concurrency_per_node=per_node,
        rate=rate,
        seed=seed,
        seed_given=seed_given,
        test_count=_integer(
            get("test_count", 1), "--test-count", minimum=1, maximum=MAX_TEST_COUNT
        ),
        leave_running=bool(get("leave_running")),
        store=str(store),
        json=bool(get("json")),
        recovery_timeout=_number(
            get("recovery_timeout", DEFAULT_RECOVERY_TIMEOUT),
            "--recovery-timeout",
            minimum=0,
            maximum=MAX_RECOVERY_TIMEOUT,
        ),
        check_time_limit=_number(
            get("check_time_limit", DEFAULT_CHECK_TIME_LIMIT),
            "--check-time-limit",
            minimum=0,
            maximum=MAX_CHECK_TIME_LIMIT,
        ),
        slo=_slo(get("slo")),
        target_options=values["target"],
        workload_options=values["workload"],
        nemesis_options=values["nemesis"],
        name_parts=tuple(parts),
        option_argv=tuple(option_argv),
        recorded_options=recorded,
        argv=tuple(argv or ()),
    )


def check_fits_machine(
    clients: int, rate: float, time_limit: float, *, spec: str, node_count: int
) -> None:
    """Refuse, before anything is created, a run this machine cannot hold: more client
    workers (threads) than MAX_CLIENTS, or more ops than the memory this process may take
    can record and check (BYTES_PER_CLIENT_OP each; an unlimited rate costed at
    UNLIMITED_RATE). The message gives the figures and what to lower."""
    if clients > MAX_CLIENTS:
        raise ConfigError(
            f"--concurrency {spec}: {clients} client workers on {node_count} nodes; at most "
            f"{MAX_CLIENTS} (lower --concurrency)"
        )
    ops = (rate or UNLIMITED_RATE) * time_limit
    need = ops * BYTES_PER_CLIENT_OP
    room = memory_available()
    if room is not None and need > room:
        rate_text = f"--rate {rate:g}" if rate else f"--rate 0 (costed at {UNLIMITED_RATE:g}/s)"
        raise ConfigError(
            f"{rate_text} for --time-limit {time_limit:g}: about {ops:,.0f} ops, which need "
            f"about {need / (1 << 30):.1f} GiB to record and check; this process has "
            f"{room / (1 << 30):.1f} GiB available (lower --rate or --time-limit)"
        )


def supported_workloads(target: Any) -> list[str]:
    """Names of the installed workloads whose op vocabulary the target's clients speak."""
    return [
        name
        for name, w in plugins.available("workloads").items()
        if set(w.needs) <= set(target.speaks)
    ]
