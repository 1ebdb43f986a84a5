"""The usage audit's evidence in the store: ``usage_audit_windows``, ``_evidence``, ``_folds``.

Before this revision each replica audited the answers it relayed, in memory
(``registry/usage_audit.py``): a restart started the audit over, and with several replicas on
one database each saw its share of a node's answers only, so a liar spread over 3 replicas
needed 3 times the answers to be judged (found 2026-12-05, ``auditshare32``). Now every
replica adds its answers' sums to a model's window rows in batches (``usage_audit_windows``:
per model, window and node), folds a window closed for good into each node's evidence once
(``usage_audit_folds``: the last window folded per model; ``usage_audit_evidence``: per model
and node, with an epoch that each write moves), and judges the evidence every replica wrote
(``registry/usage_audit_sync.py``, ``core/usage_evidence.py``). An older replica neither
writes nor reads them. Downgrading drops the tables (the evidence starts over).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_audit_windows",
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("completion", sa.BigInteger(), nullable=False),
        sa.Column("completion_cap", sa.BigInteger(), nullable=False),
        sa.Column("prompt", sa.BigInteger(), nullable=False),
        sa.Column("prompt_cap", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "bucket", "node_id", name=op.f("pk_usage_audit_windows")),
    )
    op.create_table(
        "usage_audit_evidence",
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("peer_requests", sa.BigInteger(), nullable=False),
        sa.Column("peers", sa.Integer(), nullable=False),
        sa.Column("completion", sa.Float(), nullable=False),
        sa.Column("completion_cap", sa.Float(), nullable=False),
        sa.Column("completion_ref", sa.Float(), nullable=False),
        sa.Column("prompt", sa.Float(), nullable=False),
        sa.Column("prompt_cap", sa.Float(), nullable=False),
        sa.Column("prompt_ref", sa.Float(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", "node_id", name=op.f("pk_usage_audit_evidence")),
    )
    op.create_index(
        op.f("ix_usage_audit_evidence_bucket"), "usage_audit_evidence", ["bucket"], unique=False
    )
    op.create_table(
        "usage_audit_folds",
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("folded", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_usage_audit_folds")),
    )


def downgrade() -> None:
    op.drop_table("usage_audit_folds")
    op.drop_index(op.f("ix_usage_audit_evidence_bucket"), table_name="usage_audit_evidence")
    op.drop_table("usage_audit_evidence")
    op.drop_table("usage_audit_windows")
