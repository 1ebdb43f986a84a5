"""Settlement off the hot path, on the store's SQLAlchemy engine: into the ledger, exactly once.

- :func:`settle` appends the ``settle`` (payer → operator, amount less fee) and ``fee``
  (payer → ``network``) entries of answered requests (``hold`` instead of ``settle``
  for a part served by a node under quarantine: payer → the node's held account,
  ``registry/held.py``) with
  :meth:`~LLM_Mesh.registry.ledger.SqlLedger.append`, whose guard flips their rows
  ``answered`` → ``settled`` and releases what they reserved, in the entries'
  transaction. Rows not all ``answered`` (settled or voided by someone else) refuse the
  batch; it is then retried one request at a time, and a request refused alone is
  already settled: nothing is paid twice. The share of a held node whose key is revoked
  (the revocation's own forfeit ran before this hold) goes on to ``network`` in the same
  batch (``hold`` then ``forfeit``), the revocations read again inside the transaction.
- :func:`answered_rows` reads answered requests back as :class:`Answer` s (recovery);
  :func:`row_state`, one request's state (an answer written again that found it not
  pending: ``Settlement._again``).
- :func:`void_pending` voids a dead holder's pending rows (``lapsed``) and releases their
  estimates; :func:`revive` records the answer of a lapsed row after all, if its holder was
  alive and the payer can still cover it; :func:`spend_again` writes again a lease's
  answer whose write failed (``Settlement``'s ``Spend``), once.
- :func:`top_up_pool` adds to the community pool, from the mint, what it lacks of its
  daily budget, once per UTC day (``pool_days`` keeps the day; entry kind
  ``pool_budget``).
- :func:`balance` reads an account's ``balances`` row; :func:`with_operators` names the
  operator account each part of an answer pays.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.ledger_entry import MINT, NETWORK, POOL, Transfer, is_held_account
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import pseudonyms
from LLM_Mesh.registry.settle_db import Answer, PaidPart

__all__ = [
    "LAPSED",
    "POOL_KIND",
    "VOID",
    "answered_rows",
    "balance",
    "held_nodes",
    "release",
    "revive",
    "revoked_among",
    "row_state",
    "settle",
    "spend_again",
    "top_up_pool",
    "transfers",
    "void_pending",
    "with_operators",
]

log = logging.getLogger(__name__)

POOL_KIND = "pool_budget"
_TOP_UP_TRIES = 5
_REVOKED_TRIES = 5


def transfers(a: Answer, revoked: Collection[str] = ()) -> list[Transfer]:
    """The ledger entries that pay for answered request ``a`` (every part's operator known):
    the share to the operator (``settle``), or to the node's held account (``hold``: the
    node was quarantined when it answered) and, for a node in ``revoked`` (its key revoked
    before this settles: the revocation's own forfeit ran before this hold), on from there
    to the network (``forfeit``, as the revocation did), and the fee to the network."""
    out: list[Transfer] = []
    for p in a.parts:
        if p.operator is None:
            raise ValueError(f"part of {a.key} paid to node {p.node_id} has no operator account")
        share = p.amount - p.fee
        if share > 0:
            kind = "hold" if is_held_account(p.operator) else "settle"
            out.append(Transfer(kind, a.payer, p.operator, share, a.key, a.receipt_hash))
            if kind == "hold" and p.node_id in revoked:
                out.append(Transfer("forfeit", p.operator, NETWORK, share, a.key, a.receipt_hash))
        if p.fee > 0:
            out.append(Transfer("fee", a.payer, NETWORK, p.fee, a.key, a.receipt_hash))
    return out


_RELEASE = "UPDATE balances SET reserved = reserved - {amount} WHERE account = {account}"


async def release(conn: AsyncConnection, held: dict[str, int]) -> None:
    """Release ``held`` (payer → amount) from the payers' ``reserved``, in account order
    (the lock order), as one ``executemany`` in the driver's parameter style."""
    if not held:
        return
    if conn.dialect.paramstyle == "numeric_dollar":  # asyncpg
        sql = _RELEASE.format(amount="$1", account="$2")
    else:
        sql = _RELEASE.format(amount="?", account="?")
    await conn.exec_driver_sql(sql, [(amount, payer) for payer, amount in sorted(held.items())])


def _guard(
    answers: Sequence[Answer], now: datetime
) -> Callable[[AsyncConnection], Awaitable[bool]]:
    async def guard(conn: AsyncConnection) -> bool:
        s = tables.settlements
        flipped = (
            await conn.execute(
                update(s)
                .where(s.c.request_id.in_([a.key for a in answers]), s.c.state == "answered")
                .values(state="settled", updated_at=now)
                .returning(s.c.request_id)
            )
        ).all()
        if len(flipped) != sum(len(a.parts) for a in answers):
            return False
        held: dict[str, int] = {}
        for a in answers:
            held[a.payer] = held.get(a.payer, 0) + a.total
        await release(conn, held)
        return True

    return guard


def held_nodes(answers: Sequence[Answer]) -> list[str]:
    """The nodes whose share of ``answers`` goes to their held account (sorted)."""
    return sorted({p.node_id for a in answers for p in a.parts if is_held_account(p.operator)})


def revoked_among(nodes: Sequence[str]) -> Any:
    """The statement reading which of ``nodes`` have their key revoked (by its primary key)."""
    k = tables.node_keys
    return select(k.c.node_id).where(k.c.node_id.in_(list(nodes)), k.c.revoked_at.is_not(None))


class _Revoked(Exception):
    """A held node of the batch was revoked between reading the revocations and the append."""


async def _append(
    ledger: SqlLedger, answers: Sequence[Answer], now: datetime, revoked: frozenset[str]
) -> bool:
    """Append ``answers``' entries, their held nodes' revocations checked again inside the
    append's transaction (:class:`_Revoked` when one was revoked meanwhile)."""
    guard, nodes = _guard(answers, now), held_nodes(answers)

    async def checked(conn: AsyncConnection) -> bool:
        if nodes:
            found = (await conn.execute(revoked_among(nodes))).scalars()
            if {str(n) for n in found} != revoked:
                raise _Revoked
        return await guard(conn)

    batch = [t for a in answers for t in transfers(a, revoked)]
    return bool(await ledger.append(batch, guard=checked))


async def _settle_once(ledger: SqlLedger, answers: Sequence[Answer], now: datetime) -> bool:
    nodes = held_nodes(answers)
    for _ in range(_REVOKED_TRIES):
        revoked: frozenset[str] = frozenset()
        if nodes:  # rare: a batch paying a quarantined node
            engine = await ledger.engine()
            async with engine.connect() as conn:
                found = (await conn.execute(revoked_among(nodes))).scalars()
                revoked = frozenset(str(n) for n in found)
        try:
            return await _append(ledger, answers, now, revoked)
        except _Revoked:
            continue
    raise RuntimeError("settlement: a held node's revocation kept changing")


async def settle(ledger: SqlLedger, answers: Sequence[Answer], now: datetime) -> int:
    """Pay for ``answers`` in the ledger, each exactly once; how many this call settled.
    The share of a held node whose key is revoked is forfeited in the same append
    (``hold`` then ``forfeit``), the revocations read inside its transaction: whenever
    an answer of a revoked node settles, its share ends with the network."""
    if not answers:
        return 0
    if await _settle_once(ledger, answers, now):
        return len(answers)
    if len(answers) == 1:
        return 0
    done = 0
    for a in answers:  # someone settled (or voided) some of them: one at a time
        if await _settle_once(ledger, [a], now):
            done += 1
    return done


async def answered_rows(engine: AsyncEngine, holders: Sequence[str | None]) -> list[Answer]:
    """The answered (not yet settled) requests of ``holders`` (``None``: rows without one)."""
    s = tables.settlements
    named = [h for h in holders if h is not None]
    # ``holder || ''`` (as in :func:`void_pending`): the answered rows (the ``state``
    # index), not every row the holders ever wrote (SQLite took the holder's index,
    # dropped since: migration 0022)
    held_by = s.c.holder.concat("")
    cond: Any = held_by.in_(named)
    if None in holders:
        cond = cond | held_by.is_(None)
    stmt = select(s).where(s.c.state == "answered", cond).order_by(s.c.request_id, s.c.part)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    out: list[Answer] = []
    group: list[Any] = []
    for r in [*rows, None]:
        if group and (r is None or r.request_id != group[0].request_id):
            head = group[0]
            parts = tuple(
                PaidPart(g.node_id or "", g.operator, int(g.amount or 0), int(g.fee or 0))
                for g in group
            )
            out.append(
                Answer(
                    head.request_id, head.payer, head.model, int(head.estimate), parts,
                    head.receipt_hash,
                )
            )  # fmt: skip
            group = []
        if r is not None:
            group.append(r)
    return out


async def row_state(engine: AsyncEngine, key: str) -> str | None:
    """The state of request ``key``'s row (its part 0); ``None`` when it has none."""
    s = tables.settlements
    stmt = select(s.c.state).where(s.c.request_id == key, s.c.part == 0)
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else str(row.state)


async def with_operators(engine: AsyncEngine, known: dict[str, str], a: Answer) -> Answer:
    """``a`` with every part's operator account: from ``known`` (node id → account, which
    this fills), else the node key's operator in the store, else the node's own (keyed);
    a part written without one gets it in its row too."""
    if all(p.operator is not None for p in a.parts):
        return a
    parts = []
    for n, p in enumerate(a.parts):
        if p.operator is None:
            account = known.get(p.node_id)
            if account is None:
                k = tables.node_keys
                async with engine.connect() as conn:
                    row = (
                        await conn.execute(select(k.c.operator).where(k.c.node_id == p.node_id))
                    ).first()
                name = None if row is None else str(row.operator)
                keyed = await pseudonyms(engine)
                account = keyed.operator(name) if name else keyed.node(p.node_id)
                known[p.node_id] = account
            p = replace(p, operator=account)
            await set_operator(engine, a.key, n, account)
        parts.append(p)
    return replace(a, parts=tuple(parts))


async def set_operator(engine: AsyncEngine, key: str, part: int, operator: str) -> None:
    """Name the operator of an answered part that was written without one."""
    s = tables.settlements
    async with engine.begin() as conn:
        await conn.execute(
            update(s)
            .where(s.c.request_id == key, s.c.part == part, s.c.operator.is_(None))
            .values(operator=operator)
        )


LAPSED = "lapsed"  # a pending row voided by recovery: its holder was taken for dead
VOID = "void"  # a pending row its own holder voided (nothing to pay)


async def void_pending(
    engine: AsyncEngine, holder: str | None, now: datetime, state: str = LAPSED
) -> int:
    """Void every pending row of ``holder`` and release its estimates; how many. ``state``:
    ``lapsed`` (recovery of a holder taken for dead: if it was alive after all, its answer
    can still be recorded, :func:`revive`) or ``void`` (the holder's own clean stop)."""
    s = tables.settlements
    # ``holder || ''``: no index serves it, so the read is the pending rows (the ``state``
    # index), not every row the holder ever wrote (SQLite without statistics took the
    # holder's index, found 2026-12-05, dropped since: migration 0022)
    held_by = s.c.holder.concat("")
    who = held_by.is_(None) if holder is None else held_by == holder
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                update(s)
                .where(who, s.c.state == "pending")
                .values(state=state, updated_at=now)
                .returning(s.c.payer, s.c.estimate)
            )
        ).all()
        held: dict[str, int] = {}
        for r in rows:
            held[r.payer] = held.get(r.payer, 0) + int(r.estimate)
        await release(conn, held)
    return len(rows)


