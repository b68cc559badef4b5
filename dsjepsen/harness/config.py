"""TestConfig: every option of `dsjepsen test`, validated once into one frozen value.

Validation happens before anything touches a node, so a typo costs one line and exit 254, not a
half-built cluster. The runner, the workload and the store only ever see a TestConfig, which is
also what test.json records so that a run can be reproduced exactly.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from dsjepsen.errors import ConfigError

DEFAULT_CONCURRENCY = "2n"
DEFAULT_TIME_LIMIT = 60.0
DEFAULT_NEMESIS_INTERVAL = 10.0
DEFAULT_RATE = 100.0
DEFAULT_KEYS = 5
DEFAULT_OPS_PER_KEY = 60
DEFAULT_RECOVERY_TIMEOUT = 30.0
DEFAULT_CHECK_TIME_LIMIT = 120.0
DEFAULT_STORE = "store"

_CONCURRENCY = re.compile(r"^\s*(\d+)\s*(n?)\s*$")


@dataclass(frozen=True)
class TestConfig:
    """One test's options. `concurrency` is per node when `concurrency_per_node` (Jepsen's
    `2n`), resolved against the real node count by `clients_for`."""

    __test__ = False  # not a pytest test class, whatever its name says

    target: str = "raft-kv"
    workload: str = "register"
    bugs: tuple[str, ...] = ()
    serializable_reads: bool = False
    #: http-kv: the command template that starts the user's server, and its port
    server_cmd: str | None = None
    server_port: int | None = None
    nemesis: tuple[str, ...] = ()
    nemesis_interval: float = DEFAULT_NEMESIS_INTERVAL
    time_limit: float = DEFAULT_TIME_LIMIT
    concurrency: int = 2
    concurrency_per_node: bool = True
    rate: float = DEFAULT_RATE
    keys: int = DEFAULT_KEYS
    ops_per_key: int = DEFAULT_OPS_PER_KEY
    seed: int = 0
    seed_given: bool = False
    test_count: int = 1
    leave_running: bool = False
    store: str = DEFAULT_STORE
    json: bool = False
    recovery_timeout: float = DEFAULT_RECOVERY_TIMEOUT
    check_time_limit: float = DEFAULT_CHECK_TIME_LIMIT
    argv: tuple[str, ...] = field(default=(), compare=False)

    def clients_for(self, node_count: int) -> int:
        """Number of client workers on a cluster of node_count nodes."""
        return self.concurrency * node_count if self.concurrency_per_node else self.concurrency

    @property
    def concurrency_spec(self) -> str:
        return f"{self.concurrency}n" if self.concurrency_per_node else str(self.concurrency)

    @property
    def test_name(self) -> str:
        """Directory name of this test in the store: target, bugs, workload, faults."""
        parts = [self.target]
        if self.bugs:
            parts.append("bug-" + "+".join(self.bugs))
        if self.serializable_reads:
            parts.append("serializable")
        parts.append(self.workload)
        parts.append("+".join(self.nemesis) if self.nemesis else "none")
        return "-".join(parts)

    def with_seed(self, seed: int) -> TestConfig:
        from dataclasses import replace

        return replace(self, seed=seed, seed_given=True)

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
        argv = ["dsjepsen", "test", "--target", self.target]
        for b in self.bugs:
            argv += ["--bug", b]
        if self.serializable_reads:
            argv.append("--serializable-reads")
        if self.server_cmd is not None:
            argv += ["--server-cmd", self.server_cmd]
        if self.server_port is not None:
            argv += ["--server-port", str(self.server_port)]
        argv += ["--workload", self.workload, "--nemesis", ",".join(self.nemesis) or "none"]
        argv += ["--nemesis-interval", f"{self.nemesis_interval:g}"]
        argv += ["--time-limit", f"{self.time_limit:g}", "--concurrency", self.concurrency_spec]
        argv += ["--rate", f"{self.rate:g}", "--keys", str(self.keys)]
        argv += ["--ops-per-key", str(self.ops_per_key), "--store", self.store]
        if self.leave_running:
            argv.append("--leave-running")
        return argv

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["concurrency"] = self.concurrency_spec
        del d["concurrency_per_node"]
        d["bugs"] = list(self.bugs)
        d["nemesis"] = list(self.nemesis)
        d["argv"] = list(self.argv)
        return d


# ---------------------------------------------------------------------------------------------
# Parsing single values. Each raises ConfigError naming the option, so the CLI prints one line.


def parse_concurrency(text: str | int, option: str = "--concurrency") -> tuple[int, bool]:
    """`10` -> (10, False); `2n` -> (2, True) meaning 2 clients per node (Jepsen's syntax)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    m = _CONCURRENCY.match(str(text))
    if not m or int(m.group(1)) < 1:
        raise ConfigError(
            f"{option}: expected a positive integer N or Nn (N per node), got {text!r}"
        )
    return int(m.group(1)), bool(m.group(2))


def _number(value: Any, option: str, *, minimum: float, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: expected a number, got {value!r}") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise ConfigError(f"{option}: expected a finite number, got {value!r}")
    if allow_zero and x == 0:
        return 0.0
    if x < minimum or (minimum == 0 and x <= 0):
        what = "a positive number" if minimum == 0 else f"at least {minimum:g}"
        raise ConfigError(f"{option}: must be {what}, got {value!r}")
    return x


def _integer(value: Any, option: str, *, minimum: int) -> int:
    try:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        x = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: expected an integer, got {value!r}") from None
    if isinstance(x, bool) or x < minimum:
        raise ConfigError(f"{option}: must be an integer >= {minimum}, got {value!r}")
    return x


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(s.strip() for s in str(item).split(",") if s.strip())
    return out


def _server_options(spec: Any, cmd: Any, port: Any) -> tuple[str | None, int | None]:
    """--server-cmd / --server-port: only for targets that take them, checked by the target."""
    from dsjepsen.harness import registry

    accepted = {name for name, _ in spec.config_kwargs}
    for option, name, value in (
        ("--server-cmd", "server_cmd", cmd),
        ("--server-port", "server_port", port),
    ):
        if value is not None and name not in accepted:
            raise ConfigError(f"{option}: not an option of target {spec.name}")
    port_number = _integer(port, "--server-port", minimum=1) if port is not None else None
    if spec.options_check:
        values = {"server_cmd": cmd, "server_port": port_number}
        kwargs = {kw: values.get(f) for f, kw in spec.config_kwargs}
        registry.load(spec.options_check)(**kwargs)
    return (str(cmd) if cmd is not None else None), port_number


# ---------------------------------------------------------------------------------------------
# argparse wiring


def add_test_options(parser: argparse.ArgumentParser) -> None:
    """Every option of `dsjepsen test` except node selection (cluster.nodes adds those).

    Values are taken as strings and validated by `config_from_args`, so that every bad value
    gets the same one-line message naming the option, whatever its type.
    """
    g = parser.add_argument_group("what to test")
    g.add_argument("--target", default="raft-kv", help="system under test (raft-kv, etcd)")
    g.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="raft-kv: switch on a deliberate bug (repeatable; see `dsjepsen list targets`)",
    )
    g.add_argument(
        "--serializable-reads",
        action="store_true",
        help="etcd: serve reads from the local member (serializable), not through a quorum",
    )
    g.add_argument(
        "--server-cmd",
        default=None,
        metavar="TEMPLATE",
        help="http-kv: command starting your server on a node; placeholders {node} {address} "
        "{port} {peers} {all_nodes} {data_dir}",
    )
    g.add_argument(
        "--server-port", default=None, metavar="PORT", help="http-kv: your server's port (7070)"
    )
    g.add_argument("--workload", default=None, help="workload (default: the target's own)")
    g.add_argument(
        "--nemesis",
        default="none",
        metavar="F1,F2",
        help="comma list of faults from `dsjepsen list nemeses`, or none (default)",
    )
    g.add_argument(
        "--nemesis-interval",
        default=str(DEFAULT_NEMESIS_INTERVAL),
        metavar="SECONDS",
        help="seconds between fault start and stop (default 10)",
    )
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
        "--keys",
        default=str(DEFAULT_KEYS),
        metavar="N",
        help="keys in use at once (default 5)",
    )
    g.add_argument(
        "--ops-per-key",
        default=str(DEFAULT_OPS_PER_KEY),
        metavar="N",
        help="ops on a key before it is retired for a fresh one (default 60)",
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
        help="budget of the linearizability check; past it the verdict is unknown (default 120)",
    )
    g.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="DIR",
        help="where run directories go (default ./store)",
    )
    g.add_argument("--json", action="store_true", help="print the results as JSON on stdout")


