"""Registry fixtures: a database URL and an open ``SqlStore`` on SQLite and PostgreSQL.

The PostgreSQL parameter (marker ``postgres``) creates a throwaway database
``llm_mesh_test_<hex>`` on the server named by ``LLM_MESH_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``) and drops it afterwards. When
that server cannot be reached the test is skipped, unless
``LLM_MESH_REQUIRE_PG=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from LLM_Mesh.registry.store import SqlStore

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

DIALECTS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _admin_dsn() -> str:
    url = os.environ.get("LLM_MESH_TEST_PG_URL") or DEFAULT_PG_URL
    # asyncpg wants a plain libpq-style DSN, without a SQLAlchemy driver suffix.
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_connect() -> asyncpg.Connection:
    dsn = _admin_dsn()
    try:
        return await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = make_url(dsn).render_as_string(hide_password=True)
        message = f"PostgreSQL not reachable at {shown}: {exc!r}"
        if os.environ.get("LLM_MESH_REQUIRE_PG") == "1":
            pytest.fail(f"{message} (LLM_MESH_REQUIRE_PG=1)", pytrace=False)
        pytest.skip(message)


async def _drop_database(name: str) -> None:
    conn = await _admin_connect()
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


@pytest.fixture
async def pg_database_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"llm_mesh_test_{secrets.token_hex(6)}"
    conn = await _admin_connect()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield make_url(_admin_dsn()).set(database=name).render_as_string(hide_password=False)
    finally:
        await _drop_database(name)


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, as a plain URL (``sqlite:///...`` or ``postgresql://...``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url = request.getfixturevalue("pg_database_url")
    if not isinstance(url, str):
        raise TypeError(f"pg_database_url gave {url!r}")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """An open store on an empty (migrated) database, closed afterwards."""
    s = SqlStore(database_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