class _NotRevived(Exception):
    """The payer cannot cover the answer any more, or the row is not lapsed."""


async def revive(engine: AsyncEngine, a: Answer, holder: str, now: datetime) -> bool:
    """Record answer ``a`` whose pending row lapsed (recovery took ``holder``, its own
    gateway, for dead while it was alive: a heartbeat missed for ``holder_ttl_s``): in one
    transaction, the payer's available balance reserves the exact total again (the payer's
    row first, the lock order) and the row goes ``lapsed`` → ``answered`` with its parts.
    ``False`` (nothing written) when the payer cannot cover it any more or the row is not
    this holder's lapsed row: a lapsed row was never paid, and it is answered at most once
    (the ``state = 'lapsed'`` condition), so nothing is paid twice."""
    s = tables.settlements
    total, first = a.total, a.parts[0]
    try:
        async with engine.begin() as conn:
            covered = await _reserve_available(conn, a.payer, total)
            if not covered:
                raise _NotRevived
            row = (
                await conn.execute(
                    update(s)
                    .where(s.c.request_id == a.key, s.c.part == 0, s.c.state == LAPSED)
                    .where(s.c.holder == holder)
                    .values(
                        state="answered",
                        node_id=first.node_id,
                        operator=first.operator,
                        amount=first.amount,
                        fee=first.fee,
                        receipt_hash=a.receipt_hash,
                        updated_at=now,
                    )
                    .returning(s.c.request_id)
                )
            ).first()
            if row is None:
                raise _NotRevived
            for n, p in enumerate(a.parts[1:], start=1):
                await conn.execute(
                    s.insert().values(
                        request_id=a.key,
                        part=n,
                        payer=a.payer,
                        node_id=p.node_id,
                        operator=p.operator,
                        model=a.model,
                        estimate=0,
                        amount=p.amount,
                        fee=p.fee,
                        state="answered",
                        receipt_hash=a.receipt_hash,
                        created_at=now,
                        updated_at=now,
                        holder=holder,
                    )
                )
    except _NotRevived:
        return False
    return True


