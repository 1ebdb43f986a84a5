"""The store's Alembic migrations, run in code (no ``alembic.ini``): up, down, to head."""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from LLM_Mesh.registry.schema_version import MIGRATIONS_DIR, check_schema_known

__all__ = ["MIGRATIONS_DIR", "alembic_config", "downgrade", "migrate_to_head", "upgrade"]

# Any fixed number: serializes concurrent migrations of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x4C4C4D4D  # "LLMM"

_log = logging.getLogger(__name__)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the store's migrations, built in code.

    ``connection`` (a synchronous connection, e.g. inside ``run_sync``) is what
    ``env.py`` migrates.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate the database behind ``connection`` up to ``revision``."""
    command.upgrade(alembic_config(connection), revision)


def downgrade(connection: Connection, revision: str = "base") -> None:
    """Migrate the database behind ``connection`` down to ``revision``."""
    command.downgrade(alembic_config(connection), revision)


def migrate_to_head(connection: Connection) -> None:
    """Migrate to head (``SchemaUnknown`` on a newer llm-mesh's schema, left as it is); on
    PostgreSQL under an advisory lock: replicas starting at once migrate one after another."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    check_schema_known(connection)  # a newer llm-mesh's schema: one line, left as it is
    before = MigrationContext.configure(connection).get_current_revision()
    upgrade(connection, "head")
    after = MigrationContext.configure(connection).get_current_revision()
    # one line of what changed (alembic's own, a line or more a migration, are DEBUG's:
    # ``logs.setup_logging``; found 2026-12-07: 38 of them on a new store)
    if after != before:
        if before is None:
            _log.info("store: a new store, migrated to schema %s", after)
        else:
            _log.info("store: schema migrated from %s to %s", before, after)
