"""Settlement retention: ``ix_settlements_done``, a partial index of the settlement rows
that are done with (``settled`` or ``void``) by ``updated_at``.

``registry/retention.py`` (``SettlementPruner``) deletes, hourly, done-with rows settled
before the retention's cutoff, 1,000 a statement; without this index each run would read
every settled row to find none old enough. Only rows that reached ``settled`` or ``void``
are in it (one index entry in a row's life: rows enter it when settled), so the hot
path's inserts and its ``answered`` updates do not maintain it.

On a large PostgreSQL ``settlements`` table the index takes a while to build and blocks
settlement writes meanwhile; it can be built beforehand without blocking (docs/operations.md):
``CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_settlements_done ON settlements (updated_at)
WHERE state IN ('settled', 'void')``, which this migration then keeps.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DONE = sa.text("state IN ('settled', 'void')")


def upgrade() -> None:
    op.create_index(
        "ix_settlements_done",
        "settlements",
        ["updated_at"],
        postgresql_where=DONE,
        sqlite_where=DONE,
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_settlements_done", table_name="settlements")