def config_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> TestConfig:
    """Validate parsed options into a TestConfig; the first bad one raises ConfigError."""
    from dsjepsen.harness import registry

    get = args.__dict__.get
    target = str(get("target") or "raft-kv")
    spec = registry.target_spec(target)
    bugs = tuple(_names(get("bug")))
    serializable = bool(get("serializable_reads"))
    spec.validate_options(bugs=bugs, serializable_reads=serializable)
    server_cmd, server_port = _server_options(spec, get("server_cmd"), get("server_port"))

    workload = get("workload") or spec.default_workload
    registry.workload_spec(workload)  # raises ConfigError naming --workload
    if workload not in spec.workloads:
        raise ConfigError(
            f"--workload: target {target} does not support workload {workload!r} "
            f"(supported: {', '.join(spec.workloads)})"
        )

    nemesis_names = _names(get("nemesis") or "none")
    if nemesis_names == ["none"]:
        nemesis_names = []
    elif "none" in nemesis_names:
        raise ConfigError("--nemesis: 'none' cannot be combined with other faults")
    registry.validate_nemeses(nemesis_names)
    if len(set(nemesis_names)) != len(nemesis_names):
        raise ConfigError(f"--nemesis: a fault is listed twice in {','.join(nemesis_names)}")

    concurrency, per_node = parse_concurrency(get("concurrency") or DEFAULT_CONCURRENCY)
    seed_text = get("seed")
    if seed_text is None:
        seed, seed_given = random.SystemRandom().randrange(2**31), False
    else:
        seed, seed_given = _integer(seed_text, "--seed", minimum=0), True

    return TestConfig(
        target=target,
        workload=workload,
        bugs=bugs,
        serializable_reads=serializable,
        server_cmd=server_cmd,
        server_port=server_port,
        nemesis=tuple(nemesis_names),
        nemesis_interval=_number(
            get("nemesis_interval", DEFAULT_NEMESIS_INTERVAL), "--nemesis-interval", minimum=0
        ),
        time_limit=_number(get("time_limit", DEFAULT_TIME_LIMIT), "--time-limit", minimum=0),
        concurrency=concurrency,
        concurrency_per_node=per_node,
        rate=_number(get("rate", DEFAULT_RATE), "--rate", minimum=0, allow_zero=True),
        keys=_integer(get("keys", DEFAULT_KEYS), "--keys", minimum=1),
        ops_per_key=_integer(get("ops_per_key", DEFAULT_OPS_PER_KEY), "--ops-per-key", minimum=1),
        seed=seed,
        seed_given=seed_given,
        test_count=_integer(get("test_count", 1), "--test-count", minimum=1),
        leave_running=bool(get("leave_running")),
        store=str(get("store") or DEFAULT_STORE),
        json=bool(get("json")),
        recovery_timeout=_number(
            get("recovery_timeout", DEFAULT_RECOVERY_TIMEOUT), "--recovery-timeout", minimum=0
        ),
        check_time_limit=_number(
            get("check_time_limit", DEFAULT_CHECK_TIME_LIMIT), "--check-time-limit", minimum=0
        ),
        argv=tuple(argv or ()),
    )
