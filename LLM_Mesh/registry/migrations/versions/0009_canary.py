"""Quality control: ``canary_verifiers``, ``canary_status``, ``api_keys.trusted_only`` (``tables.py``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canary_verifiers",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("trusted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_canary_verifiers")),
    )
    op.create_table(
        "canary_status",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("last_probe_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(512), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "model", name=op.f("pk_canary_status")),
    )
    op.create_index("ix_canary_status_updated_at", "canary_status", ["updated_at"])
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("trusted_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("trusted_only")
    op.drop_index("ix_canary_status_updated_at", table_name="canary_status")
    op.drop_table("canary_status")
    op.drop_table("canary_verifiers")
