"""Settlement of requests: ``settlements`` (pending, settled or void; see ``tables.py``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settlements",
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("part", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("payer", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(128), nullable=True),
        sa.Column("operator", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("estimate", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("fee", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("receipt_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "part", name=op.f("pk_settlements")),
    )
    op.create_index("ix_settlements_state", "settlements", ["state"])
    op.create_index("ix_settlements_payer", "settlements", ["payer"])
    op.create_index("ix_settlements_operator", "settlements", ["operator"])


def downgrade() -> None:
    op.drop_index("ix_settlements_operator", table_name="settlements")
    op.drop_index("ix_settlements_payer", table_name="settlements")
    op.drop_index("ix_settlements_state", table_name="settlements")
    op.drop_table("settlements")
