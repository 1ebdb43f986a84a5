"""A request's ledger entries: ``GET /v1/ledger?request_id=`` (``registry/ledger_api.py``).

One query by the index on ``ledger_entries.request_id`` (``ix_ledger_entries_request_id``,
migration 0004), its matches in ``seq`` order: the work is the request's few entries
(a spend, its refund, a node's share, ...), not the ledger's size, and no page of the
whole ledger goes to the client. The id is the ledger's own ``request_id``: an answer's
``mesh.ledger_request_id`` when the client named its request (its own id appears only as
``c-`` and a hash of it, ``registry/parse.client_ledger_id``), else its ``mesh.request_id``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from LLM_Mesh.core.ledger_entry import LedgerEntry
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.ledger import SqlLedger, entry_of

__all__ = ["MAX_REQUEST_ID", "entries_of_request", "request_id_problem", "request_query"]

MAX_REQUEST_ID = 128  # the column's length (tables.py, String(128)); a client's id's most too


def request_id_problem(request_id: str) -> str | None:
    """Why ``request_id`` cannot name a ledger entry (a NUL or other control character, or
    longer than the column), or ``None``."""
    if not request_id:
        return "request_id is empty"
    if len(request_id) > MAX_REQUEST_ID:
        return f"request_id is at most {MAX_REQUEST_ID} characters, not {len(request_id)}"
    if not request_id.isprintable():
        return "request_id has a control character (a NUL, a line break, ...)"
    return None


def request_query(request_id: str, after: int, limit: int) -> Any:
    """The entries of ``request_id`` with ``seq > after``, oldest first, ``limit`` and one
    more (whether more follow)."""
    e = tables.ledger_entries
    return (
        select(e)
        .where(e.c.request_id == request_id, e.c.seq > after)
        .order_by(e.c.seq)
        .limit(limit + 1)
    )


async def entries_of_request(
    ledger: SqlLedger, request_id: str, after: int, limit: int
) -> tuple[list[LedgerEntry], bool]:
    """``request_id``'s entries with ``seq > after``, oldest first, at most ``limit``; and
    whether more follow."""
    engine = await ledger.engine()
    async with engine.connect() as conn:
        rows = (await conn.execute(request_query(request_id, after, limit))).all()
    return [entry_of(r) for r in rows[:limit]], len(rows) > limit
