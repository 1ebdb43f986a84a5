"""A quarantined node's earnings: held from its first failed probe until the admin decides.

From a node's first failed canary probe (a quarantine for any model) until the admin
clears it, the share of every request it answers goes to its **held account**
(``held:<32 hex>``, keyed by the node id: :meth:`~LLM_Mesh.core.ledger_entry.Pseudonyms.held`)
instead of its operator: settlement writes a ``hold`` entry in place of ``settle``
(``registry/settle_ledger.transfers``; the network's fee is taken as for any request).
Settlement asks :meth:`~LLM_Mesh.registry.quality.Quality.held` when it records the
answer, so what counts is whether the node was quarantined when it answered. This is
per node, not per model: a node caught lying about one model is not trusted to be paid
for the others until someone looked. And it is per operator: while any node of an
operator is quarantined, every node whose key that operator holds is held the same way
(its requests' shares and its uptime rewards: ``Store.held_nodes``), so spare nodes
registered before the catch are not paid meanwhile, and a key stays with its first
operator (``claim_node_key``), so a second operator's token cannot take a quarantined
node, or its held balance, away.

- :func:`release` (``llm-mesh registry nodes clear``): the whole held balance to the
  node's operator, one ``release`` entry; :func:`clear_and_release` releases every node
  of the operator once none of its nodes is quarantined any more (the siblings' holds
  with it), and nothing while another of its nodes still is;
- :func:`forfeit` (``llm-mesh registry nodes revoke`` / ``operators revoke``): the whole
  held balance to ``network``, one ``forfeit`` entry. Not refunded to the payers: the
  requests were answered (by a node found lying about at least one model), the payers
  are many and pseudonymous, and the fees account is where the network's own money is.

A request a revoked node answered before its revocation can be settled after the
revocation's forfeit (a gateway's settler a moment later, or recovery of a dead gateway's
answered rows, minutes or days later): its ``hold`` would then wait in the held account of
a node nobody will clear. Settlement reads the revocations of a batch's held nodes inside
its append's transaction and forfeits a revoked node's share in the same batch (``hold``
then ``forfeit``, ``settle_ledger.transfers``), however long after the revocation; a
hold appended while the revocation's forfeit runs is waited for by it (above). As a
backstop (a hold written by a gateway of an earlier version during a rolling upgrade),
:func:`forfeit_revoked` (every settlement upkeep round, in every gateway process)
forfeits the held earnings of nodes revoked in the last :data:`FORFEIT_WINDOW_S`, one
indexed read of a day's revocations (until 2026-12-03 a hold settled after the
revocation stayed held, out of every balance that is ever paid, unless this backstop
saw it within the day).

A node's held balance of before migration 0018 (the unkeyed ``held:<24 hex>``, not moved:
``registry/ledger_accounts.py``) is released or forfeited with it, by its own entry: a
release pays it to the unkeyed account of the node's operator (or of the node), never to a
keyed one, so no entry names an operator's old account and its new one.

Each moves exactly what the account holds, once: the amount is read, then checked again
inside the append's transaction (appends are serialised on the ledger head), and read
again if it moved (a held request settled meanwhile); nothing held is checked under the
head lock too, so a hold being appended as the node is revoked (its settlement read the
node not revoked yet) is forfeited, not left behind. Whatever is held after a release
(a request another registry answered in the second before it learnt of the clear) is
released by the next ``nodes clear``, which always releases what is held.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.ledger_entry import NETWORK, Transfer, pseudonym
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import old_owner_account, pseudonyms
from LLM_Mesh.registry.settle_ledger import balance

__all__ = [
    "FORFEIT_WINDOW_S",
    "clear_and_release",
    "forfeit",
    "forfeit_revoked",
    "held_amounts",
    "operator_account_of",
    "release",
    "revoke_and_forfeit",
]

log = logging.getLogger(__name__)

_TRIES = 5
#: how long after a node's revocation the upkeep's backstop forfeits holds that reached
#: its held account (settlement itself forfeits a revoked node's share, at any time)
FORFEIT_WINDOW_S = 86_400.0


class _Moved(Exception):
    """The held balance moved between reading it and the append's transaction."""


async def _operator_of(engine: AsyncEngine, node_id: str) -> str | None:
    """The operator whose key the node's is, if any."""
    k = tables.node_keys
    async with engine.connect() as conn:
        row = (await conn.execute(select(k.c.operator).where(k.c.node_id == node_id))).first()
    return None if row is None else str(row.operator)


async def operator_account_of(engine: AsyncEngine, node_id: str) -> str:
    """The ledger account a node's earnings are paid to: its key's operator, else
    the node's own account (as ``settle_ledger.with_operators`` names it)."""
    name = await _operator_of(engine, node_id)
    keyed = await pseudonyms(engine)
    return keyed.operator(name) if name else keyed.node(node_id)


async def held_amounts(engine: AsyncEngine, nodes: Sequence[str]) -> dict[str, int]:
    """What each of ``nodes`` has held (µNT, its keyed and its old held account together;
    nodes with nothing held are left out)."""
    b = tables.balances
    if not nodes:
        return {}
    keyed = await pseudonyms(engine)
    accounts = {keyed.held(n): n for n in nodes} | {pseudonym("held", n): n for n in nodes}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(b.c.account, b.c.balance).where(b.c.account.in_(sorted(accounts)))
            )
        ).all()
    out: dict[str, int] = {}
    for r in rows:
        if int(r.balance) > 0:
            out[accounts[r.account]] = out.get(accounts[r.account], 0) + int(r.balance)
    return out


