"""Render time and size of report.html for large histories (goals: a 1,000,000-op run in under
15 s into a file under 10 MB). Prints figures, reading the run directory and rendering the page
apart (CPU seconds), and how many ops the page carries in full; asserts nothing.

    python3 bench/report_render.py [N ...]     # default: 10000 100000 1000000
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from dsjepsen.reports import html
from dsjepsen.reports.rundata import load_run_dir

# the synthetic run builder is a test fixture (tests/synthetic_runs.py), not shipped code
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from synthetic_runs import build_run_dir  # noqa: E402


def main(sizes: list[int]) -> None:
    print(
        f"{'ops':>8} {'history MB':>10} {'read s':>7} {'render s':>9} {'report MB':>10} "
        f"{'ops in page':>12}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="dsj-bench-") as tmp:
            run = build_run_dir(Path(tmp) / "store", n_ops=n, processes=10, seed=1)
            c0 = time.process_time()
            data = load_run_dir(run)
            c1 = time.process_time()
            out = html.render(data, run / "report.html")
            c2 = time.process_time()
            page = out.read_text()
            head = page[page.index('id="timeline-data">') :][:10_000_000]
            kept = len(json.loads(head[head.index(">") + 1 : head.index("</script>")])["ops"]["s"])
            hist_mb = (run / "history.jsonl").stat().st_size / 1e6
            print(
                f"{n:>8} {hist_mb:>10.1f} {c1 - c0:>7.1f} {c2 - c1:>9.2f} "
                f"{out.stat().st_size / 1e6:>10.2f} {kept:>12,}",
                flush=True,
            )


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10_000, 100_000, 1_000_000])