class _Found(Exception):
    def __init__(self, state: str) -> None:
        self.state = state


async def spend_again(engine: AsyncEngine, a: Answer, holder: str, now: datetime) -> str | None:
    """Write again answer ``a`` of a request admitted from a lease, whose first write (its
    ``Spend``) failed, committed or not: in one transaction, unless the request has a row
    already (the failed write committed after all: its state is returned, nothing
    written), its exact total is reserved from the payer's available balance (the payer's
    row first, the lock order; not from the lease: the book's lease keeps its amount, as
    the failed write rolled back) and its ``answered`` rows inserted. ``"answered"``: the
    request is answered (now, or by the failed write); ``"settled"``: it was settled
    already; ``None``: nothing written, the payer cannot cover it (unpaid). Never twice:
    the rows' key (request, part) is unique, so a first write still running on the server
    (PostgreSQL: its connection dropped) and this one cannot both insert; the loser rolls
    back (this one then reads ``"answered"``); and a request the ledger names is
    ``"settled"`` (its rows deleted since by retention: paid already). Also a journalled
    answer whose reservation's row a power cut lost (``SettleUpkeep._write_unwritten``)."""
    s = tables.settlements
    total = a.total
    try:
        async with engine.begin() as conn:
            covered = await _reserve_available(conn, a.payer, total)
            row = (
                await conn.execute(select(s.c.state).where(s.c.request_id == a.key, s.c.part == 0))
            ).first()
            if row is not None:
                raise _Found(str(row.state))
            e = tables.ledger_entries  # paid, its rows deleted since (retention): never again
            if (
                await conn.execute(select(e.c.seq).where(e.c.request_id == a.key).limit(1))
            ).first():
                raise _Found("settled")
            if not covered:
                raise _NotRevived
            for n, p in enumerate(a.parts):
                await conn.execute(
                    s.insert().values(
                        request_id=a.key, part=n, payer=a.payer, node_id=p.node_id,
                        operator=p.operator, model=a.model, estimate=a.estimate if n == 0 else 0,
                        amount=p.amount, fee=p.fee, state="answered",
                        receipt_hash=a.receipt_hash, created_at=now, updated_at=now,
                        holder=holder,
                    )
                )  # fmt: skip
    except _Found as found:
        return found.state
    except _NotRevived:
        return None
    except IntegrityError:  # the first write inserted its rows meanwhile, and committed
        return "answered"
    return "answered"


