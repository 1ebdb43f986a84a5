"""Settlement: ``balances`` (kept by every ledger append, plus what requests in flight
reserve), ``settle_holders`` (the gateway processes that hold reservations, and when each
was last alive), ``pool_days`` (the community pool's daily top-ups), the holder of each
``settlements`` row, and ``requests.cost`` in whole micro-NetworkTokens.

``balances`` starts as the sums of the ledger's entries so far.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "balances",
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_balances")),
    )
    op.execute(
        "INSERT INTO balances (account, balance, reserved) "
        "SELECT account, SUM(delta), 0 FROM ("
        " SELECT to_account AS account, amount AS delta FROM ledger_entries"
        " UNION ALL SELECT from_account AS account, -amount AS delta FROM ledger_entries"
        ") moves GROUP BY account"
    )
    op.create_table(
        "settle_holders",
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("beat_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_settle_holders")),
    )
    op.create_table(
        "pool_days",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_pool_days")),
    )
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(sa.Column("holder", sa.String(64), nullable=True))
        batch.create_index("ix_settlements_holder", ["holder"])
    op.execute("UPDATE requests SET cost = ROUND(cost * 1000000)")
    with op.batch_alter_table("requests") as batch:
        batch.alter_column(
            "cost", existing_type=sa.Numeric(18, 6), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.alter_column(
            "cost", existing_type=sa.BigInteger(), type_=sa.Numeric(18, 6), existing_nullable=False
        )
    op.execute("UPDATE requests SET cost = cost / 1000000.0")
    with op.batch_alter_table("settlements") as batch:
        batch.drop_index("ix_settlements_holder")
        batch.drop_column("holder")
    op.drop_table("pool_days")
    op.drop_table("settle_holders")
    op.drop_table("balances")
