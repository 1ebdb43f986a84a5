"""The settlement's hot-path writes, as data: what :mod:`~LLM_Mesh.registry.settle_db`'s
writers (``settle_db_sqlite.py``, ``settle_db_pg.py``) run, in order, in **one** transaction
per batch, and what they answer.

- :class:`Reserve`: if the payer's ``balance - reserved`` covers the estimate, add it to
  ``reserved`` and write the request's ``pending`` row (part 0) — one conditional
  ``UPDATE`` of the payer's ``balances`` row (its row lock on PostgreSQL, the database's
  write lock on SQLite), so concurrent reservations from any number of processes never
  overspend. The result (:class:`Reserved`) says whether, and the balance it saw.
- :class:`Answer`: ``pending`` → ``answered`` with each part's exact amount and fee
  (part 0 updated, parts 1... inserted); ``reserved`` drops from the estimate to the
  exact total. ``False`` when the row was not pending (voided meanwhile: nothing written).
- :class:`Void`: ``pending`` → ``void``; the estimate is released. Idempotent.
- :class:`LeaseOp`: a lease's write (``registry/settle_lease.py``).

Payer rows are locked in account order within a batch (:func:`in_payer_order`: the batch
sorted by payer, keeping each request's own operations in order), as the ledger's appends
do, so two transactions never wait for each other in a cycle.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from LLM_Mesh.core.once import cached_property

__all__ = [
    "Answer", "LeaseOp", "Op", "PaidPart", "Reserve", "Reserved", "SettleDb", "Void",
    "in_payer_order",
]  # fmt: skip


@dataclass(frozen=True)
class Reserve:
    key: str  # the settlement's request id (settlements.request_id)
    payer: str
    model: str
    estimate: int


@dataclass(frozen=True)
class PaidPart:
    """One node's part of an answered request: what the payer pays it (fee included)."""

    node_id: str
    operator: str | None  # the operator's ledger account; None: not known yet
    amount: int
    fee: int


@dataclass(frozen=True)
class Answer:
    key: str
    payer: str
    model: str
    estimate: int
    parts: tuple[PaidPart, ...]  # at least one, amounts > 0
    receipt_hash: str | None = None

    @cached_property  # read by the write, the lease's book and the settler: summed once
    def total(self) -> int:
        return sum(p.amount for p in self.parts)


@dataclass(frozen=True)
class Void:
    key: str
    payer: str


class LeaseOp(Protocol):
    """A lease's write (``registry/settle_lease.py``): run in the batch's transaction by
    ``SqliteSettleDb`` (``one``: a plain op's runner) or as rows of 0015's function."""

    @property
    def payer(self) -> str: ...

    def sqlite(self, conn: sqlite3.Connection, holder: str, now: str, one: Any) -> Any: ...

    def pg_rows(self, row: Callable[..., None]) -> None: ...

    def pg_result(self, r: Any) -> Any: ...


Op = Reserve | Answer | Void | LeaseOp


@dataclass(frozen=True)
class Reserved:
    """A reservation's outcome and the payer's balance as the transaction saw it."""

    ok: bool
    balance: int
    reserved: int

    @property
    def available(self) -> int:
        return self.balance - self.reserved


class SettleDb(Protocol):
    async def open(self) -> None: ...

    async def apply(
        self, ops: Sequence[Op], holder: str, now: datetime
    ) -> list[Reserved | bool | None]:
        """Run ``ops`` in one transaction; per op: :class:`Reserved` (reserve), whether it
        was recorded (answer), ``None`` (void)."""
        ...

    async def close(self) -> None: ...


def in_payer_order(ops: Sequence[Op]) -> list[int]:
    """The order to run ``ops`` in: by payer (lock order), each payer's ops as given."""
    return sorted(range(len(ops)), key=lambda i: ops[i].payer)
