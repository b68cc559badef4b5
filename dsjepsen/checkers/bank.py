"""Jepsen's bank checker: transfers between accounts never create or destroy money.

A bank history has `transfer` ops (value `{"from": a, "to": b, "amount": n}`) and reads of
every account in one transaction (`read-accounts` here, `:read` in Jepsen's EDN histories,
whose ok value is `{account: balance}`). Whatever order the transfers took effect in, a
snapshot of all accounts sums to the total that was put in at the start; a read that does not
is a read of no state the bank was ever in (a torn read, a lost or doubled transfer). Like
Jepsen's `jepsen.tests.bank/checker`, every ok read is judged on its own:

- it has a balance for every account (Jepsen's `:nil-balance`; and no account the bank never
  had: `:unexpected-key`),
- its balances sum to the total (`:wrong-total`),
- no balance is negative (`:negative-value`), unless the workload allows negative balances.

Where the accounts and the total come from, in order: `--initial` (a JSON object
`{account: balance}`, or a number, the total alone); the history's ok `init-accounts` op (the
bank workload's setup op); else, for a history that says neither (Jepsen's EDN histories do
not), they are inferred and the result says so: the accounts are every account an ok read or
a transfer names, the total the sum most ok reads with every account agree on (a correct bank
gives one sum only, so any read that disagrees is still a violation: at least one of the two
sums is wrong, and the checker names the minority).

In JSON, account keys are strings ("0"); they are read back as integers when they are
integers' digits, so `{"0": 10}` and Jepsen's `{0 10}` name the same account. Each violation
names its read op, the process and node, its invocation and completion time and the faults in
effect while it ran (the fault records of the history, `dsjepsen/faults.py`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

from dsjepsen.checkers.base import CheckContext, Checker
from dsjepsen.checkers.models import NOT_GIVEN
from dsjepsen.checkers.result import CheckResult
from dsjepsen.errors import InputError
from dsjepsen.faults import FaultWindow, windows
from dsjepsen.history import History, Operation

INIT, TRANSFER = "init-accounts", "transfer"
#: the read of every account: ours, and Jepsen's `:read`
READS = ("read-accounts", "read")
#: violations listed per kind (all are counted)
MAX_LISTED = 100
_INT = re.compile(r"-?\d+")
NS = 1_000_000_000


def account(k: Any) -> Any:
    """An account as the checker compares them: JSON's "3" and EDN's 3 are account 3."""
    if isinstance(k, str) and _INT.fullmatch(k):
        return int(k)
    return k


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _balances(o: Operation, value: Any, what: str, source: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        line = f" (line {o.complete.line})" if o.complete is not None and o.complete.line else ""
        raise InputError(
            f"bank: {what} op {o.id}{line} has value {str(value)[:80]}, not a map of account "
            "balances",
            source,
        )
    return {account(k): v for k, v in value.items()}


def _transfer(o: Operation, source: str) -> tuple[Any, Any, Any]:
    v = o.value
    if not isinstance(v, Mapping) or not {"from", "to", "amount"} <= set(v):
        raise InputError(
            f"bank: transfer op {o.id} has value {str(v)[:80]}, not {{from, to, amount}}", source
        )
    return account(v["from"]), account(v["to"]), v["amount"]


class BankChecker(Checker):
    """Every ok read of all accounts has every account, sums to the total, and (unless
    `negative_balances`) has no negative balance."""

    name: ClassVar[str] = "bank"
    description: ClassVar[str] = (
        "Jepsen's bank: every read of all accounts has each account, sums to the total, and "
        "no balance is negative"
    )
    needs: ClassVar[tuple[frozenset[str], ...]] = (
        frozenset({"read-accounts"}),
        frozenset({"read", "transfer"}),
    )

    def __init__(self, negative_balances: bool = False) -> None:
        self.negative_balances = negative_balances

    def validate_input(self, history: History, context: CheckContext) -> None:
        super().validate_input(history, context)
        self._facts(history, context)

    def _facts(self, history: History, context: CheckContext) -> dict[str, Any]:
        """Everything the verdict is computed from; InputError for what no bank history is."""
        source = history.source
        ops = [o for o in history.operations() if o.f in (INIT, TRANSFER, *READS)]
        reads = [
            (o, _balances(o, o.output, o.f, source)) for o in ops if o.f in READS and o.type == "ok"
        ]
        transfers = [(o, _transfer(o, source)) for o in ops if o.f == TRANSFER]
        inits = [o for o in ops if o.f == INIT and o.type == "ok"]
        accounts: list[Any] | None = None
        total: Any = None
        given = context.initial
        if isinstance(given, Mapping):
            init = {account(k): v for k, v in given.items()}
            accounts, total, how = list(init), sum(init.values()), "--initial"
        elif _number(given):
            total, how = given, "--initial (the total alone)"
        elif given is not NOT_GIVEN and given is not None:
            raise InputError(
                "bank: --initial must be a JSON object {account: balance} or a number (the "
                f"total), not {str(given)[:80]}",
                source,
            )
        elif inits:
            init = _balances(inits[0], inits[0].value, INIT, source)
            accounts, total = list(init), sum(v for v in init.values() if _number(v))
            how = f"the init-accounts op (op {inits[0].id})"
        else:
            how = ""
        if accounts is None:
            named = {a for _, r in reads for a in r}
            named |= {x for _, (f, t, _a) in transfers for x in (f, t)}
            accounts = sorted(named, key=lambda a: (not isinstance(a, int), str(a)))
        if total is None:
            sums = Counter(
                sum(r.values())
                for _, r in reads
                if set(accounts) <= set(r) and all(_number(v) for v in r.values())
            )
            if sums:
                # the most common sum; on a tie, the first read's
                top = max(sums.values())
                firsts = [
                    sum(r.values())
                    for _, r in reads
                    if set(accounts) <= set(r) and all(_number(v) for v in r.values())
                ]
                total = next(s for s in firsts if sums[s] == top)
                how = (
                    f"inferred: the sum {sums[total]} of the {sum(sums.values())} complete ok "
                    "reads agree on (the history records no initial balances; pass --initial)"
                )
        return {
            "reads": reads,
            "transfers": transfers,
            "accounts": accounts,
            "total": total,
            "total_from": how,
        }

    def check(self, history: History, context: CheckContext) -> CheckResult:
        facts = self._facts(history, context)
        # `dsjepsen check --negative-balances` says it through the context
        allow_negative = self.negative_balances or bool(context.extra.get("negative_balances"))
        reads = facts["reads"]
        accounts = facts["accounts"]
        total = facts["total"]
        faults, _events = windows(history.ops)
        known = set(accounts)
        counts: Counter[str] = Counter()
        bad_reads = 0
        anomalies: list[dict[str, Any]] = []
        first: dict[str, int] = {}
        strict_accounts = not facts["total_from"].startswith("inferred")
        for o, r in reads:
            found: list[tuple[str, str, dict[str, Any]]] = []
            missing = [a for a in accounts if a not in r or r[a] is None]
            if missing:
                found.append(
                    (
                        "missing-account",
                        f"has no balance for account{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(map(str, missing))}",
                        {"missing": missing},
                    )
                )
            extra = sorted((a for a in r if a not in known), key=str) if strict_accounts else []
            if extra:
                found.append(
                    (
                        "unexpected-account",
                        f"has account{'s' if len(extra) > 1 else ''} the bank never had: "
                        f"{', '.join(map(str, extra))}",
                        {"unexpected": extra},
                    )
                )
            bad = {a: v for a, v in r.items() if v is not None and not _number(v)}
            if bad:
                found.append(
                    ("bad-balance", f"has balances that are not numbers: {bad}", {"bad": bad})
                )
            if not missing and not bad and total is not None:
                got = sum(r.values())
                if got != total:
                    found.append(
                        (
                            "wrong-total",
                            f"sums to {got}, not the total {total} ({got - total:+})",
                            {"sum": got, "total": total},
                        )
                    )
            negative = {a: v for a, v in r.items() if _number(v) and v < 0}
            if negative and not allow_negative:
                found.append(
                    (
                        "negative-balance",
                        "has negative balance"
                        + ("s " if len(negative) > 1 else " ")
                        + ", ".join(f"{a}: {v}" for a, v in negative.items()),
                        {"negative": negative},
                    )
                )
            bad_reads += 1 if found else 0
            for kind, what, extra_fields in found:
                counts[kind] += 1
                first.setdefault(kind, o.id)
                if counts[kind] > MAX_LISTED:
                    continue
                anomalies.append(self._anomaly(o, r, kind, what, extra_fields, faults))
        transfers = Counter(o.type for o, _ in facts["transfers"])
        details: dict[str, Any] = {
            "accounts": accounts,
            "total": total,
            "total_from": facts["total_from"],
            "negative_balances": allow_negative,
            "read_count": len(reads),
            "bad_read_count": bad_reads,
            "error_count": sum(counts.values()),
            "errors": {k: {"count": n, "first_op": first[k]} for k, n in sorted(counts.items())},
            "transfers": {t: transfers.get(t, 0) for t in ("ok", "fail", "info")},
            "max_listed_per_kind": MAX_LISTED,
        }
        if anomalies:
            kinds = ", ".join(f"{k} ({n})" for k, n in sorted(counts.items()))
            return CheckResult(
                self.name,
                False,
                f"{bad_reads} bad read{'' if bad_reads == 1 else 's'} of {len(reads)}: {kinds}",
                anomalies,
                details,
            )
        if not reads:
            return CheckResult(
                self.name, "unknown", "no read of the accounts completed ok", [], details
            )
        if total is None:
            return CheckResult(
                self.name,
                "unknown",
                "no read had every account, so the total could not be inferred (pass --initial)",
                [],
                details,
            )
        return CheckResult(self.name, True, None, [], details)

    def _anomaly(
        self,
        o: Operation,
        r: dict[Any, Any],
        kind: str,
        what: str,
        fields: dict[str, Any],
        faults: list[FaultWindow],
    ) -> dict[str, Any]:
        """One bad read: the op, where and when it ran, the faults in effect meanwhile."""
        end = o.complete.index if o.complete is not None else None
        active = [
            w
            for w in faults
            if not w.failed
            and w.start_index <= (end if end is not None else o.call)
            and (w.end_index is None or w.end_index >= o.call)
        ]
        where = [f"process {o.process}"]
        if o.node:
            where.append(f"node {o.node}")
        if o.invoke is not o.complete:
            where.append(f"invoked t+{o.invoke.time / NS:.3f}s")
        if o.complete is not None:
            where.append(f"completed t+{o.complete.time / NS:.3f}s")
        where.append(
            "during " + "; ".join(w.description for w in active) if active else "no fault active"
        )
        balances = ", ".join(f"{a}: {v}" for a, v in r.items())
        return {
            "type": kind,
            "message": f"read op {o.id} ({', '.join(where)}) {what}; it read {{{balances}}}",
            "op_id": o.id,
            "index": end,
            "process": o.process,
            "node": o.node,
            "call_time": o.invoke.time if o.invoke is not o.complete else None,
            "ret_time": o.complete.time if o.complete is not None else None,
            "faults": [w.description for w in active],
            "read": {str(a): v for a, v in r.items()},
            **{k: v for k, v in fields.items()},
        }
