"""Uptime rewards: ``nodes.healthy_ms`` and ``reward_periods`` (see ``tables.py``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "nodes",
        sa.Column("healthy_ms", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "reward_periods",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("period_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(128), nullable=True),
        sa.Column("healthy_ms", sa.BigInteger(), nullable=False),
        sa.Column("mark_ms", sa.BigInteger(), nullable=False),
        sa.Column("performance", sa.Integer(), nullable=False),
        sa.Column("success", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("entry_seq", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "period_start", name=op.f("pk_reward_periods")),
    )
    op.create_index("ix_reward_periods_operator", "reward_periods", ["operator"])
    op.create_index("ix_reward_periods_period_start", "reward_periods", ["period_start"])


def downgrade() -> None:
    op.drop_index("ix_reward_periods_period_start", table_name="reward_periods")
    op.drop_index("ix_reward_periods_operator", table_name="reward_periods")
    op.drop_table("reward_periods")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("healthy_ms")
