"""Render time and size of report.html for large histories (quality bar: 100,000 ops in under
10 s, into a file under 20 MB). Prints figures; asserts nothing.

    python3 bench/report_render.py [N ...]     # default: 10000 100000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from dsjepsen.reports.html import render_run_report

# the synthetic run builder is a test fixture (tests/synthetic_runs.py), not shipped code
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_runs import build_run_dir  # noqa: E402


def main(sizes: list[int]) -> None:
    print(f"{'ops':>8} {'history MB':>10} {'build s':>8} {'render s':>9} {'report MB':>10}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="dsj-bench-") as tmp:
            t0 = time.perf_counter()
            run = build_run_dir(Path(tmp) / "store", n_ops=n, processes=10, seed=1)
            t1 = time.perf_counter()
            out = render_run_report(run)
            t2 = time.perf_counter()
            hist_mb = (run / "history.jsonl").stat().st_size / 1e6
            print(
                f"{n:>8} {hist_mb:>10.1f} {t1 - t0:>8.1f} {t2 - t1:>9.2f} "
                f"{out.stat().st_size / 1e6:>10.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000])