async def balance(engine: AsyncEngine, account: str) -> tuple[int, int]:
    """``(balance, reserved)`` of ``account``; ``(0, 0)`` for one the ledger never moved."""
    b = tables.balances
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(b.c.balance, b.c.reserved).where(b.c.account == account))
        ).first()
    return (0, 0) if row is None else (int(row.balance), int(row.reserved))


class _Moved(Exception):
    """The pool's balance moved between reading it and the top-up's transaction."""


def _insert_day(conn: AsyncConnection, day: str, amount: int, now: datetime) -> Any:
    t = tables.pool_days
    ins = pg_insert(t) if conn.dialect.name == "postgresql" else sqlite_insert(t)
    return ins.values(day=day, amount=amount, created_at=now).on_conflict_do_nothing()


async def top_up_pool(ledger: SqlLedger, day: str, budget: int, now: datetime) -> int | None:
    """Top the pool up to ``budget`` for UTC ``day`` (``YYYY-MM-DD``), once per day across
    every process; what the mint added, or ``None`` when the day was topped up already."""
    engine = await ledger.engine()
    p = tables.pool_days
    for _ in range(_TOP_UP_TRIES):
        async with engine.connect() as conn:
            if (await conn.execute(select(p.c.day).where(p.c.day == day))).first() is not None:
                return None
        seen, _held = await balance(engine, POOL)
        amount = budget - seen
        if amount <= 0:
            async with engine.begin() as conn:
                made = (await conn.execute(_insert_day(conn, day, 0, now))).rowcount
            return 0 if made == 1 else None

        async def guard(conn: AsyncConnection, seen: int = seen, amount: int = amount) -> bool:
            if (await conn.execute(_insert_day(conn, day, amount, now))).rowcount != 1:
                return False
            b = tables.balances
            row = (await conn.execute(select(b.c.balance).where(b.c.account == POOL))).first()
            if (0 if row is None else int(row.balance)) != seen:
                raise _Moved
            return True

        try:
            written = await ledger.append(
                [Transfer(POOL_KIND, MINT, POOL, amount, f"pool-budget-{day}")], guard=guard
            )
        except _Moved:
            continue
        return amount if written else None
    log.warning("could not top up the community pool for %s: its balance kept moving", day)
    return None


async def _reserve_available(conn: AsyncConnection, payer: str, total: int) -> bool:
    """Reserve ``total`` from ``payer``'s available balance (balance less reserved), in
    ``conn``'s transaction; ``False`` (nothing reserved) when it cannot cover it."""
    b = tables.balances
    stmt = (
        update(b)
        .where(b.c.account == payer, b.c.balance - b.c.reserved >= total)
        .values(reserved=b.c.reserved + total)
        .returning(b.c.account)
    )
    return (await conn.execute(stmt)).first() is not None
