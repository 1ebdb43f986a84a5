"""The canary's evidence across sampled probes in the store: ``canary_departures``.

Before this revision each replica kept the CUSUM tallies of ``core/canary_departures.py``
(how often a node left the reference's arg max on sampled probes) in memory: a restart (each
deploy) forgot them, so a liar started from zero again, and replicas on one database each
built their own. Now every replica applies its probes to the rows in batches
(``registry/canary_departures_sync.py``, ``core/canary_departures_step.py``) and loads them
at start. An older replica neither writes nor reads them. Downgrading drops the table (the
evidence starts over).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canary_departures",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("slice", sa.String(32), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("probes", sa.BigInteger(), nullable=False),
        sa.Column("departures", sa.BigInteger(), nullable=False),
        sa.Column("at_first", sa.BigInteger(), nullable=False),
        sa.Column("written", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(
            "node_id", "model", "kind", "slice", name=op.f("pk_canary_departures")
        ),
    )
    op.create_index(
        op.f("ix_canary_departures_score"), "canary_departures", ["score"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_canary_departures_score"), table_name="canary_departures")
    op.drop_table("canary_departures")
