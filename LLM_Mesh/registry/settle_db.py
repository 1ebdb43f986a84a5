"""Settlement's hot-path writes (reserve, answer, void) on a dedicated database connection.

:class:`~LLM_Mesh.registry.settlement.Settlement` hands a batch of operations
(``registry/settle_ops.py``: :class:`Reserve`, :class:`Answer`, :class:`Void`, a lease's)
to :meth:`SettleDb.apply`, which runs them in order in **one** transaction (group commit:
whatever queued while the previous transaction ran), payer rows locked in account order.
:func:`settle_db_for` picks the writer for a store's URL:

- SQLite (``registry/settle_db_sqlite.py``, :class:`SqliteSettleDb`): the standard
  ``sqlite3`` module on one connection, a batch tried on the event loop first when the
  write lock is free at once, else in the connection's own thread;
- PostgreSQL (``registry/settle_db_pg.py``, :class:`PgSettleDb`): one ``asyncpg``
  connection, a batch one call of a PL/pgSQL function with a batch id, applied once
  however often it is sent.

Everything off the hot path (settling into the ledger, recovery, balances) uses
SQLAlchemy (``registry/settlement.py``). This module's names are the writers' too (what
the rest of the registry imports from here).
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from LLM_Mesh.file_walk import private_sqlite_path
from LLM_Mesh.registry.settle_db_pg import PgSettleDb
from LLM_Mesh.registry.settle_db_sqlite import (
    JOURNAL_SIZE_LIMIT,
    SqliteSettleDb,
    sqlite_now,
    sqlite_time,
)
from LLM_Mesh.registry.settle_ops import (
    Answer,
    LeaseOp,
    Op,
    PaidPart,
    Reserve,
    Reserved,
    SettleDb,
    Void,
)

__all__ = [
    "JOURNAL_SIZE_LIMIT",
    "Answer",
    "LeaseOp",
    "Op",
    "PaidPart",
    "PgSettleDb",
    "Reserve",
    "Reserved",
    "SettleDb",
    "SqliteSettleDb",
    "Void",
    "settle_db_for", "sqlite_now", "sqlite_time",
]  # fmt: skip


def settle_db_for(url: str) -> SettleDb:
    """The :class:`SettleDb` for a store's SQLAlchemy URL (SQLite file or PostgreSQL)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError("settlement needs a SQLite file (or PostgreSQL), not :memory:")
        return SqliteSettleDb(str(private_sqlite_path(database, make=False)))  # (file_walk)
    if backend == "postgresql":
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return PgSettleDb(dsn)
    raise ValueError(f"settlement supports SQLite and PostgreSQL, not {backend!r}")
