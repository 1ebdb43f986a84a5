"""The receipts nobody received, in the store: ``cut_receipts``.

A stream its client cut before the node's final chunk (after a failover's continuation or
not) is paid at its end, and its receipt, made for the ledger entry to commit to
(``receipt_hash``), reaches nobody: the client left. Before this revision it was kept only
in the gateway's log (money36: a line at INFO when a part carried its node's signed prompt
count), so an audit needed the operator's log of that day. Now the gateway writes each such
receipt here (``registry/cut_receipts.py``: its hash, the request's id in the ledger, the
payer's account, when, and the receipt's JSON as ``X-Mesh-Receipt`` encodes it: counts,
hashes, ids, amounts and signatures; no prompt, no output text), and ``GET
/v1/receipts/{receipt_hash}`` serves it to its payer's key or the admin key, for ``llm-mesh
receipt verify``. An older replica neither writes nor reads it. Downgrading drops the table
(its receipts are still in the ledger as hashes, and in the logs where logged).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cut_receipts",
        sa.Column("receipt_hash", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("payer", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("receipt_hash", name=op.f("pk_cut_receipts")),
    )
    op.create_index(
        op.f("ix_cut_receipts_request_id"), "cut_receipts", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_cut_receipts_request_id"), table_name="cut_receipts")
    op.drop_table("cut_receipts")
