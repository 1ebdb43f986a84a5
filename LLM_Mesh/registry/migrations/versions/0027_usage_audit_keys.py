"""The usage audit's keys 320 characters wide (``usage_audit_*.model``, 256 before).

An audit key is a model id (up to 256 characters, as routed) and, for a request only the
larger contexts of the model's nodes take, `` (context N)`` (N at most ``MAX_CONTEXT``):
up to 274 characters. At 256 a key past the width was not counted
(``usage_audit_sync.MAX_KEY_CHARS``), so a model id near 256 characters was never audited
on those requests (found 2026-12-05, attack32c; closed 2026-12-06, audit33). PostgreSQL
widens a ``varchar`` without rewriting the table; SQLite's tables are copied (Alembic's
batch mode). Downgrading drops the rows of keys past 256 characters, then narrows the columns.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("usage_audit_windows", "usage_audit_evidence", "usage_audit_folds")


def _width(old: int, new: int) -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "model", existing_type=sa.String(old), type_=sa.String(new), existing_nullable=False
            )


def upgrade() -> None:
    _width(256, 320)


def downgrade() -> None:
    for table in _TABLES:
        op.execute(sa.text(f"DELETE FROM {table} WHERE length(model) > 256"))
    _width(320, 256)
