"""Issue 27 part 2: Jepsen's bank workload and checker, and the workloads' setup ops.

The checker is judged on hand-written histories whose verdict is known by construction: a
correct bank simulated transfer by transfer (valid), then the same history with one read made
wrong in one way each (wrong total, negative balance, missing account, an account the bank
never had); Jepsen-style EDN histories without initial balances (total inferred, or given with
--initial); and bad input, which is one line and exit 254. The setup-op hook runs a real
in-process bank through the harness's own recorder and interpreter.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dsjepsen.checkers.bank import BankChecker
from dsjepsen.checkers.base import CheckContext
from dsjepsen.errors import HarnessError
from dsjepsen.formats import read_history
from dsjepsen.harness import phases
from dsjepsen.harness.interpreter import Interpreter
from dsjepsen.harness.recorder import Recorder
from dsjepsen.history import History, Op, write_jsonl
from dsjepsen.workloads.bank import BankWorkload

NS = 1_000_000_000


def bank_history(
    seed: int = 3, n: int = 200, accounts: int = 8, total: int = 100
) -> tuple[list[Op], list[int]]:
    """A correct bank's history in dsjepsen's JSONL shape, as a run records it: the
    init-accounts setup op, transfers and reads on 4 processes bound to n1..n4, each taking
    effect atomically at its completion; one partition record around the middle. Returns the
    ops and the indices of the ok reads' completions."""
    rng = random.Random(seed)
    wl = BankWorkload(seed=seed, accounts=accounts, total_amount=total)
    balances = wl.initial_balances()
    ops: list[Op] = []
    t = 0

    def add(
        process: Any, typ: str, f: str, value: Any, node: str | None = None, err: Any = None
    ) -> Op:
        nonlocal t
        t += rng.randrange(100_000, 2_000_000)
        op = Op(len(ops), t, process, typ, f, value, None, node, err)
        ops.append(op)
        return op

    # the setup op, as phases.setup_ops records it (JSON turns the account keys into strings)
    init = {str(a): b for a, b in balances.items()}
    add(4, "invoke", "init-accounts", init, "n1")
    add(4, "ok", "init-accounts", init, "n1")
    reads = []
    for i in range(n):
        p = i % 4
        node = f"n{p + 1}"
        if i == n // 3:
            add("nemesis", "invoke", "start-partition", None)
            grudge = {"n4": ["n1", "n2", "n3"], "n1": ["n4"], "n2": ["n4"], "n3": ["n4"]}
            desc = "cut n4 off from n1, n2, n3"
            add("nemesis", "info", "start-partition",
                {"fault": "partition-majority", "nodes": ["n4"], "description": desc, "grudge": grudge})  # fmt: skip
        if i == 2 * n // 3:
            add("nemesis", "invoke", "stop-partition", None)
            add("nemesis", "info", "stop-partition",
                {"fault": "partition-majority", "nodes": [], "description": "healed the network"})  # fmt: skip
        spec = wl.next_op()
        add(p, "invoke", spec.f, spec.value, node)
        if spec.f == "transfer":
            v = spec.value
            if balances[v["from"]] < v["amount"]:
                add(p, "fail", "transfer", v, node, "insufficient funds")
            else:
                balances[v["from"]] -= v["amount"]
                balances[v["to"]] += v["amount"]
                add(p, "ok", "transfer", v, node)
        else:
            reads.append(
                add(p, "ok", "read-accounts", {str(a): b for a, b in balances.items()}, node).index
            )
    return ops, reads


def check(ops: list[Op], **extra: Any) -> Any:
    history = History(ops, "bank.jsonl")
    checker = BankChecker(negative_balances=extra.pop("negative_balances", False))
    context = CheckContext(initial=extra.pop("initial", CheckContext().initial), extra=extra)
    checker.validate_input(history, context)
    return checker.check(history, context)


def replace_value(ops: list[Op], index: int, value: Any) -> list[Op]:
    import dataclasses

    out = list(ops)
    out[index] = dataclasses.replace(out[index], value=value)
    return out


