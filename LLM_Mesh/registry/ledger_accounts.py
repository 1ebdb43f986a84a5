"""The ledger's keyed accounts (operators, nodes, held earnings): the key, and the move
off the unkeyed accounts of before migration 0018.

:func:`pseudonyms` reads the account key (``ledger_secrets``, ``account_key``): the first
registry that needs one makes it (an ``INSERT`` that keeps an existing row, then a read,
so replicas on one database, starting at once, read the same key), once per engine. It is
never published: without it nobody tells whose account ``operator:<32 hex>`` is, though
operator names are guessable and node ids public (docs/security.md).

:func:`rekey` runs at every registry's start. For every operator name and node id the
store knows, the unkeyed account of before (``core/ledger_entry.pseudonym``) moves to its
keyed one: its balance by one ``rekey`` entry (the old account left at 0), and its name in
the ``settlements`` and ``reward_periods`` rows (the operator's earnings read them),
in one transaction under the ledger's head lock, retried when a balance moved between
the read and the lock. Once done it finds nothing to do (a few indexed reads): a payment
to an old account that lands later (a replica of the previous version still running) is
moved at the next start. Past entries stay as they are (the ledger is append-only).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.ledger_entry import Pseudonyms, Transfer, pseudonym
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger

__all__ = ["ACCOUNT_KEY", "new_key", "pseudonyms", "rekey"]

log = logging.getLogger(__name__)

ACCOUNT_KEY = "account_key"
CHUNK = 1000  # old accounts per transaction (and per IN list)
_TRIES = 5
_known: WeakKeyDictionary[AsyncEngine, Pseudonyms] = WeakKeyDictionary()


def new_key() -> bytes:
    """A new account key (tests replace it with a fixed one, ``tests/keyed.py``)."""
    return secrets.token_bytes(32)


async def _read_key(conn: AsyncConnection) -> bytes | None:
    t = tables.ledger_secrets
    found = (await conn.execute(select(t.c.value).where(t.c.name == ACCOUNT_KEY))).scalar()
    return None if found is None else bytes(found)


async def pseudonyms(engine: AsyncEngine) -> Pseudonyms:
    """The keyed accounts of the ledger on ``engine`` (its key made on first use)."""
    found = _known.get(engine)
    if found is not None:
        return found
    async with engine.connect() as conn:
        key = await _read_key(conn)
    if key is None:
        t = tables.ledger_secrets
        async with engine.begin() as conn:
            ins = pg_insert(t) if conn.dialect.name == "postgresql" else sqlite_insert(t)
            made = ins.values(name=ACCOUNT_KEY, value=new_key())
            await conn.execute(made.on_conflict_do_nothing())
            key = await _read_key(conn)
    if key is None:  # pragma: no cover - the row was just written
        raise RuntimeError("the ledger's account key could not be made")
    return _known.setdefault(engine, Pseudonyms(key))


async def _moves(engine: AsyncEngine, keyed: Pseudonyms) -> dict[str, str]:
    """Old account → keyed account, for every operator name and node id the store knows."""
    o, k, n = tables.operators, tables.node_keys, tables.nodes
    async with engine.connect() as conn:
        names = set((await conn.execute(select(o.c.name))).scalars())
        nodes = set((await conn.execute(select(k.c.node_id))).scalars())
        nodes |= set((await conn.execute(select(n.c.node_id))).scalars())
    moves = {pseudonym("operator", name): keyed.operator(name) for name in names}
    for node in nodes:
        moves[pseudonym("node", node)] = keyed.node(node)
        moves[pseudonym("held", node)] = keyed.held(node)
    return moves


async def _balances(conn: AsyncConnection, accounts: Sequence[str]) -> dict[str, int]:
    """The positive balances among ``accounts``."""
    b = tables.balances
    stmt = select(b.c.account, b.c.balance).where(b.c.account.in_(list(accounts)))
    return {r.account: int(r.balance) for r in await conn.execute(stmt) if int(r.balance) > 0}


async def _named(conn: AsyncConnection, accounts: Sequence[str]) -> dict[str, set[str]]:
    """Which of ``accounts`` the ``settlements`` and ``reward_periods`` rows name."""
    out = {}
    for t in (tables.settlements, tables.reward_periods):
        stmt = select(t.c.operator).where(t.c.operator.in_(list(accounts))).distinct()
        out[t.name] = {str(a) for a in (await conn.execute(stmt)).scalars()}
    return out


class _Moved(Exception):
    """An old account's balance moved between reading it and the append's transaction."""


async def _rekey_chunk(ledger: SqlLedger, moves: dict[str, str]) -> int | None:
    """Move the accounts of ``moves`` (at most :data:`CHUNK`): µNT moved; ``None`` when
    the balances kept moving."""
    olds = sorted(moves)
    engine = await ledger.engine()
    for _ in range(_TRIES):
        async with engine.connect() as conn:
            seen, named = await _balances(conn, olds), await _named(conn, olds)
        if not seen and not any(named.values()):
            return 0

        async def guard(conn: AsyncConnection, seen: dict[str, int] = seen) -> bool:
            if await _balances(conn, olds) != seen:
                raise _Moved
            named = await _named(conn, olds)  # read again under the lock
            for t in (tables.settlements, tables.reward_periods):
                rows = [{"old": a, "new": moves[a]} for a in sorted(named[t.name])]
                if rows:
                    stmt = update(t).where(t.c.operator == bindparam("old"))
                    await conn.execute(stmt.values(operator=bindparam("new")), rows)
            return True

        moved = [Transfer("rekey", a, moves[a], seen[a]) for a in sorted(seen)]
        try:
            if moved:
                await ledger.append(moved, guard=guard)
            else:
                await ledger.locked(guard)
        except _Moved:
            continue
        return sum(seen.values())
    return None


async def rekey(ledger: SqlLedger) -> int:
    """Move the unkeyed accounts of before migration 0018 to the keyed ones (see the
    module docstring): the µNT moved."""
    engine = await ledger.engine()
    moves = await _moves(engine, await pseudonyms(engine))
    olds = sorted(moves)
    total = 0
    for i in range(0, len(olds), CHUNK):
        done = await _rekey_chunk(ledger, {a: moves[a] for a in olds[i : i + CHUNK]})
        if done is None:
            log.warning("could not move old ledger accounts: their balances kept moving")
            continue
        total += done
    if total:
        log.info("moved %d µNT from unkeyed to keyed ledger accounts", total)
    return total
