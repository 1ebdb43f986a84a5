"""Replicas: ``idempotency_keys``, ``node_checks``, ``registry_replicas``, ``nodes.changed_at``.

Revision ID: 0008
Revises: 0007 (the integrator rechains it after 0006/0007)
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("heard_by", sa.String(64), nullable=True))
    op.create_index("ix_nodes_changed_at", "nodes", ["changed_at"])
    op.create_index("ix_nodes_last_heartbeat_at", "nodes", ["last_heartbeat_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=True),
        sa.Column("media_type", sa.String(128), nullable=True),
        sa.Column("too_large", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])
    op.create_table(
        "node_checks",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_node_checks")),
    )
    op.create_index("ix_node_checks_checked_at", "node_checks", ["checked_at"])
    op.create_table(
        "registry_replicas",
        sa.Column("replica_id", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("demand", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", name=op.f("pk_registry_replicas")),
    )
    op.create_index("ix_registry_replicas_seen_at", "registry_replicas", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_registry_replicas_seen_at", table_name="registry_replicas")
    op.drop_table("registry_replicas")
    op.drop_index("ix_node_checks_checked_at", table_name="node_checks")
    op.drop_table("node_checks")
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_nodes_last_heartbeat_at", table_name="nodes")
    op.drop_index("ix_nodes_changed_at", table_name="nodes")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("heard_by")
        batch.drop_column("changed_at")
