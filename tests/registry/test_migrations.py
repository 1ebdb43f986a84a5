"""Alembic migrations of the registry store: head matches ``tables.metadata``, down and up work."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.store import MIGRATIONS_DIR, SqlStore, alembic_config, downgrade, upgrade

ALL_TABLES = {
    "admin_key", "api_keys", "node_keys", "nodes", "operators", "requests", "ledger_checkpoints",
    "ledger_entries", "ledger_head", "ledger_keys", "ledger_nodes", "settlements",
    "canary_status", "canary_verifiers", "idempotency_keys", "node_checks", "registry_replicas",
    "reward_periods", "balances", "settle_holders", "pool_days", "settle_batches",
    "poll_versions",
}  # fmt: skip


def _engine(url: str) -> AsyncEngine:
    return create_async_engine(normalize_database_url(url))


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, tables.metadata))


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _user_tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def test_one_head_and_packaged_files_exist() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == ["0011"]
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


async def test_head_matches_metadata(database_url: str) -> None:
    async with SqlStore(database_url):
        pass
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_current) == "0011"
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_downgrade_to_base_then_upgrade_again(database_url: str) -> None:
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
            assert await conn.run_sync(_user_tables) == ALL_TABLES
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert await conn.run_sync(_user_tables) == set()
            assert await conn.run_sync(_current) is None
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "head")
        async with engine.connect() as conn:
            assert await conn.run_sync(_current) == "0011"
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
    # and the store is happy with the result
    async with SqlStore(database_url) as store:
        assert await store.list_nodes() == []


async def test_empty_diff_is_not_vacuous(database_url: str) -> None:
    """On an empty database the comparison does report the missing tables."""
    engine = _engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    added = {d[1].name for d in diff if d[0] == "add_table"}
    assert added == ALL_TABLES


async def test_0003_adds_api_keys_on_top_of_0002(database_url: str) -> None:
    """0003 goes on a 0002 store (an upgrade in place) and comes off again."""
    engine = _engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0002")
            assert "api_keys" not in await conn.run_sync(_user_tables)
        async with engine.begin() as conn:
            await conn.run_sync(upgrade, "0003")
            assert "api_keys" in await conn.run_sync(_user_tables)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade, "0002")
            assert await conn.run_sync(_current) == "0002"
            assert "api_keys" not in await conn.run_sync(_user_tables)
    finally:
        await engine.dispose()
