"""Parse time of history files: the Porcupine corpus, and a generated 100,000-op history in
JSONL and EDN. Prints figures; asserts nothing about time.

Usage: python bench/history_parse.py [CORPUS_DIR]   (default ../shared/histories/porcupine)
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from dsjepsen.formats import read_history
from dsjepsen.formats.edn import write_edn
from dsjepsen.history import History, Op, pair_operations, write_jsonl

REPEATS = 5


def best_of(fn, repeats: int = REPEATS) -> tuple[float, float]:
    """Best wall and CPU seconds over `repeats` runs (the machine may be shared)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - w)
        cpu = min(cpu, time.process_time() - c)
    return wall, cpu


def generated(n: int, keys: int = 10, concurrency: int = 20, seed: int = 1) -> History:
    """A valid register history: `concurrency` workers, each with at most one op open; a worker
    whose op ends `info` continues under a fresh process id, as in Jepsen."""
    rng = random.Random(seed)
    ops: list[Op] = []
    process = list(range(concurrency))
    open_: dict[int, Op] = {}
    for i in range(n):
        w = rng.randrange(concurrency)
        inv = open_.pop(w, None)
        if inv is None:
            f = rng.choice(["read", "write", "cas"])
            value: object = None if f == "read" else rng.randrange(5)
            if f == "cas":
                value = [rng.randrange(5), rng.randrange(5)]
            op = Op(i, i * 1000, process[w], "invoke", f, value, key=rng.randrange(keys))
            open_[w] = op
        else:
            typ = rng.choice(["ok", "ok", "ok", "fail", "info"])
            value = rng.randrange(5) if inv.f == "read" and typ == "ok" else inv.value
            op = Op(i, i * 1000, process[w], typ, inv.f, value, key=inv.key)
            if typ == "info":
                process[w] += concurrency
        ops.append(op)
    return History(ops)


def main() -> int:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "histories" / "porcupine"
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    total_wall = total_cpu = 0.0
    if corpus.is_dir():
        for label, pattern in [("jepsen logs", "jepsen/*.log"), ("kv lines", "kv/*.txt")]:
            files = sorted(corpus.glob(pattern))
            n_ops = sum(len(read_history(f)) for f in files)
            wall, cpu = best_of(lambda files=files: [read_history(f) for f in files])
            total_wall += wall
            total_cpu += cpu
            print(
                f"{label:12s} {len(files):3d} files {n_ops:6d} ops  "
                f"{wall * 1000:7.1f} ms wall {cpu * 1000:7.1f} ms cpu  "
                f"{wall / n_ops * 1e6:5.2f} us/op"
            )
        print(
            f"{'corpus':12s} total {total_wall * 1000:.1f} ms wall, {total_cpu * 1000:.1f} ms cpu"
        )
    else:
        print(f"corpus not found at {corpus}; skipping it")
    h = generated(100_000)
    with tempfile.TemporaryDirectory() as d:
        paths = {"jsonl": Path(d) / "h.jsonl", "edn": Path(d) / "h.edn"}
        write_jsonl(h, paths["jsonl"])
        write_edn(h, paths["edn"], nemesis_as_info=False)
        for fmt, p in paths.items():
            back = read_history(p)
            assert back.ops == h.ops, f"{fmt} round trip changed the history"
            wall, cpu = best_of(lambda p=p: read_history(p), 3)
            print(
                f"100k ops {fmt:5s} {p.stat().st_size / 1e6:5.1f} MB  "
                f"{wall * 1000:7.0f} ms wall {cpu * 1000:7.0f} ms cpu  "
                f"{wall / len(h.ops) * 1e6:5.2f} us/op"
            )
        # pair_operations itself: History.operations() remembers its pairing
        wall, cpu = best_of(lambda: pair_operations(back.ops, back.source), 3)
        print(
            f"pairing + validation of 100k ops: {wall * 1000:.0f} ms wall {cpu * 1000:.0f} ms cpu"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
