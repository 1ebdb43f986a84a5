"""Grants: NetworkTokens issued by the mint, as ledger entries (``llm-mesh registry grant``).

``ACCOUNT`` is an API key's name or id (its user's account is ``pseudonym("user",
key id)``: what requests with that key are paid from), an operator's name (its account
is its keyed account, ``registry/ledger_accounts.py``), or a ledger account as written (``pool``,
``network``, ``user:...``, ``operator:...``), or ``probe:N`` (N from 1 to
``PROBE_ACCOUNTS``): the Nth account keyed-class canary probes are paid from
(``Pseudonyms.probe``: a ``user:`` account like any key's; the grant's entry is a user's
grant, docs/security.md, probes' tell (h)). A name that is both a key's and an
operator's is refused as ambiguous: write the ledger account.

A grant may carry an id of the admin's choosing (``registry grant --id``): the entry's
``request_id`` is ``grant-<id>`` (public, as every entry is), and a grant whose id is
already on the ledger is not written again: the earlier entry is returned, so a grant
re-run after its answer was lost (the database's commit went through, the command did not
hear it) grants once (found 2026-12-04: it granted twice).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from LLM_Mesh.core.ledger_entry import (
    ACCOUNT_RE,
    MINT,
    PROBE_ACCOUNTS,
    LedgerEntry,
    Transfer,
    pseudonym,
)
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger, entry_of
from LLM_Mesh.registry.ledger_accounts import pseudonyms

__all__ = ["GRANT_ID_MAX", "grant", "resolve_account"]

GRANT_ID_MAX = 100  # characters of a grant id ("grant-" + it: at most the column's 128)


async def resolve_account(store: Any, account: str) -> str:
    """The ledger account ``account`` names (see the module docstring)."""
    if ACCOUNT_RE.match(account):
        return account
    found: list[str] = []
    kinds: list[str] = []  # what each of ``found`` is, in words
    index = account.removeprefix("probe:") if account.startswith("probe:") else None
    if index in {str(i) for i in range(1, PROBE_ACCOUNTS + 1)}:
        found.append((await pseudonyms(store.engine)).probe(int(index)))
        kinds.append("a probe account")
    for key in await store.list_api_keys():
        if account in (key.name, key.key_id):
            found.append(pseudonym("user", key.key_id))
            kinds.append("an API key")
    for op in await store.list_operators():
        if op.name == account:
            found.append((await pseudonyms(store.engine)).operator(account))
            kinds.append("an operator")
    if len(found) > 1:
        distinct = list(dict.fromkeys(kinds))
        named = (  # "both an API key and an operator", "more than one API key"
            "both " + " and ".join(distinct)
            if len(distinct) > 1
            else "more than one " + distinct[0].split(" ", 1)[1]
        )
        raise ValueError(
            f"{account!r} names {named}; write the ledger account ({' or '.join(found)})"
        )
    if not found and index is not None:
        raise ValueError(f"a probe account is probe:1 to probe:{PROBE_ACCOUNTS}")
    if not found:
        raise ValueError(
            f"no API key or operator {account!r}, and not a ledger account "
            f"(pool, network, user:..., operator:...), nor probe:1 to probe:{PROBE_ACCOUNTS}"
        )
    return found[0]


def _grant_key(grant_id: str) -> str:
    if (
        not 1 <= len(grant_id) <= GRANT_ID_MAX
        or not grant_id.isprintable()
        or grant_id != grant_id.strip()
    ):
        raise ValueError(
            f"a grant id is 1 to {GRANT_ID_MAX} printable characters without spaces around "
            f"it, got {grant_id[: GRANT_ID_MAX + 1]!r}"
        )
    return f"grant-{grant_id}"


async def _granted(conn: AsyncConnection, key: str) -> LedgerEntry | None:
    e = tables.ledger_entries
    row = (
        await conn.execute(
            select(e).where(e.c.request_id == key, e.c.kind == "grant").order_by(e.c.seq).limit(1)
        )
    ).first()
    return None if row is None else entry_of(row)


async def grant(
    store: Any, account: str, amount: int, grant_id: str | None = None
) -> tuple[LedgerEntry, bool]:
    """Append one ``grant`` entry from the mint to ``account``: the entry and ``True``; with
    ``grant_id`` already granted, the earlier entry and ``False`` (nothing written; checked
    inside the append's transaction, appends being serialised there: exactly once)."""
    key = None if grant_id is None else _grant_key(grant_id)
    to = await resolve_account(store, account)
    if to == MINT:
        raise ValueError("the mint cannot grant to itself")

    async def engine() -> AsyncEngine:
        found: AsyncEngine = store.engine
        return found

    ledger = SqlLedger(engine)
    transfer = Transfer("grant", MINT, to, amount, key)
    if key is None:
        return await ledger.append_one(transfer), True

    async def unseen(conn: AsyncConnection) -> bool:
        return await _granted(conn, key) is None

    written = await ledger.append([transfer], guard=unseen)
    if written:
        return written[0], True
    async with (await engine()).connect() as conn:
        earlier = await _granted(conn, key)
    if earlier is None:  # pragma: no cover - refused only when it was there
        raise RuntimeError(f"grant {grant_id!r} was refused but is not on the ledger")
    if (earlier.to_account, earlier.amount) != (to, amount):
        raise ValueError(
            f"grant id {grant_id!r} was used for {earlier.amount:,} µNT to "
            f"{earlier.to_account} (ledger entry {earlier.seq}), not {amount:,} to {to}: "
            "a grant id names one grant"
        )
    return earlier, False