def test_a_correct_bank_is_valid_and_the_total_comes_from_the_setup_op() -> None:
    ops, reads = bank_history()
    r = check(ops)
    assert r.valid is True, r.reason
    assert r.details["total"] == 100 and r.details["accounts"] == list(range(8))
    assert r.details["total_from"] == "the init-accounts op (op 0)"
    assert r.details["read_count"] == len(reads) > 50
    assert r.details["transfers"]["ok"] > 20 and r.details["transfers"]["fail"] >= 0


def test_wrong_total_names_the_read_its_node_time_and_fault() -> None:
    ops, reads = bank_history()
    # a read inside the partition, through the cut-off node n4
    start = next(o.index for o in ops if o.f == "start-partition" and o.type == "info")
    stop = next(o.index for o in ops if o.f == "stop-partition" and o.type == "invoke")
    bad = next(i for i in reads if start < i < stop and ops[i].node == "n4")
    value = dict(ops[bad].value)
    value["0"] += 7  # money from nowhere: a doubled transfer
    r = check(replace_value(ops, bad, value))
    assert r.valid is False
    [a] = r.anomalies
    assert a["type"] == "wrong-total" and a["sum"] == 107 and a["total"] == 100
    assert a["node"] == "n4" and a["index"] == bad
    assert a["faults"] == ["cut n4 off from n1, n2, n3"]
    assert f"completed t+{ops[bad].time / NS:.3f}s" in a["message"]
    assert "during cut n4 off from n1, n2, n3" in a["message"]
    assert "sums to 107, not the total 100 (+7)" in a["message"]
    assert r.details["errors"] == {"wrong-total": {"count": 1, "first_op": a["op_id"]}}
    # outside the partition: no fault named
    calm = next(i for i in reads if i < start)
    value = dict(ops[calm].value)
    value["1"] -= 1
    [b] = check(replace_value(ops, calm, value)).anomalies
    assert b["faults"] == [] and "no fault active" in b["message"]


def test_negative_balances_unless_allowed() -> None:
    ops, reads = bank_history()
    value = dict(ops[reads[5]].value)
    value["0"], value["1"] = value["0"] + value["1"] + 3, -3  # the total still holds
    bad = replace_value(ops, reads[5], value)
    r = check(bad)
    assert r.valid is False and [a["type"] for a in r.anomalies] == ["negative-balance"]
    assert r.anomalies[0]["negative"] == {1: -3}
    assert check(bad, negative_balances=True).valid is True
    # a read wrong two ways is one bad read with two errors
    value["2"] += 1
    both = check(replace_value(ops, reads[5], value))
    assert sorted(a["type"] for a in both.anomalies) == ["negative-balance", "wrong-total"]
    assert both.details["bad_read_count"] == 1 and both.details["error_count"] == 2
    assert both.reason.startswith("1 bad read of ")


def test_a_read_missing_an_account_or_with_a_stranger() -> None:
    ops, reads = bank_history()
    value = dict(ops[reads[3]].value)
    del value["7"]
    r = check(replace_value(ops, reads[3], value))
    assert r.valid is False and [a["type"] for a in r.anomalies] == ["missing-account"]
    assert r.anomalies[0]["missing"] == [7]
    value = dict(ops[reads[3]].value)
    value["7"] = None  # Jepsen's :nil-balance
    assert check(replace_value(ops, reads[3], value)).anomalies[0]["type"] == "missing-account"
    value = dict(ops[reads[3]].value)
    value["9"] = 0
    r = check(replace_value(ops, reads[3], value))
    assert [a["type"] for a in r.anomalies] == ["unexpected-account"]


EDN = """{:type :invoke, :f :read, :value nil, :process 0, :time 1}
{:type :ok, :f :read, :value {0 10, 1 90}, :process 0, :time 2}
{:type :invoke, :f :transfer, :value {:from 0, :to 1, :amount 5}, :process 1, :time 3}
{:type :ok, :f :transfer, :value {:from 0, :to 1, :amount 5}, :process 1, :time 4}
{:type :invoke, :f :read, :value nil, :process 0, :time 5}
{:type :ok, :f :read, :value {0 5, 1 95}, :process 0, :time 6}
{:type :invoke, :f :transfer, :value {:from 0, :to 1, :amount 9}, :process 1, :time 7}
{:type :fail, :f :transfer, :value {:from 0, :to 1, :amount 9}, :process 1, :time 8, :error :insufficient-funds}
{:type :invoke, :f :read, :value nil, :process 2, :time 9}
{:type :ok, :f :read, :value {0 5, 1 95}, :process 2, :time 10}
"""


