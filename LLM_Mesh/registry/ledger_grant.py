"""Grants: NetworkTokens issued by the mint, as ledger entries (``llm-mesh registry grant``).

``ACCOUNT`` is an operator's name (its account is ``pseudonym("operator", name)``) or a
ledger account as written (``pool``, ``network``, ``user:...``, ``operator:...``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.ledger_entry import ACCOUNT_RE, MINT, LedgerEntry, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger

__all__ = ["grant", "resolve_account"]


async def resolve_account(store: Any, account: str) -> str:
    """The ledger account ``account`` names (see the module docstring)."""
    if ACCOUNT_RE.match(account):
        return account
    for op in await store.list_operators():
        if op.name == account:
            return pseudonym("operator", account)
    raise ValueError(
        f"no operator {account!r} and not a ledger account (pool, network, user:..., operator:...)"
    )


async def grant(store: Any, account: str, amount: int) -> LedgerEntry:
    """Append one ``grant`` entry from the mint to ``account``; the entry written."""
    to = await resolve_account(store, account)
    if to == MINT:
        raise ValueError("the mint cannot grant to itself")

    async def engine() -> AsyncEngine:
        found: AsyncEngine = store.engine
        return found

    return await SqlLedger(engine).append_one(Transfer("grant", MINT, to, amount))
