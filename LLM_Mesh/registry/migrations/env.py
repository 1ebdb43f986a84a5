"""Alembic environment for the registry store.

The store runs migrations in code (:func:`LLM_Mesh.registry.store_migrate.upgrade`): it
passes an open synchronous connection in ``config.attributes["connection"]``
(from ``AsyncConnection.run_sync``). Without one, as when the ``alembic`` CLI is
pointed here, an async engine is built from ``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, pool

from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.registry.pg_connect import engine_for
from LLM_Mesh.registry.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    # the URL read as the store's engines read it (pg_connect: ?sslmode=, ?timeout= ...)
    engine = engine_for(normalize_database_url(url), poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(
        url=normalize_database_url(url),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        if not isinstance(given, Connection):
            raise TypeError(f"config.attributes['connection'] must be a Connection, got {given!r}")
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and no sqlalchemy.url configured")
    if context.is_offline_mode():
        _run_offline(url)
    else:
        asyncio.run(_run_with_own_engine(url))


main()
