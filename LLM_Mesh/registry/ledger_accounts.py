"""The ledger's keyed accounts (operators, nodes, held earnings): the key, and the
unkeyed accounts of before migration 0018 that the operator's views still read.

:func:`pseudonyms` reads the account key (``ledger_secrets``, ``account_key``): the first
registry that needs one makes it (an ``INSERT`` that keeps an existing row, then a read,
so replicas on one database, starting at once, read the same key), once per engine. It is
never published: without it nobody tells whose account ``operator:<32 hex>`` is, though
operator names are guessable and node ids public (docs/security.md).

Balances under the unkeyed accounts of before (``core/ledger_entry.pseudonym``) are not
moved: an entry from an old account to its keyed one would tell everyone which keyed
account belongs to the guessable name. Nothing ever debits an ``operator:`` or ``node:``
account (money leaves only ``mint``, ``pool``, ``user:`` and ``held:`` accounts), so an old
balance stays where it is and :func:`operator_accounts` names both accounts an operator's
views add up (``registry/earnings.py``). A node's old held balance (``held:<24 hex>``) is
released to the old account of its operator (or the node) or forfeited, as held
balances are (``registry/held.py``), never to a keyed account. Nothing runs at start.
"""

from __future__ import annotations

import secrets
from weakref import WeakKeyDictionary

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.ledger_entry import Pseudonyms, pseudonym
from LLM_Mesh.registry import tables

__all__ = ["ACCOUNT_KEY", "new_key", "old_owner_account", "operator_accounts", "pseudonyms"]

ACCOUNT_KEY = "account_key"
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


async def operator_accounts(engine: AsyncEngine, name: str) -> tuple[str, str]:
    """The operator's keyed account (where it is paid now) and its unkeyed one of before
    migration 0018 (whatever it was paid then stays there): its views add both up."""
    return (await pseudonyms(engine)).operator(name), pseudonym("operator", name)


def old_owner_account(operator: str | None, node_id: str) -> str:
    """Where a node's old held balance (``pseudonym("held", node_id)``) is released: the
    unkeyed account of its operator, or of the node when it has none (never a keyed one,
    which the release's entry would then link to the guessable name)."""
    return pseudonym("operator", operator) if operator else pseudonym("node", node_id)
