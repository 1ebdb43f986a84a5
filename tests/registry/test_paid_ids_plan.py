"""The lookup after a restart (``paid_ids.paid_under``) reads the primary key's range of
one client id on SQLite, not a payer's (or every paid row's) index entries.

Found 2026-12-05: a registry's SQLite store has no planner statistics (nothing runs
``ANALYZE``), and SQLite then chose ``ix_settlements_payer`` (``payer = ?``): every row
the payer ever paid (the anonymous pool: all anonymous requests of the retention's 400
days) read for each unseen id in the window after a start. Without that index it chose
``ix_settlements_state`` (every answered and settled row) instead. Now the index is gone
(migration 0021) and the lookup's payer and state terms can use no index.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import create_async_engine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.paid_ids import paid_under
from LLM_Mesh.registry.store import SqlStore

T = datetime(2026, 12, 5, tzinfo=timezone.utc)
ID = "c-" + "ab" * 12


def _row(key: str, payer: str, state: str) -> dict[str, Any]:
    return {
        "request_id": key, "part": 0, "payer": payer, "model": "m", "estimate": 5,
        "amount": 5, "fee": 0, "state": state, "created_at": T, "updated_at": T,
    }  # fmt: skip


async def test_the_lookup_reads_the_primary_keys_range_and_finds_the_same_rows(
    database_url: str,
) -> None:
    async with SqlStore(database_url):  # the store's schema, migrated to head
        pass
    engine = create_async_engine(normalize_database_url(database_url))
    sent: list[tuple[str, Any]] = []

    def _seen(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        sent.append((sql, params))

    try:
        async with engine.begin() as conn:
            rows = [_row(f"c-{i:024x}~r{i}.chat", "pool", "settled") for i in range(200)]
            rows += [
                _row(f"{ID}~x.chat", "user:a", "settled"),
                _row(f"{ID}~y.comp", "pool", "void"),
            ]
            rows += [_row(f"{ID}~z", "user:b", "answered")]  # a key without a tag: any path
            await conn.execute(insert(tables.settlements), rows)
        event.listen(engine.sync_engine, "before_cursor_execute", _seen)
        since = T - timedelta(minutes=10)
        assert await paid_under(engine, ID, "user:a", since, "chat")
        assert not await paid_under(engine, ID, "user:a", since, "comp")  # another path
        assert not await paid_under(engine, ID, "pool", since, "comp")  # void: not paid
        assert not await paid_under(engine, ID, "user:a", T + timedelta(seconds=1), "chat")
        assert not await paid_under(engine, "c-" + "cd" * 12, "pool", since, "chat")
        assert await paid_under(engine, ID, "user:b", since, "comp")
        assert not await paid_under(engine, ID, "user:b", since, "comp", exact=True)
    finally:
        await engine.dispose()
    assert len(sent) == 7
    if not database_url.startswith("sqlite:///"):
        return  # PostgreSQL's planner has statistics: it took the range with or without
    db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    try:
        for extra in ("", "CREATE INDEX ix_again_payer ON settlements (payer)"):
            if extra:  # an index on the payer again (0021 undone): still the key's range
                db.execute(extra)
            for sql, params in sent:
                plan = [r[-1] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params)]
                assert plan == [
                    "SEARCH settlements USING INDEX sqlite_autoindex_settlements_1 "
                    "(request_id>? AND request_id<?)"
                ], plan
    finally:
        db.close()
