"""Jepsen's bank workload: transfers between accounts, and reads of every account at once.

The bank starts with `accounts` accounts holding `total-amount` between them, set once before
the clients start by the workload's setup op `init-accounts` (value `{account: balance}`:
the total split evenly, the remainder to the first accounts). Then, half and half (Jepsen's
`(gen/mix [transfer read])`):

- `transfer` (value `{"from": a, "to": b, "amount": n}`, a != b, 1 <= n <= `max-transfer`):
  move n from a to b in one transaction; the client completes it `fail` with the error
  "insufficient funds" when a would go negative (unless `--negative-balances`);
- `read-accounts` (value None): read every account in one transaction; the ok completion is
  `{account: balance}` for every account.

After the heal every node reads all accounts once. Whatever order the transfers took effect
in, every read must have every account and sum to the total, with no negative balance (the
bank checker, dsjepsen/checkers/bank.py). Why this shape (Jepsen's `jepsen.tests.bank`):
the total is an invariant any serializable (indeed snapshot-isolated) store keeps across
concurrent transfers, so a read that breaks it shows a torn read, a lost or doubled transfer,
without the checker having to order anything. The op sequence is a function of the seed.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from dsjepsen.checkers.bank import INIT, TRANSFER, BankChecker
from dsjepsen.options import Option
from dsjepsen.workloads.base import OpSpec, Workload

if TYPE_CHECKING:
    from dsjepsen.checkers.base import Checker

READ_ACCOUNTS = "read-accounts"
#: accounts, at most: every read returns all of them
MAX_ACCOUNTS = 10_000


class BankWorkload(Workload):
    name = "bank"
    description = (
        "transfers between accounts and reads of every account (Jepsen's bank): every read "
        "has each account, sums to the total, no balance is negative"
    )
    needs = frozenset({INIT, TRANSFER, READ_ACCOUNTS})
    required_ok = {TRANSFER: 5, READ_ACCOUNTS: 5}
    options = (
        Option(
            "accounts",
            "int",
            8,
            "accounts in the bank (Jepsen's default: 8)",
            minimum=2,
            maximum=MAX_ACCOUNTS,
            metavar="N",
        ),
        Option(
            "total-amount",
            "int",
            100,
            "money in the bank, split between the accounts at the start",
            minimum=0,
            maximum=10**15,
            metavar="N",
        ),
        Option(
            "max-transfer",
            "int",
            5,
            "largest amount one transfer moves (each moves 1 to this)",
            minimum=1,
            maximum=10**15,
            metavar="N",
        ),
        Option(
            "negative-balances",
            "bool",
            False,
            "the store lets balances go negative: the checker allows them",
        ),
    )

    def __init__(
        self,
        *,
        seed: int,
        accounts: int = 8,
        total_amount: int = 100,
        max_transfer: int = 5,
        negative_balances: bool = False,
    ) -> None:
        if accounts < 2 or total_amount < 0 or max_transfer < 1:
            raise ValueError("a bank needs 2 accounts or more, a total >= 0, max-transfer >= 1")
        super().__init__(seed=seed)
        self.rng = random.Random(f"{seed}:{self.name}")
        self.accounts = accounts
        self.total = total_amount
        self.max_transfer = max_transfer
        self.negative_balances = negative_balances

    def initial_balances(self) -> dict[int, int]:
        """The total split evenly; the remainder, one each, to the first accounts."""
        share, rest = divmod(self.total, self.accounts)
        return {a: share + (1 if a < rest else 0) for a in range(self.accounts)}

    def setup_ops(self) -> list[OpSpec]:
        return [OpSpec(INIT, None, self.initial_balances())]

    def next_op(self) -> OpSpec:
        if self.rng.random() < 0.5:
            return OpSpec(READ_ACCOUNTS, None, None)
        src, dst = self.rng.sample(range(self.accounts), 2)
        amount = self.rng.randint(1, self.max_transfer)
        return OpSpec(TRANSFER, None, {"from": src, "to": dst, "amount": amount})

    def final_ops(self) -> list[OpSpec]:
        return [OpSpec(READ_ACCOUNTS, None, None)]

    def checkers(self) -> list[Checker]:
        return [BankChecker(negative_balances=self.negative_balances)]
