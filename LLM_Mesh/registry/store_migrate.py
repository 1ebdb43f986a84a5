"""The store's Alembic migrations, run in code (no ``alembic.ini``): up, down, to head."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from LLM_Mesh.registry.schema_version import MIGRATIONS_DIR, check_schema_known

__all__ = ["MIGRATIONS_DIR", "alembic_config", "downgrade", "migrate_to_head", "upgrade"]

# Any fixed number: serializes concurrent migrations of one PostgreSQL database.
_PG_MIGRATION_LOCK = 0x4C4C4D4D  # "LLMM"


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
    upgrade(connection, "head")
