"""The cut receipts' pruner reads an index: ``ix_cut_receipts_created_at``.

``retention.CutReceiptPruner`` (``LLM_MESH_CUT_RECEIPT_KEEP_DAYS``, hourly) deletes the
receipts made before its cutoff, a bounded batch a statement, selected by ``created_at``
(``store_cut_receipts.SqlCutReceipts.prune_cut_receipts``). 0031 indexed only
``request_id``, so each run read the whole table (400 days of cut streams) to find the few
rows past the cutoff, and again for each batch (found 2026-12-06, review38b), where the
request log's pruner reads ``ix_requests_created_at``. Downgrading drops the index.

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
        op.f("ix_cut_receipts_created_at"), "cut_receipts", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cut_receipts_created_at"), table_name="cut_receipts")
