"""Cut receipts' retention: ``ix_cut_receipts_created_at``, the ``cut_receipts`` rows by when
they were made.

``registry/retention.py`` (``CutReceiptPruner``) deletes, hourly, the receipts made before
the retention's cutoff, 1,000 a statement (``Store.prune_cut_receipts``); without this index
each statement read the whole table to find the rows old enough (SQLite: ``SCAN
cut_receipts``), even with nothing due. One index entry a receipt, written once (a receipt
is never updated).

On a large PostgreSQL ``cut_receipts`` table the index can be built beforehand without
blocking the gateway's writes: ``CREATE INDEX CONCURRENTLY IF NOT EXISTS
ix_cut_receipts_created_at ON cut_receipts (created_at)``, which this migration then keeps.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_cut_receipts_created_at", "cut_receipts", ["created_at"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_cut_receipts_created_at", table_name="cut_receipts")
