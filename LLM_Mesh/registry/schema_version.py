"""Whether a store's schema is one this llm-mesh knows.

A database a newer llm-mesh migrated (the package then downgraded, or an older one pointed
at it) holds an Alembic revision this code's migrations do not have: nothing can be done
with it here, and it is not changed. Said in one line (:class:`SchemaUnknown`) by every
command that opens the store (``SqlStore.open``), and by
``registry serve`` (:func:`schema_unknown`) before it serves (found 2026-12-04: Alembic's
"Can't locate revision" traceback, exit 3, after start-up began).
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, pool

from LLM_Mesh import __version__
from LLM_Mesh.config import normalize_database_url
from LLM_Mesh.errors import MeshError
from LLM_Mesh.registry.pg_connect import engine_for

__all__ = ["MIGRATIONS_DIR", "SchemaUnknown", "check_schema_known", "schema_unknown"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SchemaUnknown(MeshError, ValueError):
    """The database's schema is at a revision these migrations do not have (a
    ``MeshError`` and a ``ValueError``: what each command that opens the store says in one
    line, ``up`` and ``demo`` included)."""


@functools.cache
def _known() -> frozenset[str]:
    """These migrations' revisions (read once a process: every store open asks)."""
    return frozenset(rev.revision for rev in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())


def _unknown_said(connection: Connection) -> str | None:
    heads = MigrationContext.configure(connection).get_current_heads()  # () when none yet
    if not heads:
        return None
    known = _known()
    unknown = [head for head in heads if head not in known]
    if not unknown:
        return None
    return (
        f"the database's schema is at revision {', '.join(unknown)}, which this llm-mesh "
        f"(version {__version__}) does not know: it was upgraded by a newer llm-mesh; run "
        "that version, or restore a backup"
    )


def check_schema_known(connection: Connection) -> None:
    """:class:`SchemaUnknown` unless the database behind ``connection`` (synchronous, as in
    ``run_sync``) is new or at a revision of these migrations."""
    said = _unknown_said(connection)
    if said is not None:
        raise SchemaUnknown(said)


async def schema_unknown(url: str) -> str | None:
    """Why the store at ``url`` cannot be used by this llm-mesh (its schema is newer), in
    one line said before serving; ``None`` when it can be (after ``sqlite_unusable`` and
    ``database_unreachable``: it connects)."""
    engine = engine_for(normalize_database_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_unknown_said)
    finally:
        await engine.dispose()
