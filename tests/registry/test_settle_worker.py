"""``registry/settle_worker.LedgerThread`` on PostgreSQL: found 2026-12-07 (replica41, a new
operator's walk of docs/deploy.md with three replicas): after ``pg_terminate_backend`` of
the database's connections the next paid answer's settlement failed on its pooled
connection (an ERROR, ``settling 1 requests failed; retrying``, with a three-part
traceback ending ``InterfaceError: connection is closed``) and was written at the next try:
the settlement's engine was not pre-pinged at checkout, as the store's is
(docs/ARCHITECTURE.md: "Connections to PostgreSQL are pre-pinged at checkout")."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from LLM_Mesh.registry.settle_worker import LedgerThread
from tests.waiting import scaled


async def test_a_connection_the_server_dropped_is_replaced_not_failed_on(
    pg_database_url: str,
) -> None:
    url = make_url(pg_database_url).set(drivername="postgresql+asyncpg")
    worker = LedgerThread(url, wall_clock=time.time, on_append=lambda: None)
    await worker.start()
    try:

        async def backend_pid() -> int:
            engine = worker._engine
            assert engine is not None
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

        first = await worker.call(backend_pid())
        admin = await asyncpg.connect(make_url(pg_database_url).render_as_string(False))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
            deadline = time.monotonic() + scaled(10)
            while await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", first
            ):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the pooled connection's loop hears the close
        second = await worker.call(backend_pid())  # replaced at checkout, not failed on
        assert second != first
    finally:
        await worker.stop()
