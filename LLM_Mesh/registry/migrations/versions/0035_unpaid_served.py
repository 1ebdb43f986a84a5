"""Requests served unpaid, per node: ``unpaid_served``.

A request the gateway could not charge because its receipt could not carry the charges (a
charge with no part of its node, or a payer of a kind a receipt does not name:
``account._priced``; money42 made such a request uncharged, its version-4 receipt signing
``settled`` false) left its nodes unpaid, and their operators were told nothing: only the
registry's ERROR line and, since small42, ``llm_mesh_gateway_unpriced_requests_total`` on
its ``/metrics``. Now the gateway counts each such request here for every node it would
have paid (``registry/unpaid.py``, off the hot path: one row per node, UTC day, model and
reason, its ``requests`` added to), and ``GET /v1/earnings`` answers the operator's nodes'
counts in its window (``unpaid``), which ``llm-mesh earnings`` says (found 2026-12-07,
money43). An older replica neither writes nor reads it. Downgrading drops the table (the
counts are lost; the ERROR lines stay in the logs).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unpaid_served",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "day", "model", "reason", name=op.f("pk_unpaid_served")),
    )


def downgrade() -> None:
    op.drop_table("unpaid_served")
