"""``operators.uptime_nodes``: the admin's uptime cap for one operator.

Since 2026-12-05 an operator's nodes are credited at most ``Settings.reward_uptime_nodes``
(``LLM_MESH_REWARD_UPTIME_NODES``, default 4) nodes' worth of uptime per reward period,
split over them (``core/rewards.operator_uptime_ms``): uptime is bounded per operator, not
per node id. This column lets the admin set another number for one operator (``llm-mesh
registry operators set NAME --uptime-nodes N``; 0: no cap for it); NULL, every row written
before this revision, follows the registry's setting. An older replica reads the table
without the column and applies its own rule. Downgrading drops the column.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("operators", sa.Column("uptime_nodes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operators") as batch:
        batch.drop_column("uptime_nodes")
