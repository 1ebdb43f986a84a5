"""asyncpg's arguments for a store URL (``registry/pg_connect.py``): the settlement's own
connection reads the URL's options as the store's engine does.

Found 2026-12-06 (keys38): deploy.md's ``postgresql://...?ssl=require`` was read by the
store's engine (SQLAlchemy's asyncpg dialect) as asyncpg's ``ssl``, and by the settlement's
connection (``settle_db.PgSettleDb``, the URL as a DSN) as a server setting, which
PostgreSQL refuses: "parameter "ssl" cannot be changed now", and the registry, settlement on
by default, did not start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from LLM_Mesh.registry.pg_connect import asyncpg_args
from LLM_Mesh.registry.settle_db import PgSettleDb, settle_db_for
from LLM_Mesh.registry.store import SqlStore


def test_each_query_option_is_an_argument_of_asyncpg() -> None:
    args = asyncpg_args(
        "postgresql+asyncpg://mesh:hunter2@db.example:6543/mesh?ssl=require&timeout=7"
        "&prepared_statement_cache_size=0"
    )
    assert args == {"host": "db.example", "port": 6543, "user": "mesh",
                    "password": "hunter2", "database": "mesh", "ssl": "require",
                    "timeout": "7"}  # fmt: skip
    assert asyncpg_args("postgresql://mesh@db.example/mesh") == {
        "host": "db.example", "user": "mesh", "database": "mesh"
    }  # fmt: skip


async def _store_takes(url: str) -> str:
    """What the store's engine makes of ``url``: ``"ok"`` or its error's class."""
    engine = create_async_engine(SqlStore(url).url)  # the store's URL, as its engine's
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # the driver's, wrapped by SQLAlchemy or not
        return type(getattr(exc, "orig", None) or exc).__name__
    finally:
        await engine.dispose()
    return "ok"


async def _settlement_takes(url: str) -> str:
    db = settle_db_for(url)
    assert isinstance(db, PgSettleDb)
    try:
        await db.open()
    except Exception as exc:
        return type(exc).__name__
    finally:
        await db.close()
    return "ok"


@pytest.mark.postgres
@pytest.mark.parametrize("ssl", ["disable", "prefer", "require"])
async def test_the_settlement_takes_the_ssl_option_as_the_store_does(
    pg_database_url: str, ssl: str
) -> None:
    """``?ssl=disable`` connects (and ``require`` fails, or connects, as the store's
    engine does, whether this server speaks SSL or not); before: every ``?ssl=`` was
    ``CantChangeRuntimeParamError`` at the settlement, 3 of 3 failed."""
    url = f"{pg_database_url}?ssl={ssl}"
    store = await _store_takes(url)
    assert ssl != "disable" or store == "ok", store
    assert await _settlement_takes(url) == store


@pytest.mark.postgres
async def test_verify_full_reads_the_ca_file_for_the_store_and_the_settlement(
    pg_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy.md's ``?ssl=verify-full``: both connections check the server against the CA
    file ``PGSSLROOTCERT`` names (here none there: both refuse before any query, as they
    would a server whose certificate that CA did not sign), unlike ``?ssl=require``."""
    monkeypatch.setenv("PGSSLROOTCERT", str(tmp_path / "no-such-root.crt"))
    url = f"{pg_database_url}?ssl=verify-full"
    store = await _store_takes(url)
    assert store == "FileNotFoundError", store
    assert await _settlement_takes(url) == store
