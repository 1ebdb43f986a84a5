"""Settlement's reservation leases in the database (``settle_leases``, migration 0015).

The hot-path writes of a request admitted against a lease (``core/lease_book.py`` keeps the
leases in memory; ``registry/settlement.py`` decides which write a request needs), each
run in the batch's one transaction by ``registry/settle_db.py``:

- :class:`Take`: grow the holder's lease on the payer by ``grow`` if the payer's available
  balance (``balance - reserved``) covers ``grow + margin`` (the same conditional
  ``UPDATE`` as a reservation's, then the lease's row, made or added to), and admit the
  request from it; else reserve the request alone (its ``pending`` row, as
  :class:`~LLM_Mesh.registry.settle_ops.Reserve`). Result: :class:`Taken`.
- :class:`Spend`: the answer's rows, ``answered`` with their exact parts, and its total
  moved from the lease to them (``settle_leases.amount -= total`` when the lease still has
  it; ``reserved`` unchanged). When the lease is gone (recovery released it: this holder
  was taken for dead) or short, the total is reserved from the payer's available balance
  instead, as a lapsed answer is revived, or nothing is written (unpaid). Result:
  :class:`Spent`. One that fails is written again off the hot path, once
  (``settle_ledger.spend_again``): never as a ``Spend`` again, whose rows would collide.
- :class:`Give`: the lease handed back: its row deleted, its amount released.

So a payer's ``reserved`` is always its pending estimates + answered (unsettled) totals +
leases, and every write that raises it is conditional on the available balance: the
holders together never reserve more than a balance. :func:`release_leases` is recovery's
part (a dead holder's leases released, ``registry/settle_upkeep.py``);
:func:`release_unknown_leases` the upkeep's (a live holder's lease rows its book does not
know: a take committed after its lease went back). On PostgreSQL the
same writes are kinds of migration 0015's batch function (``take``, ``spend``, ``give``:
each op's ``pg_rows`` and ``pg_result``, sent by ``PgSettleDb``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.lease_book import Lease, LeaseBook
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.settle_db import Answer, Reserve, Reserved
from LLM_Mesh.registry.settle_ledger import release

__all__ = [
    "Give", "Spend", "Spent", "Take", "Taken", "lease_wrote", "release_leases",
    "release_unknown_leases",
]  # fmt: skip

_GROW = (
    "UPDATE balances SET reserved = reserved + ? "
    "WHERE account = ? AND balance - reserved >= ? RETURNING balance, reserved"
)
_LEASE = (
    "INSERT INTO settle_leases (lease_id, holder, payer, amount) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (lease_id) DO UPDATE SET amount = settle_leases.amount + excluded.amount"
)
_DRAW = "UPDATE settle_leases SET amount = amount - ? WHERE lease_id = ? AND amount >= ? "
_RESERVE = (
    "UPDATE balances SET reserved = reserved + ? WHERE account = ? AND balance - reserved >= ?"
)
_ROW = (
    "INSERT INTO settlements (request_id, part, payer, node_id, operator, model, estimate, "
    "amount, fee, state, receipt_hash, created_at, updated_at, holder) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'answered', ?, ?, ?, ?)"
)
_GIVE = "DELETE FROM settle_leases WHERE lease_id = ? RETURNING payer, amount"
_RELEASE = "UPDATE balances SET reserved = reserved - ? WHERE account = ?"

One = Callable[[sqlite3.Connection, Any, str, str], Any]  # SqliteSettleDb._one


@dataclass(frozen=True)
class Taken(Reserved):
    """A take's outcome: ``grew`` (the lease grew by it and admits the request) or
    ``None`` (the request was reserved alone: ``ok`` says whether)."""

    grew: int | None = None


@dataclass(frozen=True)
class Take:
    key: str
    payer: str
    model: str
    estimate: int
    lease: Lease
    grow: int
    margin: int

    def sqlite(self, conn: sqlite3.Connection, holder: str, now: str, one: One) -> Taken:
        need = self.grow + self.margin
        row = conn.execute(_GROW, (self.grow, self.payer, need)).fetchone()
        if row is not None:
            conn.execute(_LEASE, (self.lease.lease_id, holder, self.payer, self.grow))
            return Taken(True, int(row[0]), int(row[1]), self.grow)
        alone: Reserved = one(conn, Reserve(self.key, self.payer, self.model, self.estimate),
                              holder, now)  # fmt: skip
        return Taken(alone.ok, alone.balance, alone.reserved, None)

    def pg_rows(self, row: Callable[..., None]) -> None:
        row("take", self.key, self.payer, self.model, self.estimate, 0, None, None, None, None,
            None, self.lease.lease_id, self.grow, self.margin)  # fmt: skip

    @staticmethod
    def pg_result(r: Any) -> Taken:
        grew = None if r["lease"] is None else int(r["lease"])
        return Taken(bool(r["ok"]), int(r["bal"]), int(r["res"]), grew)


@dataclass(frozen=True)
class Spent:
    """A spend's outcome: whether the answer was recorded, and whether from the lease."""

    recorded: bool
    from_lease: bool


