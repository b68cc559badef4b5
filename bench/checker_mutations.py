"""Mutation check for the linearizability checker's prunings: do the tests notice a broken one?

Usage: python bench/checker_mutations.py [--only NAME ...] [--tests FILE ...]

For every mutation below (each breaks one pruning rule in a plausible way: a wrong subset
test, a class key that ignores part of the value, a value forgotten in a fixpoint...), the
package and the checker tests are copied to a temporary directory, the one line is changed
there, and the checker's oracle tests run against the copy. The working tree is never
touched. A mutation is *killed* when the tests fail; every one must be. Prints one line per
mutation and exits 1 if any survives.

Two plausible mutants are left out because they are equivalent (no history tells them apart):
reversing the closure's dominance test for indeterminate steps (its breadth-first buckets
always insert the smaller used-set first, so only the superset check ever fires), and not
counting the initial value as observed in pruning (d) (an unread initial value is as
unobservable as any other unread value, so dropping an info write of it is sound too).
So is any change to the condition under which the search tries a closure's first
configuration before making the closure (it only changes the order: the closure, made when
the search comes back, yields that configuration again and all the others).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKERS = "dsjepsen/checkers"
DEFAULT_TESTS = ["test_checker_registry.py", "test_checker_oracle.py", "test_checker_pruning.py"]


@dataclass(frozen=True)
class Mutation:
    name: str
    rule: str
    file: str
    old: str
    new: str


MUTATIONS = [
    Mutation(
        "class-ignores-old-value",
        "(a) interchangeable indeterminate ops",
        "linearizable.py",
        "(p.f, p.value)",
        "(p.f, p.value[-1] if isinstance(p.value, tuple) else p.value)",
    ),
    Mutation(
        "class-by-f-only",
        "(a) interchangeable indeterminate ops",
        "linearizable.py",
        "(p.f, p.value)",
        "(p.f, None)",
    ),
    Mutation(
        "dominance-by-count-info-step",
        "(b) dominance, closure, indeterminate step",
        "linearizable.py",
        "elif any(u & ~u2 == 0 for u in us):",
        "elif any(u.bit_count() <= u2.bit_count() for u in us):",
    ),
    Mutation(
        "dominance-by-count-determinate-step",
        "(b) dominance, closure, determinate step",
        "linearizable.py",
        "elif any(u & ~used == 0 for u in us):",
        "elif any(u.bit_count() <= used.bit_count() for u in us):",
    ),
    Mutation(
        "failed-memo-by-count",
        "(b) dominance, memo of exhausted configurations",
        "linearizable.py",
        "if any(u & ~used == 0 for u in prev):",
        "if any(u.bit_count() <= used.bit_count() for u in prev):",
    ),
    Mutation(
        "failed-memo-skips-empty-used",
        "(b) dominance, memo of exhausted configurations",
        "linearizable.py",
        "if any(u & ~used == 0 for u in prev):",
        "if used == 0 or any(u & ~used == 0 for u in prev):",
    ),
    Mutation(
        "noop-against-bucket-start-state",
        "(c) no-op indeterminate steps",
        "linearizable.py",
        "if s2 is not ILLEGAL and s2 != s:",
        "if s2 is not ILLEGAL and s2 != configs[0][0]:",
    ),
    Mutation(
        "indeterminate-successors-never-made",
        "closure: deferred indeterminate successors",
        "linearizable.py",
        "            if active:\n                unexpanded.append(c)",
        "            pass",
    ),
    Mutation(
        "first-configuration-illegal-step",
        "search: the closure's first configuration tried without it",
        "linearizable.py",
        "            if s2 is not ILLEGAL:\n                for bit, tr, _j, before",
        "            if True:\n                for bit, tr, _j, before",
    ),
    Mutation(
        "unobservable-forgets-info-cas-old",
        "(d) unobservable indeterminate writes",
        "linearizable.py",
        'if role == "cas" and p.value[0] not in observed:',
        "if False:",
    ),
    Mutation(
        "unobservable-forgets-cas-old",
        "(d) unobservable indeterminate writes",
        "linearizable.py",
        """            elif role == "cas":
                observed.add(p.value[0])""",
        """            elif role == "cas":
                pass""",
    ),
    Mutation(
        "hooks-by-model-name",
        "(d)/(e) the engine reads the model's hooks, not its name",
        "linearizable.py",
        "    roles = model.register_roles\n",
        '    roles = model.register_roles if model.name in ("register", "cas-register", "kv") '
        "else {}\n",
    ),
    Mutation(
        "prepared-sharing-by-str",
        "equal plain ops share a prepared transition",
        "linearizable.py",
        "    if v is None or t in _PLAIN:\n        return v\n",
        "    if v is None or t in _PLAIN:\n        return str(v)\n",
    ),
    Mutation(
        "json-true-is-one",
        "values compare by JSON type",
        "models.py",
        "    if value is True:\n        return TRUE\n",
        "",
    ),
    Mutation(
        "zones-no-backward-inside-forward",
        "(e) unique-value register zones",
        "fastpath.py",
        "if s < lo and hi < e:",
        "if False:",
    ),
    Mutation(
        "zones-read-before-write-ignored",
        "(e) unique-value register zones",
        "fastpath.py",
        "if r.ret < w.call:",
        "if False:",
    ),
    Mutation(
        "zones-overlap-test-wrong",
        "(e) unique-value register zones",
        "fastpath.py",
        "if b[0] < a[1]:",
        "if b[0] < a[0]:",
    ),
    Mutation(
        "kv-no-chain-check",
        "(e) kv epochs: chain of groups (C1)",
        "fastpath.py",
        "bad = _chain_violation(groups)",
        "bad = None",
    ),
    Mutation(
        "kv-epoch0-not-first",
        "(e) kv epochs: epoch 0 precedes every put",
        "fastpath.py",
        "if base is not None else -INF",
        "",
    ),
    Mutation(
        "kv-unread-ops-ignored",
        "(e) kv epochs: unread puts/appends are blocks",
        "fastpath.py",
        'blocks.append((p.ret, p.call, [[p]], f"{p.f} {p.value!r} (never read)"))',
        "pass",
    ),
    Mutation(
        "kv-zones-sorted-by-m",
        "(e) kv epochs: zone order",
        "fastpath.py",
        "blocks.sort(key=lambda b: min(b[0], b[1]))",
        "blocks.sort(key=lambda b: b[0])",
    ),
    Mutation(
        "kv-append-read-twice-allowed",
        "(e) kv epochs: an append is observed once",
        "fastpath.py",
        "            if id(a) in observed:\n                g = next(",
        "            if False:\n                g = next(",
    ),
    Mutation(
        "kv-prefix-disagreement-ignored",
        "(e) kv epochs: gets of an epoch read one sequence",
        "fastpath.py",
        "if slot[0] != t:",
        "if False:",
    ),
    Mutation(
        "kv-resolver-call-vs-call",
        "(e) kv epochs: resolving repeated values",
        "fastpath.py",
        "if p.call < g.ret",
        "if p.call < g.call",
    ),
    Mutation(
        "kv-resolver-ignores-base",
        "(e) kv epochs: resolving repeated values",
        "fastpath.py",
        "and not (base is not None and _ret(p) < base.call)",
        "and not (base is not None and _ret(p) < base.ret)",
    ),
]


def run_one(m: Mutation, tests: list[str], keyword: str | None) -> tuple[bool, float, str]:
    with tempfile.TemporaryDirectory(prefix="dsj-mut-") as tmp:
        t = Path(tmp)
        shutil.copytree(ROOT / "dsjepsen", t / "dsjepsen", ignore=shutil.ignore_patterns("*.pyc"))
        (t / "tests").mkdir()
        shutil.copy(ROOT / "tests" / "checker_oracle.py", t / "tests")
        for name in tests:
            shutil.copy(ROOT / "tests" / name, t / "tests")
        target = t / CHECKERS / m.file
        src = target.read_text()
        if src.count(m.old) < 1:
            raise SystemExit(f"mutation {m.name}: text not found in {m.file} (update the list)")
        target.write_text(src.replace(m.old, m.new))
        env = dict(os.environ, PYTHONPATH=str(t), PYTHONDONTWRITEBYTECODE="1")
        started = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
            + (["-k", keyword] if keyword else [])
            + [f"tests/{n}" for n in tests],
            cwd=t,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,  # a loaded machine (the suite takes ~80 s on an idle one)
        )
        probe = subprocess.run(
            [sys.executable, "-c", "import dsjepsen; print(dsjepsen.__file__)"],
            cwd=t,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if not probe.stdout.startswith(str(t)):
            raise SystemExit(f"the copy was not imported ({probe.stdout.strip()})")
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("FAILED")]
        return r.returncode != 0, time.monotonic() - started, (lines[0] if lines else "")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="mutation names")
    ap.add_argument("--tests", nargs="*", default=DEFAULT_TESTS)
    ap.add_argument("-k", dest="keyword", help="pytest -k expression (e.g. only generated tests)")
    args = ap.parse_args()
    survivors = 0
    for m in MUTATIONS:
        if args.only and m.name not in args.only:
            continue
        killed, secs, first = run_one(m, args.tests, args.keyword)
        survivors += not killed
        status = "killed " if killed else "SURVIVED"
        print(f"{status} {m.name:40} {m.rule:48} {secs:6.1f} s  {first}", flush=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    raise SystemExit(main())
