"""Throughput and latency of the reference raft-kv on a local 3-node cluster, without faults.

    sudo python bench/raftkv_throughput.py                # namespace cluster (needs root)
    python bench/raftkv_throughput.py --loopback          # plain processes on 127.0.0.1
    sudo python bench/raftkv_throughput.py --fault-fs     # data on the fault file system

For each of writes and reads, at concurrency 1 and 16, it runs closed-loop clients (each
waits for its answer before sending the next) for --seconds and prints operations per second
and p50 / p99 / max latency of successful operations. Clients talk to the leader directly
(--via all spreads them over every node, which adds a forwarding hop on followers).
--fault-fs puts every node's data directory on the fault file system, as a run with a disk
fault does (no fault injected): its cost on writes, each of which fsyncs through FUSE.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dsjepsen.history import Op
from dsjepsen.targets.contract_client import HttpKvClient


@dataclass
class Phase:
    kind: str
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_phase(
    kind: str, concurrency: int, seconds: float, make_client: Callable[[int], HttpKvClient]
) -> Phase:
    phase = Phase(kind, concurrency)
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(w: int) -> None:
        client = make_client(w)
        rng = random.Random(w)
        lat: list[float] = []
        errs: dict[str, int] = {}
        while time.perf_counter() < stop_at:
            key = rng.randrange(100)
            if kind == "write":
                op = Op(0, 0, w, "invoke", "write", value=rng.randrange(1000), key=key)
            else:
                op = Op(0, 0, w, "invoke", "read", key=key)
            t0 = time.perf_counter()
            done = client.invoke(op)
            dt = time.perf_counter() - t0
            if done.type == "ok":
                lat.append(dt)
            else:
                errs[done.type] = errs.get(done.type, 0) + 1
        client.close()
        with lock:
            phase.latencies.extend(lat)
            for k, v in errs.items():
                phase.errors[k] = phase.errors.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.elapsed = time.perf_counter() - t0
    return phase


def report(p: Phase) -> str:
    lat = sorted(p.latencies)
    rate = len(lat) / p.elapsed if p.elapsed else 0.0
    errs = ", ".join(f"{k} {v}" for k, v in sorted(p.errors.items())) or "none"
    return (
        f"{p.kind:<6} c={p.concurrency:<3} {rate:8.0f} ops/s   p50 {pct(lat, 0.5) * 1e3:6.2f} ms"
        f"   p99 {pct(lat, 0.99) * 1e3:6.2f} ms   max {max(lat, default=0) * 1e3:7.2f} ms"
        f"   ({len(lat)} ok; not ok: {errs})"
    )


# -- cluster backends ---------------------------------------------------------------------------


class LoopbackCluster:
    """Three server processes on 127.0.0.1, for machines without namespaces or root."""

    def __init__(self, base_port: int = 17300):
        self.dir = tempfile.mkdtemp(prefix="raftkv-bench-")
        self.ports = {f"n{i}": base_port + i for i in (1, 2, 3)}
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> LoopbackCluster:
        for name, port in self.ports.items():
            peers = ",".join(f"{n}=127.0.0.1:{p}" for n, p in self.ports.items() if n != name)
            log = open(os.path.join(self.dir, f"{name}.log"), "w")  # noqa: SIM115
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dsjepsen.targets.raft_kv.server",
                        "--id",
                        name,
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--peers",
                        peers,
                        "--data-dir",
                        os.path.join(self.dir, name),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        return self

    def leader(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for name, port in self.ports.items():
                c = HttpKvClient("127.0.0.1", port, timeout=1.0)
                try:
                    status, body = c.request("GET", "/status")
                    if status == 200 and body.get("role") == "leader":
                        return name
                except Exception:  # noqa: BLE001, S110 - not up yet
                    pass
                finally:
                    c.close()
            time.sleep(0.1)
        raise SystemExit("no leader within 30 s")

    def address(self, name: str) -> tuple[str, int]:
        return "127.0.0.1", self.ports[name]

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class NamespaceCluster:
    """The embedded default cluster (network namespaces) with RaftKvTarget, as tests use it."""

    def __init__(self, name: str = "rkbnch", fault_fs: bool = False):
        self.name = name
        self.fault_fs = fault_fs

    def __enter__(self) -> NamespaceCluster:
        from dsjepsen.cluster import localnet
        from dsjepsen.targets.raft_kv.target import RaftKvTarget

        self.cluster = localnet.up(self.name, node_count=3)
        self.target = RaftKvTarget()
        if self.fault_fs:
            from dsjepsen.nemesis.disk import DiskControl

            self.target.disk_control = DiskControl()
        try:
            self.target.setup(self.cluster)
        except BaseException:
            self.__exit__()
            raise
        return self

    def leader(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = self.target.leader(self.cluster)
            if got:
                return got
            time.sleep(0.1)
        raise SystemExit("no leader within 30 s")

    def address(self, name: str) -> tuple[str, int]:
        return self.cluster.node(name).address, self.target.port

    def __exit__(self, *exc: object) -> None:
        from dsjepsen.cluster import localnet

        try:
            self.target.teardown(self.cluster)
        finally:
            self.cluster.close()
            localnet.down(self.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loopback", action="store_true", help="127.0.0.1 processes, no netns")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    ap.add_argument("--via", choices=("leader", "all"), default="leader")
    ap.add_argument("--concurrency", default="1,16", help="comma-separated client counts")
    ap.add_argument("--fault-fs", action="store_true", help="data on the fault file system")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",")]
    if args.fault_fs and args.loopback:
        print("--fault-fs: needs the namespace cluster, not --loopback", file=sys.stderr)
        return 254
    backend = LoopbackCluster() if args.loopback else NamespaceCluster(fault_fs=args.fault_fs)
    with backend as cluster:
        leader = cluster.leader()
        names = ["n1", "n2", "n3"]
        print(
            f"raft-kv, 3 nodes ({'loopback' if args.loopback else 'network namespaces'}), "
            f"leader {leader}, clients via {args.via}, {args.seconds:g} s per phase, "
            f"{os.cpu_count()} CPUs" + (", data on the fault file system" if args.fault_fs else "")
        )

        def make_client(w: int) -> HttpKvClient:
            node = leader if args.via == "leader" else names[w % len(names)]
            host, port = cluster.address(node)
            return HttpKvClient(host, port, timeout=2.0, node=node)

        # Warm up connections and the leader's first no-op.
        run_phase("write", 1, 0.5, make_client)
        for c in levels:
            for kind in ("write", "read"):
                print(report(run_phase(kind, c, args.seconds, make_client)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
