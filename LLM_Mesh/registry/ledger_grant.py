"""Grants: NetworkTokens issued by the mint, as ledger entries (``llm-mesh registry grant``).

``ACCOUNT`` is an API key's name or id (its user's account is ``pseudonym("user",
key id)``: what requests with that key are paid from), an operator's name (its account
is its keyed account, ``registry/ledger_accounts.py``), or a ledger account as written (``pool``,
``network``, ``user:...``, ``operator:...``). A name that is both a key's and an
operator's is refused as ambiguous: write the ledger account.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.ledger_entry import ACCOUNT_RE, MINT, LedgerEntry, Transfer, pseudonym
from LLM_Mesh.registry.ledger import SqlLedger
from LLM_Mesh.registry.ledger_accounts import pseudonyms

__all__ = ["grant", "resolve_account"]


async def resolve_account(store: Any, account: str) -> str:
    """The ledger account ``account`` names (see the module docstring)."""
    if ACCOUNT_RE.match(account):
        return account
    found: list[str] = []
    for key in await store.list_api_keys():
        if account in (key.name, key.key_id):
            found.append(pseudonym("user", key.key_id))
    for op in await store.list_operators():
        if op.name == account:
            found.append((await pseudonyms(store.engine)).operator(account))
    if len(found) > 1:
        raise ValueError(
            f"{account!r} names both an API key and an operator; write the ledger account "
            f"({' or '.join(found)})"
        )
    if not found:
        raise ValueError(
            f"no API key or operator {account!r}, and not a ledger account "
            "(pool, network, user:..., operator:...)"
        )
    return found[0]


async def grant(store: Any, account: str, amount: int) -> LedgerEntry:
    """Append one ``grant`` entry from the mint to ``account``; the entry written."""
    to = await resolve_account(store, account)
    if to == MINT:
        raise ValueError("the mint cannot grant to itself")

    async def engine() -> AsyncEngine:
        found: AsyncEngine = store.engine
        return found

    return await SqlLedger(engine).append_one(Transfer("grant", MINT, to, amount))
