"""How many ops per second the harness itself can record: generator + recorder + JSONL writer,
with N threads contending for the history lock (no network, no target).

Prints figures; the point is that the harness is never the bottleneck of a test (the default
rate is 100 ops/s, a local raft-kv serves a few thousand).

    python bench/harness_throughput.py [--threads 10] [--ops 50000]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from dsjepsen.formats.jsonl import read_jsonl
from dsjepsen.harness.recorder import Recorder
from dsjepsen.history import Op
from dsjepsen.workloads.register import RegisterWorkload


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--ops", type=int, default=50_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "history.jsonl"
        rec = Recorder(path)
        wl = RegisterWorkload(seed=1, keys=5, ops_per_key=60)
        per_thread = a.ops // a.threads

        def worker(p: int) -> None:
            for _ in range(per_thread):
                with rec.lock:
                    spec = wl.next_op()
                    inv = rec.record(Op(0, 0, p, "invoke", spec.f, spec.value, spec.key, "n1"))
                rec.record(Op(0, 0, p, "ok", inv.f, inv.value, inv.key, "n1"))

        threads = [threading.Thread(target=worker, args=(p,)) for p in range(a.threads)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        rec.close()
        n = per_thread * a.threads
        size = path.stat().st_size
        t1 = time.perf_counter()
        h = read_jsonl(path)
        h.validate()
        dt_read = time.perf_counter() - t1
    print(f"threads                {a.threads}")
    print(f"ops recorded           {n} ({2 * n} history lines, {size / 1e6:.1f} MB)")
    print(f"record throughput      {n / dt:,.0f} ops/s ({dt * 1e6 / n:.1f} us per op)")
    print(f"read back + validate   {len(h) / dt_read:,.0f} lines/s ({dt_read:.2f} s)")


if __name__ == "__main__":
    main()