def dsj(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsjepsen", *args], capture_output=True, text=True, timeout=120
    )


def test_jepsen_edn_histories_infer_the_total_and_say_so(tmp_path: Path) -> None:
    good = tmp_path / "bank.edn"
    good.write_text(EDN, encoding="utf-8")
    history = read_history(good)
    r = check(history.ops)
    assert r.valid is True
    assert r.details["total"] == 100 and r.details["accounts"] == [0, 1]
    assert r.details["total_from"].startswith("inferred: the sum 3 of the 3 complete ok reads")
    # one read off: the sum most reads agree on stands, the other read is the violation
    bad = tmp_path / "bad.edn"
    bad.write_text(
        EDN.replace("{0 5, 1 95}, :process 2", "{0 5, 1 96}, :process 2"), encoding="utf-8"
    )
    proc = dsj("check", str(bad))  # the checker inferred from the ops
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith(f"{bad}: INVALID (bank)")
    assert "total 100 (from inferred" in proc.stdout
    assert "wrong-total: read op 4 (process 2" in proc.stdout and "sums to 101" in proc.stdout
    # the total given: the two reads that sum to 100 are wrong against a total of 101
    proc = dsj("check", str(bad), "--checker", "bank", "--initial", "101")
    assert proc.returncode == 1 and proc.stdout.count("wrong-total: ") == 2, proc.stdout
    proc = dsj("check", str(good), "--checker", "bank", "--initial", '{"0": 50, "1": 50}')
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda s: s.replace("{0 5, 1 95}, :process 0", ":oops, :process 0"),
            "not a map of account balances",
        ),
        (
            lambda s: s.replace("{:from 0, :to 1, :amount 9}", "{:from 0, :to 1}"),
            "not {from, to, amount}",
        ),
    ],
)
def test_bad_input_is_one_line_and_254(tmp_path: Path, edit: Any, problem: str) -> None:
    path = tmp_path / "bad.edn"
    path.write_text(edit(EDN), encoding="utf-8")
    proc = dsj("check", str(path), "--checker", "bank")
    assert proc.returncode == 254, proc.stdout + proc.stderr
    assert problem in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    good = tmp_path / "good.edn"
    good.write_text(EDN, encoding="utf-8")
    proc = dsj("check", str(good), "--checker", "bank", "--initial", '"lots"')
    assert proc.returncode == 254 and "--initial must be" in proc.stderr


def test_the_workload_is_jepsens_and_a_function_of_its_seed() -> None:
    wl = BankWorkload(seed=9, accounts=3, total_amount=100, max_transfer=5)
    [init] = wl.setup_ops()
    assert init.f == "init-accounts" and init.value == {0: 34, 1: 33, 2: 33}
    ops = [wl.next_op() for _ in range(2000)]
    again = BankWorkload(seed=9, accounts=3, total_amount=100, max_transfer=5)
    assert ops == [again.next_op() for _ in range(2000)]
    transfers = [o.value for o in ops if o.f == "transfer"]
    assert 800 < len(transfers) < 1200
    assert all(t["from"] != t["to"] and 1 <= t["amount"] <= 5 for t in transfers)
    assert {t["amount"] for t in transfers} == {1, 2, 3, 4, 5}
    assert {o.f for o in ops} == {"transfer", "read-accounts"}
    assert BankWorkload(seed=1).initial_balances() == dict.fromkeys(range(8), 12) | {
        0: 13,
        1: 13,
        2: 13,
        3: 13,
    }
    assert [c.name for c in wl.checkers()] == ["bank"]


