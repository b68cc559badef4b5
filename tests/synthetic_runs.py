"""Synthetic run directories, for the report's tests and its render benchmark.

Real runs are the first test input (see tests/test_report_runs.py); this builder covers what a
real run cannot produce on demand: 100,000 ops, a hostile system that writes markup into every
field, a log without timestamps, a specific anomaly at a known place. It simulates a register
per key with a linearization point inside each op, so the history it writes is linearizable
except for the one stale read it plants (during a partition, on a minority node), and writes a
results.json anomaly in the checker's documented shape for that read.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dsjepsen.history import Op, write_jsonl

NS = 1_000_000_000
EVIL = "<script>alert(1)</script>"


@dataclass
class _SimOp:
    process: int
    f: str
    key: int
    value: Any
    start: int
    end: int
    lin: int
    node: str
    type: str = "ok"
    output: Any = None
    call: int = -1
    ret: int | None = None
    id: int = -1


def build_run_dir(
    root: str | Path,
    *,
    n_ops: int = 2000,
    processes: int = 5,
    node_count: int = 5,
    keys: int = 4,
    seed: int = 7,
    verdict: str = "invalid",  # "invalid" | "valid" | "unknown" | "interrupted"
    evil: bool = False,
    unstamped_node: str | None = "n5",
    name: str = "synthetic-register",
) -> Path:
    """Write a complete run directory under root/<name>/<timestamp>/ and return its path."""
    rng = random.Random(seed)
    nodes = [f"n{i + 1}" for i in range(node_count)]
    start_wall = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    run_dir = Path(root) / name / start_wall.strftime("%Y%m%dT%H%M%S")
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    rate_gap = 4_000_000  # ns between one process's ops on average
    duration = max(int(n_ops / processes * rate_gap * 1.3), 5 * NS)
    rate_gap = int(duration / (n_ops / processes) / 1.3)  # short histories still span faults
    # fault windows: partitions of the first two nodes, every 4 s for 2 s
    faults: list[tuple[int, int, list[str], list[str]]] = []
    t = 1 * NS
    while t + 2 * NS < duration:
        minority = rng.sample(nodes, max(1, (node_count - 1) // 2))
        majority = [n for n in nodes if n not in minority]
        faults.append((t, t + 2 * NS, sorted(minority), majority))
        t += 4 * NS

    def partitioned(node: str, at: int) -> bool:
        return any(s <= at <= e and node in mino for s, e, mino, _ in faults)

    sims: list[_SimOp] = []
    pid = {w: w for w in range(processes)}
    clock = {w: rng.randrange(0, rate_gap) for w in range(processes)}
    for i in range(n_ops):
        w = i % processes
        p = pid[w]
        node = nodes[w % node_count]
        f = rng.choice(("read", "read", "write", "cas"))
        key = rng.randrange(keys)
        value: Any = None
        if f == "write":
            value = rng.randrange(5)
        elif f == "cas":
            value = [rng.randrange(5), rng.randrange(5)]
        s = clock[w]
        lat = int(rng.lognormvariate(14.0, 0.6))  # ~1.2 ms median
        typ = "ok"
        if partitioned(node, s):
            roll = rng.random()
            if roll < 0.5:
                typ, lat = "fail", lat // 2
            elif roll < 0.65:
                typ, lat = "info", int(0.5 * NS)
        e = s + max(lat, 20_000)
        sims.append(_SimOp(p, f, key, value, s, e, s + rng.randrange(1, e - s), node, typ))
        clock[w] = e + rng.randrange(1, rate_gap)
        if typ == "info":
            pid[w] = p + processes  # a crashed process continues under a new id
    # linearize: apply ok (and half the info) ops at their linearization point
    state: dict[int, Any] = {}
    for o in sorted(sims, key=lambda o: o.lin):
        if o.type == "fail":
            continue
        cur = state.get(o.key)
        if o.f == "read":
            o.output = cur
        elif o.f == "write":
            if o.type == "ok" or rng.random() < 0.5:
                state[o.key] = o.value
            o.output = o.value
        elif o.f == "cas":
            if cur == o.value[0]:
                if o.type == "ok" or rng.random() < 0.5:
                    state[o.key] = o.value[1]
                o.output = o.value
            elif o.type == "ok":
                o.type = "fail"
    # plant a stale read: a read on a minority node that returns the value before a write
    planted: _SimOp | None = None
    if verdict == "invalid":
        planted = _plant_stale_read(sims, partitioned)
    if evil:
        for o in sims[10:14]:
            if o.f == "write" and o.type == "ok":
                o.value = o.output = EVIL
    ops = _events(sims, faults, evil)
    _write_test_json(run_dir, name, nodes, start_wall, duration, seed, evil)
    write_jsonl(ops, run_dir / "history.jsonl")
    _write_logs(run_dir, nodes, start_wall, duration, faults, unstamped_node, evil, rng)
    (run_dir / "dsjepsen.log").write_text(
        f"{start_wall.isoformat()} INFO dsjepsen: synthetic run {name}\n", encoding="utf-8"
    )
    if verdict != "interrupted":
        results = _results(sims, planted, verdict, evil)
        (run_dir / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    latest = run_dir.parent.parent / "latest"
    if latest.is_symlink() or not latest.exists():
        if latest.is_symlink():
            latest.unlink()
        latest.symlink_to(run_dir.relative_to(latest.parent))
    return run_dir


def _plant_stale_read(sims: list[_SimOp], partitioned: Any) -> _SimOp | None:
    by_key: dict[int, list[_SimOp]] = {}
    for o in sorted(sims, key=lambda o: o.lin):
        by_key.setdefault(o.key, []).append(o)
    for o in sims[len(sims) // 3 :]:
        if o.f != "read" or o.type != "ok" or not partitioned(o.node, o.start):
            continue
        history = [x for x in by_key[o.key] if x.lin < o.lin and x.type == "ok"]
        writes = [x for x in history if x.f == "write"]
        if len(writes) < 2 or writes[-1].end >= o.start:
            continue
        old = writes[-2].value
        if old == o.output:
            continue
        o.output = old
        return o
    return None


def _events(sims: list[_SimOp], faults: list[tuple[int, int, list[str], list[str]]], evil: bool):
    events: list[tuple[int, int, Op]] = []
    for n, o in enumerate(sims):
        o.id = n
        events.append(
            (o.start, 0, Op(0, o.start, o.process, "invoke", o.f, o.value, o.key, o.node))
        )
        err = None
        if o.type == "fail":
            err = EVIL if evil and n % 7 == 0 else "not leader"
        elif o.type == "info":
            err = "timeout"
        val = o.output if o.f == "read" else o.value
        events.append((o.end, 1, Op(0, o.end, o.process, o.type, o.f, val, o.key, o.node, err)))
    for s, e, mino, majo in faults:
        grudge = {n: majo for n in mino} | {n: mino for n in majo}
        desc = f"cut {', '.join(mino)} off from {', '.join(majo)}"
        if evil:
            desc += " " + EVIL
        done = {"fault": "partition-majority", "nodes": mino, "description": desc, "grudge": grudge}
        events.append((s, 0, Op(0, s, "nemesis", "invoke", "start-partition", None)))
        events.append(
            (s + 3_000_000, 1, Op(0, s + 3_000_000, "nemesis", "info", "start-partition", done))
        )
        heal = {"fault": "partition-majority", "nodes": [], "description": "healed the network"}
        events.append((e, 0, Op(0, e, "nemesis", "invoke", "stop-partition", None)))
        events.append(
            (e + 2_000_000, 1, Op(0, e + 2_000_000, "nemesis", "info", "stop-partition", heal))
        )
    events.sort(key=lambda x: (x[0], x[1]))
    ops = []
    for i, (_, _, op) in enumerate(events):
        op.index = i
        ops.append(op)
    for o in sims:
        o.call = -1
    idx_of_invoke: dict[int, int] = {}
    idx_of_ret: dict[int, int] = {}
    open_: dict[Any, int] = {}
    for op in ops:
        if op.process == "nemesis":
            continue
        if op.type == "invoke":
            open_[op.process] = op.index
        else:
            inv = open_.pop(op.process)
            idx_of_invoke[inv] = op.index
    call_of: dict[tuple[Any, int], int] = {}
    for op in ops:
        if op.process != "nemesis" and op.type == "invoke":
            call_of[(op.process, op.time)] = op.index
    for o in sims:
        o.call = call_of[(o.process, o.start)]
        ret = idx_of_invoke[o.call]
        idx_of_ret[o.id] = ret
        o.ret = ret if o.type != "info" else None
    return ops


def _opdict(o: _SimOp) -> dict[str, Any]:
    return {
        "id": o.id,
        "process": o.process,
        "f": o.f,
        "key": o.key,
        "value": o.value,
        "output": o.output,
        "type": o.type,
        "call": o.call,
        "ret": o.ret,
        "call_time": o.start,
        "ret_time": o.end if o.type != "info" else None,
    }


def _results(sims: list[_SimOp], planted: _SimOp | None, verdict: str, evil: bool):
    if verdict == "valid" or (verdict == "invalid" and planted is None):
        check = {
            "checker": "linearizable",
            "valid": True,
            "reason": None,
            "anomalies": [],
            "details": {},
        }
        return {"valid": True, "reason": None, "checks": {"linearizable": check}, "stats": {}}
    if verdict == "unknown":
        reason = "search exceeded its time budget (60 s) on key 2"
        check = {
            "checker": "linearizable",
            "valid": "unknown",
            "reason": reason,
            "anomalies": [],
            "details": {},
        }
        return {
            "valid": "unknown",
            "reason": reason,
            "checks": {"linearizable": check},
            "stats": {},
        }
    assert planted is not None
    same = sorted((o for o in sims if o.key == planted.key), key=lambda o: o.lin)
    before = [o for o in same if o.lin < planted.lin and o.type == "ok" and o.end < planted.start]
    prefix_ops = before[-6:]
    state = None
    prefix = []
    for o in prefix_ops:
        if o.f == "write":
            state = o.value
        elif o.f == "read":
            state = o.output
        elif o.f == "cas" and o.type == "ok":
            state = o.value[1]
        prefix.append({"op": _opdict(o), "state": str(state)})
    pending = [
        o for o in same if o.start <= planted.end and o.end >= planted.start and o is not planted
    ]
    window_ops = prefix_ops + pending + [planted]
    message = (
        f"read returned {planted.output}, but the register could only hold {state} at that point"
    )
    if evil:
        message += " " + EVIL + " </script><script>alert(2)</script>"
    anomaly = {
        "type": "nonlinearizable",
        "key": planted.key,
        "message": message,
        "op": _opdict(planted),
        "prefix": prefix,
        "pending": [_opdict(o) for o in pending],
        "states": [str(state)],
        "window": sorted({o.call for o in window_ops}),
    }
    check = {
        "checker": "linearizable",
        "valid": False,
        "reason": f"key {planted.key} is not linearizable",
        "anomalies": [anomaly],
        "details": {},
    }
    return {
        "valid": False,
        "reason": check["reason"],
        "checks": {"linearizable": check},
        "stats": {},
    }


def _write_test_json(
    run_dir: Path,
    name: str,
    nodes: list[str],
    start: datetime,
    duration: int,
    seed: int,
    evil: bool,
):
    test = {
        "name": name + (" " + EVIL if evil else ""),
        "argv": [
            "dsjepsen",
            "test",
            "--target",
            "raft-kv",
            "--bug",
            "stale-read",
            "--nemesis",
            "partition-majority",
            "--time-limit",
            str(duration // NS),
        ],
        "options": {
            "target": "raft-kv",
            "bugs": ["stale-read"],
            "workload": "register",
            "nemesis": ["partition-majority"],
        },
        "seed": seed,
        "nodes": nodes,
        "versions": {"dsjepsen": "0.1.0", "target": "raft-kv 0.1 (synthetic)"},
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(seconds=duration / NS)).isoformat(),
    }
    (run_dir / "test.json").write_text(json.dumps(test, indent=1), encoding="utf-8")


def _write_logs(run_dir, nodes, start, duration, faults, unstamped, evil, rng):
    for node in nodes:
        d = run_dir / "nodes" / node
        d.mkdir(parents=True, exist_ok=True)
        lines = []
        t = 0
        term = 1
        while t < duration:
            wall = start + timedelta(microseconds=t / 1000)
            in_fault = any(s <= t <= e and node in mino for s, e, mino, _ in faults)
            msg = "election timeout, starting election" if in_fault else "appended entries"
            if in_fault:
                term += 1
            if evil and t == 0:
                msg += " " + EVIL
            stamp = "" if node == unstamped else wall.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + " "
            lines.append(f"{stamp}INFO raft[{node}] term={term} {msg}")
            t += rng.randrange(100_000_000, 400_000_000)
        (d / "node.log").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# A transactional run: list-append transactions, one partition, a planted G-single


@dataclass
class _Txn:
    process: int
    node: str
    mops: list[list[Any]]
    start: int
    end: int
    type: str = "ok"


#: the keys of the planted anomaly (the background uses 0..keys-1)
PLANTED_KEYS = (100, 101)


def build_txn_run_dir(
    root: str | Path,
    *,
    n_txns: int = 300,
    processes: int = 5,
    node_count: int = 5,
    keys: int = 4,
    seed: int = 11,
    name: str = "synthetic-txn",
    consistency: str = "strict-serializable",
    partition: bool = True,
) -> Path:
    """A list-append run directory judged by the real list-append checker (results.json is
    its verdict, not a hand-written one).

    Background: each process is bound to node n(p+1); its transactions take effect atomically
    at a point inside their interval, in that order, so they are strictly serializable. One
    partition cuts the last two nodes off (from 1 s to 3 s); transactions through them fail
    half the time then (no effect). Planted inside the partition: T1 through n1 appends 2 to
    key 100 and 1 to key 101; then T2 through n4 (the minority side) reads key 101 = [1] and
    key 100 = [1]: it saw T1's append to 101 (T1 < T2, wr) and missed its append to 100
    (T2 < T1, rw): a G-single, read skew. Final reads of every key close the run. With
    `partition=False` the same history runs without any fault."""
    rng = random.Random(seed)
    nodes = [f"n{i + 1}" for i in range(node_count)]
    minority = nodes[-2:]
    majority = nodes[:-2]
    start_wall = datetime(2024, 5, 2, 9, 30, 0, tzinfo=UTC)
    run_dir = Path(root) / name / start_wall.strftime("%Y%m%dT%H%M%S")
    (run_dir / "nodes").mkdir(parents=True, exist_ok=True)
    part_s, part_e = 1 * NS, 3 * NS
    duration = 4 * NS
    gap = max(duration * processes // max(n_txns, 1), 1_000_000)
    txns: list[tuple[int, _Txn]] = []  # (linearization point, txn)
    clock = {p: rng.randrange(0, gap) for p in range(processes)}
    counters: dict[int, int] = {}
    for i in range(n_txns):
        p = i % processes
        node = nodes[p % node_count]
        s = clock[p]
        if s >= duration:
            continue
        e = s + rng.randrange(200_000, 3_000_000)
        mops: list[list[Any]] = []
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(keys)
            if rng.random() < 0.5:
                mops.append(["r", k, None])
            else:
                counters[k] = counters.get(k, 0) + 1
                mops.append(["append", k, counters[k]])
        cut = partition and part_s <= s <= part_e and node in minority
        t = _Txn(p, node, mops, s, e, "fail" if cut and rng.random() < 0.5 else "ok")
        txns.append((rng.randrange(s + 1, e), t))
        clock[p] = e + rng.randrange(1, gap)
    # the planted pair, on processes of their own (no background op runs beside them)
    k1, k2 = PLANTED_KEYS
    at = part_s + NS // 2
    planted = [
        (at + 50_000, _Txn(processes, nodes[0], [["append", k1, 1]], at, at + 100_000)),
        (
            at + 250_000,
            _Txn(
                processes,
                nodes[0],
                [["append", k1, 2], ["append", k2, 1]],
                at + 200_000,
                at + 300_000,
            ),
        ),
        (
            at + 450_000,
            _Txn(
                processes + 1,
                minority[0],
                [["r", k2, None], ["r", k1, None]],
                at + 400_000,
                at + 500_000,
            ),
        ),
    ]
    txns += planted
    state: dict[int, list[int]] = {}
    for _, t in sorted(txns, key=lambda x: x[0]):
        if t.type != "ok":
            continue
        done = []
        for f, k, v in t.mops:
            if f == "append":
                state.setdefault(k, []).append(v)
                done.append([f, k, v])
            else:
                done.append([f, k, list(state.get(k, []))])
        t.mops = done
    # the planted read skew: T2's read of key 100 misses T1's append
    planted[2][1].mops[1][2] = [1]
    # final reads through every node, after the heal, on fresh processes
    final_t = duration + NS // 2
    all_keys = sorted({*range(keys), *PLANTED_KEYS})
    finals = []
    for i, node in enumerate(nodes):
        s = final_t + i * 2_000_000
        mops = [["r", k, list(state.get(k, []))] for k in all_keys]
        finals.append(_Txn(processes + 2 + i, node, mops, s, s + 1_000_000))
    events: list[tuple[int, int, Op]] = []
    for _, t in txns:
        invoked = [[f, k, None if f == "r" else v] for f, k, v in t.mops]
        events.append(
            (t.start, 0, Op(0, t.start, t.process, "invoke", "txn", invoked, None, t.node))
        )
        value = t.mops if t.type == "ok" else invoked
        err = "not leader" if t.type == "fail" else None
        events.append((t.end, 1, Op(0, t.end, t.process, t.type, "txn", value, None, t.node, err)))
    grudge = {n: majority for n in minority} | {n: minority for n in majority}
    desc = f"cut {', '.join(minority)} off from {', '.join(majority)}"
    done = {"fault": "partition-majority", "nodes": minority, "description": desc, "grudge": grudge}
    heal = {"fault": "partition-majority", "nodes": [], "description": "healed the network"}
    events += (
        []
        if not partition
        else [
            (part_s, 0, Op(0, part_s, "nemesis", "invoke", "start-partition", None)),
            (
                part_s + 3_000_000,
                1,
                Op(0, part_s + 3_000_000, "nemesis", "ok", "start-partition", done),
            ),
            (part_e, 0, Op(0, part_e, "nemesis", "invoke", "stop-partition", None)),
            (
                part_e + 2_000_000,
                1,
                Op(0, part_e + 2_000_000, "nemesis", "ok", "stop-partition", heal),
            ),
        ]
    )
    final_events = []
    for t in finals:
        invoked = [["r", k, None] for _, k, _ in t.mops]
        final_events.append(
            (t.start, 0, Op(0, t.start, t.process, "invoke", "txn", invoked, None, t.node))
        )
        final_events.append((t.end, 1, Op(0, t.end, t.process, "ok", "txn", t.mops, None, t.node)))
    events.sort(key=lambda x: (x[0], x[1]))
    ops = [op for _, _, op in events]
    final_from = len(ops)
    ops += [op for _, _, op in sorted(final_events, key=lambda x: (x[0], x[1]))]
    for i, op in enumerate(ops):
        op.index = i
    write_jsonl(ops, run_dir / "history.jsonl")
    test = {
        "name": name,
        "argv": [
            "dsjepsen",
            "test",
            "--target",
            "raft-kv",
            "--workload",
            "list-append",
            "--bug",
            "txn-no-isolation",
            "--nemesis",
            "partition-majority",
            "--time-limit",
            "4",
        ],
        "options": {
            "target": "raft-kv",
            "bugs": ["txn-no-isolation"],
            "workload": "list-append",
            "nemesis": ["partition-majority"] if partition else [],
            "consistency": consistency,
        },
        "seed": seed,
        "nodes": nodes,
        "versions": {"dsjepsen": "0.1.0", "target": "raft-kv 0.1 (synthetic)"},
        "start_time": start_wall.isoformat(),
        "history_start_time": start_wall.isoformat(),
    }
    (run_dir / "test.json").write_text(json.dumps(test, indent=1), encoding="utf-8")
    (run_dir / "results.json").write_text(
        json.dumps(txn_results(run_dir / "history.jsonl", consistency, final_from), indent=1),
        encoding="utf-8",
    )
    return run_dir


def txn_results(history_path: Path, consistency: str, final_from: int | None) -> dict[str, Any]:
    """results.json as a run writes it: the real list-append checker composed with stats."""
    from dsjepsen import plugins
    from dsjepsen.checkers.base import CheckContext, run_checkers
    from dsjepsen.formats.jsonl import read_jsonl

    history = read_jsonl(history_path)
    context = CheckContext(consistency=consistency, final_from_index=final_from)
    checkers = [plugins.get("checkers", n)() for n in ("list-append", "stats")]
    composed, results = run_checkers(checkers, history, context)
    return {
        "valid": composed.valid,
        "reason": composed.reason,
        "checks": {r.checker: r.to_dict() for r in results},
        "stats": {},
        "final_reads_from_index": final_from,
    }