@dataclass(frozen=True)
class Spend:
    answer: Answer
    lease_id: str

    @property
    def payer(self) -> str:
        return self.answer.payer

    @property
    def key(self) -> str:
        return self.answer.key

    def sqlite(self, conn: sqlite3.Connection, holder: str, now: str, one: One) -> Spent:
        a, total = self.answer, self.answer.total
        drawn = conn.execute(_DRAW, (total, self.lease_id, total)).rowcount == 1
        if not drawn and conn.execute(_RESERVE, (total, a.payer, total)).rowcount != 1:
            return _UNPAID  # the lease is gone and the payer cannot cover it
        for n, p in enumerate(a.parts):
            conn.execute(
                _ROW,
                (a.key, n, a.payer, p.node_id, p.operator, a.model, a.estimate if n == 0 else 0,
                 p.amount, p.fee, a.receipt_hash, now, now, holder),
            )  # fmt: skip
        return _FROM_LEASE if drawn else _FROM_BALANCE

    def pg_rows(self, row: Callable[..., None]) -> None:
        a, first = self.answer, self.answer.parts[0]
        row("spend", a.key, a.payer, a.model, a.estimate, 0, first.node_id, first.operator,
            first.amount, first.fee, a.receipt_hash, self.lease_id, a.total, 0)  # fmt: skip
        for n, p in enumerate(a.parts[1:], start=1):
            row("part", a.key, a.payer, a.model, 0, n, p.node_id, p.operator, p.amount, p.fee,
                a.receipt_hash)  # fmt: skip

    @staticmethod
    def pg_result(r: Any) -> Spent:
        return _SPENT[bool(r["ok"]), r["lease"] == 1]


# a spend's three outcomes, made once (a frozen dataclass's construction is slow)
_FROM_LEASE, _FROM_BALANCE, _UNPAID = Spent(True, True), Spent(True, False), Spent(False, False)
_SPENT = {(True, True): _FROM_LEASE, (True, False): _FROM_BALANCE, (False, False): _UNPAID,
          (False, True): Spent(False, True)}  # fmt: skip


@dataclass(frozen=True)
class Give:
    lease: Lease

    @property
    def payer(self) -> str:
        return self.lease.payer

    def sqlite(self, conn: sqlite3.Connection, holder: str, now: str, one: One) -> None:
        row = conn.execute(_GIVE, (self.lease.lease_id,)).fetchone()
        if row is not None and int(row[1]):
            conn.execute(_RELEASE, (int(row[1]), row[0]))

    def pg_rows(self, row: Callable[..., None]) -> None:
        row("give", "", self.payer, None, 0, 0, None, None, None, None, None,
            self.lease.lease_id, 0, 0)  # fmt: skip

    @staticmethod
    def pg_result(r: Any) -> None:
        return None


async def release_leases(engine: AsyncEngine, holders: Sequence[str | None]) -> int:
    """Delete the leases of ``holders`` and release their amounts; the amount released."""
    named = [h for h in holders if h is not None]
    if not named:
        return 0
    t = tables.settle_leases
    async with engine.begin() as conn:
        return await _delete_releasing(conn, t.c.holder.in_(named))


async def release_unknown_leases(engine: AsyncEngine, holder: str, known: Collection[str]) -> int:
    """Delete ``holder``'s leases whose ids are not in ``known`` (its book's, a live view:
    checked as soon as the rows are read, so a lease the book made before has its id in it)
    and release their amounts; the amount released. Such a row is a take that committed after its lease
    went back (PostgreSQL: the take's connection lost while the server still ran it), else
    held until the holder's stop; one the book hands back meanwhile is deleted once (the
    other ``DELETE`` finds no row)."""
    t = tables.settle_leases
    async with engine.connect() as conn:
        ids = await conn.execute(select(t.c.lease_id).where(t.c.holder == holder))
        unknown = sorted(str(i) for i in ids.scalars() if str(i) not in known)  # no await
    if not unknown:
        return 0
    async with engine.begin() as conn:
        return await _delete_releasing(conn, t.c.lease_id.in_(unknown), t.c.holder == holder)


async def _delete_releasing(conn: AsyncConnection, *where: Any) -> int:
    """Delete the lease rows ``where`` says and release their amounts, per payer, in the
    caller's transaction; the amount released."""
    t = tables.settle_leases
    rows = (await conn.execute(delete(t).where(*where).returning(t.c.payer, t.c.amount))).all()
    held: dict[str, int] = {}
    for r in rows:
        held[r.payer] = held.get(r.payer, 0) + int(r.amount)
    await release(conn, {p: n for p, n in held.items() if n})
    return sum(held.values())


def lease_wrote(
    book: LeaseBook, op: object, result: object, now: float, *, failed: bool
) -> Answer | None:
    """A lease write is done (``failed``: its transaction was rolled back): its outcome in
    the book; the answer recorded (for the settler), if any."""
    if isinstance(op, Take):
        grew = None if failed or not isinstance(result, Taken) else result.grew
        if failed:  # it may have committed all the same (PostgreSQL: the answer was lost
            op.lease.grown = True  # after the commit): handed back (a Give of no row: nothing)
        book.took(op.lease, op.key, op.estimate, grew, now)
    elif isinstance(op, Spend):
        ok = not failed and isinstance(result, Spent) and result.recorded
        drawn = ok and isinstance(result, Spent) and result.from_lease
        got = book.admitted.get(op.answer.key)
        book.spent(op.answer.key, op.answer.total if ok else None, drawn, now)
        if not ok and got is not None:  # the lease is gone or short and the payer cannot
            book.lose(got[0])  # cover it: it must admit (serve unpaid) no more; or the write
            # failed, maybe committed (its amount then less than the book's): it goes back
        return op.answer if ok else None
    elif isinstance(op, Give) and failed:  # still the database's: handed back next time
        book.leases[op.lease.lease_id] = op.lease
    return None