async def _pay_out(ledger: SqlLedger, node_id: str, held: str, kind: str, to: str) -> int:
    engine = await ledger.engine()
    for _ in range(_TRIES):
        seen, _reserved = await balance(engine, held)

        async def guard(conn: AsyncConnection, seen: int = seen) -> bool:
            b = tables.balances
            row = (await conn.execute(select(b.c.balance).where(b.c.account == held))).first()
            if (0 if row is None else int(row.balance)) != seen:
                raise _Moved
            return True

        try:
            if seen <= 0:  # nothing held, once any append in flight (a hold) is done
                await ledger.locked(guard)
                return 0
            await ledger.append([Transfer(kind, held, to, seen)], guard=guard)
        except _Moved:
            continue
        return seen
    log.warning("could not %s node %s's held earnings: the balance kept moving", kind, node_id)
    return 0


async def _old_held(engine: AsyncEngine, node_id: str) -> int:
    """The node's balance under its unkeyed held account of before migration 0018."""
    return (await balance(engine, pseudonym("held", node_id)))[0]


async def release(
    ledger: SqlLedger, node_id: str, to: str | None = None, old_to: str | None = None
) -> tuple[int, str]:
    """Pay the node's held earnings to its operator's account ``to`` (default: the one
    its key names in the store) with a ``release`` entry: ``(amount, account)``. What its
    old held account has (before migration 0018) goes, by an entry of its own, to
    ``old_to`` (default: the unkeyed account of that operator, or of the node:
    :func:`~LLM_Mesh.registry.ledger_accounts.old_owner_account`), never to ``to``."""
    engine = await ledger.engine()
    if to is None:
        to = await operator_account_of(engine, node_id)
    amount = await _pay_out(
        ledger, node_id, (await pseudonyms(engine)).held(node_id), "release", to
    )
    if await _old_held(engine, node_id) > 0:
        if old_to is None:
            old_to = old_owner_account(await _operator_of(engine, node_id), node_id)
        old = pseudonym("held", node_id)
        amount += await _pay_out(ledger, node_id, old, "release", old_to)
    return amount, to


async def forfeit(ledger: SqlLedger, node_id: str) -> int:
    """The node was revoked: its held earnings (keyed and old held accounts) go to
    ``network`` (``forfeit``)."""
    engine = await ledger.engine()
    keyed = (await pseudonyms(engine)).held(node_id)
    amount = await _pay_out(ledger, node_id, keyed, "forfeit", NETWORK)
    if await _old_held(engine, node_id) > 0:
        amount += await _pay_out(ledger, node_id, pseudonym("held", node_id), "forfeit", NETWORK)
    return amount


async def forfeit_revoked(ledger: SqlLedger, since: datetime) -> dict[str, int]:
    """The held earnings of every node revoked at ``since`` or later forfeited to
    ``network`` (a hold settled after the revocation's own forfeit); ``node id → amount``
    (nodes that held something). Two reads when nothing is held (the revocations by their
    index, then the held balances)."""
    engine = await ledger.engine()
    k = tables.node_keys
    async with engine.connect() as conn:
        revoked = await conn.execute(select(k.c.node_id).where(k.c.revoked_at >= since))
        node_ids = sorted(str(n) for n in revoked.scalars())
    out = {}
    for node_id in await held_amounts(engine, node_ids):
        amount = await forfeit(ledger, node_id)
        if amount:
            out[node_id] = amount
    return out


def store_ledger(store: Any) -> SqlLedger:
    """The ledger on an SQL store's database (the admin CLI's)."""

    async def engine() -> AsyncEngine:
        found: AsyncEngine = store.engine
        return found

    return SqlLedger(engine)


async def clear_and_release(store: Any, node_id: str, at: datetime) -> tuple[list[str], int, str]:
    """``registry nodes clear``: lift the node's quarantines and drop its canary tallies
    (``canary_departures``: evidence across sampled probes starts afresh), then release what it and
    the other nodes of its operator have held, once no node of that operator is
    quarantined any more (else nothing: they stay held until the last one is cleared):
    ``(models cleared, amount released, to account)``."""
    models: list[str] = await store.clear_quarantine(node_id, at)
    # and its canary tallies (the evidence ``Quality.clear``'s hooks forget in a registry):
    # this is what the admin's command runs, on the store (found 2026-12-06, docs35)
    await store.add_canary_departures({}, [(node_id, None)], at.timestamp())
    ledger = store_ledger(store)
    key = await store.get_node_key(node_id)
    if key is None:  # no operator: the node alone
        amount, to = await release(ledger, node_id)
        return models, amount, to
    to = (await pseudonyms(store.engine)).operator(key.operator)
    if await store.quarantined_nodes_of(key.operator):
        return models, 0, to
    k = tables.node_keys
    async with store.engine.connect() as conn:
        siblings = await conn.execute(select(k.c.node_id).where(k.c.operator == key.operator))
        nodes = {node_id, *(str(n) for n in siblings.scalars())}
    total = 0
    old_to = old_owner_account(key.operator, node_id)
    for n in sorted(nodes):
        amount, _ = await release(ledger, n, to, old_to)
        total += amount
    return models, total, to


async def revoke_and_forfeit(store: Any, node_ids: Sequence[str]) -> dict[str, int]:
    """After ``nodes revoke`` / ``operators revoke``: each revoked node's held earnings
    forfeited to the network; ``node id → amount`` (nodes that held something)."""
    ledger = store_ledger(store)
    out = {}
    for node_id in node_ids:
        amount = await forfeit(ledger, node_id)
        if amount:
            out[node_id] = amount
    return out
