"""The ``settlements`` reads over done-with rows by when they were settled, on the index
that ranges them (``ix_settlements_done``, migration 0012) whatever the planner knows.

Found 2026-12-05: a registry's SQLite store has no planner statistics (nothing runs
``ANALYZE``), and SQLite took ``ix_settlements_state`` (``state = ?``) for the
retention's delete and :func:`~LLM_Mesh.registry.earnings.node_totals`: every settled
row of the 400 days kept, read by each hourly prune statement (even when nothing is due)
and each totals call. The partial index serves them only when a query carries its
``WHERE`` word for word (:data:`DONE`, not bound parameters), and even then SQLite,
estimating without statistics, prefers the ``state`` index's equality; so on SQLite the
reads name it (``INDEXED BY``: an error, never a silent scan, if it ever cannot serve).
``ANALYZE`` is not the remedy here: SQLite's statistics (no STAT4 in this build) give a
column's average rows a value, and ``state`` is skewed (a few in flight, the rest
settled): with them SQLite still took the ``state`` index for these reads, and the
settler's ``answered_rows`` became a scan of the table (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import literal_column, text
from sqlalchemy.sql.elements import ColumnElement, TextClause

from LLM_Mesh.registry import tables

__all__ = ["DONE", "col", "done_rows", "is_done"]

#: ``ix_settlements_done``'s ``WHERE`` (tables.py, migration 0012), word for word: a query
#: must carry this text, not ``state IN (?, ?)``, for SQLite to use the partial index
DONE = "state IN ('settled', 'void')"


def done_rows(dialect: str) -> Any:
    """The ``FROM`` of a read over done-with rows: on SQLite, ``settlements`` read through
    ``ix_settlements_done``; elsewhere the table (PostgreSQL has statistics)."""
    if dialect == "sqlite":
        return text("settlements INDEXED BY ix_settlements_done")
    return tables.settlements


def col(name: str) -> ColumnElement[Any]:
    """Column ``name`` of ``settlements``, unqualified (the ``FROM`` may be a text), typed
    as the table's (``updated_at``'s datetimes bound as the table binds them)."""
    return literal_column(name, tables.settlements.c[name].type)


def is_done() -> TextClause:
    """The term that lets a query use ``ix_settlements_done`` (:data:`DONE`)."""
    return text(DONE)