class InMemoryBank:
    """A bank in this process, behind the Client contract: what a target's client does
    against a real store, without the store (the setup-op path is the harness's, not the
    store's). `refuse` makes init-accounts fail as a store that cannot create them would."""

    def __init__(self, refuse: bool = False) -> None:
        self.balances: dict[int, int] = {}
        self.refuse = refuse
        self.closed = 0

    def invoke(self, op: Op) -> Op:
        import dataclasses

        if op.f == "init-accounts":
            if self.refuse:
                return dataclasses.replace(op, type="fail", error="table missing")
            self.balances = dict(op.value)
            return dataclasses.replace(op, type="ok")
        return dataclasses.replace(op, type="ok", value=dict(self.balances))

    def close(self) -> None:
        self.closed += 1


def setup_ctx(tmp_path: Path, client: InMemoryBank) -> Any:
    recorder = Recorder(tmp_path / "history.jsonl")
    ctx = SimpleNamespace(
        workload=BankWorkload(seed=1, accounts=4, total_amount=10),
        cluster=SimpleNamespace(names=["n1", "n2", "n3"]),
        target=SimpleNamespace(client=lambda cluster, node: client),
        recorder=recorder,
        interpreter=Interpreter(recorder),
    )
    ctx.new_process = itertools.count(3).__next__  # the workers have 0..2
    return ctx


def test_setup_ops_run_once_through_one_client_before_the_workers(tmp_path: Path) -> None:
    bank = InMemoryBank()
    ctx = setup_ctx(tmp_path, bank)
    phases.setup_ops(ctx)
    ctx.recorder.close()
    assert bank.balances == {0: 3, 1: 3, 2: 2, 3: 2} and bank.closed == 1
    ops = read_history(tmp_path / "history.jsonl").ops
    assert [(o.type, o.f, o.process, o.node) for o in ops] == [
        ("invoke", "init-accounts", 3, "n1"),
        ("ok", "init-accounts", 3, "n1"),
    ]  # a process of its own (the workers have 0..2), on the first node
    assert ops[1].value == {"0": 3, "1": 3, "2": 2, "3": 2}


def test_a_setup_op_that_fails_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    bank = InMemoryBank(refuse=True)
    ctx = setup_ctx(tmp_path, bank)
    with pytest.raises(
        HarnessError, match=r"setup op init-accounts through n1 ended fail \(table missing\)"
    ):
        phases.setup_ops(ctx)
    ctx.recorder.close()
    assert bank.closed == 1
    assert [o.type for o in read_history(tmp_path / "history.jsonl").ops] == ["invoke", "fail"]


def test_no_target_speaks_bank_yet(tmp_path: Path) -> None:
    proc = dsj("test", "--target", "raft-kv", "--workload", "bank", "--time-limit", "5",
               "--store", str(tmp_path))  # fmt: skip
    assert proc.returncode == 254, proc.stderr
    assert "bank" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_bank_history_round_trips_through_jsonl(tmp_path: Path) -> None:
    ops, _ = bank_history(n=40)
    write_jsonl(ops, tmp_path / "h.jsonl")
    proc = dsj("check", str(tmp_path / "h.jsonl"), "--checker", "bank", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["details"]["total_from"] == "the init-accounts op (op 0)"


def test_a_bad_read_on_the_report_and_in_the_rca(tmp_path: Path) -> None:
    """The report places a bank violation like any anomaly: its read op, the node, the time
    and the fault in effect, and the RCA states the bank's invariant."""
    from dsjepsen.reports.html import render_check_report

    ops, reads = bank_history()
    start = next(o.index for o in ops if o.f == "start-partition" and o.type == "info")
    bad = next(i for i in reads if i > start and ops[i].node == "n4")
    value = dict(ops[bad].value)
    value["3"] -= 2
    history = History(replace_value(ops, bad, value), "bank.jsonl")
    result = check(history.ops)
    out = render_check_report(history, result, tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    first = page.split('id="first-anomaly"', 1)[1].split("</section>", 1)[0]
    op_id = result.anomalies[0]["op_id"]
    assert f'data-op="{op_id}"' in first and "wrong-total" in first
    assert "sums to 98, not the total 100 (-2)" in first
    row = page.split('id="anomaly-1"', 1)[1].split("</summary>", 1)[0]
    assert "n4" in row and "cut n4 off from n1, n2, n3" in row
    assert "every read of all accounts (one transaction) sums to the total" in page
    assert "anomaly on no keys" not in page and "checker bank: 1 anomaly<" in page.replace(
        "</td>", "<"
    )
