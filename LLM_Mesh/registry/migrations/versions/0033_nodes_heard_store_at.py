"""``nodes.heard_store_at`` and ``nodes.heard_store_of``: heartbeats on the store's own clock.

Until this revision a heartbeat row carried only ``last_heartbeat_at``, stamped by the wall
clock of the replica that got it, and every other replica aged it on its own wall clock
(``registry/node_sync.py``): a replica whose clock stepped back or forward, ran ahead or
behind, read nodes as heard when they were not, or not when they were, and the machinery
that told steps (``core/beat_stamp.py``) still left holes (found 2026-12-07, sync42). Now
each heartbeat's ``UPDATE`` (``store_rewards.heartbeat_statement``, ``heartbeats_statement``)
and each registration (``store.SqlStore.upsert_node``) also writes ``heard_store_at`` on the
store's clock (PostgreSQL's ``clock_timestamp()``; SQLite: this host's) and
``heard_store_of`` equal to the ``last_heartbeat_at`` it writes; the node poll reads the
store's clock in the same statement as the rows, so a row's age is measured on one clock
(``core/store_heard.py``). ``ix_nodes_heard_store_at``: the poll's window on that clock.

A replica of the previous version (0032) running beside this one during an upgrade writes a
heartbeat's ``last_heartbeat_at`` and leaves these: the stamp is then not told (the two
differ) and the row is read as before, on the wall clocks. Rows written before this
revision have both NULL: the same. Plain ``ADD COLUMN`` and ``DROP COLUMN`` (no table
copy): SQLite keeps 0013's triggers.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("heard_store_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("nodes", sa.Column("heard_store_of", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_nodes_heard_store_at", "nodes", ["heard_store_at"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_nodes_heard_store_at", table_name="nodes")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table copy, the 0013 triggers stay
    op.execute("ALTER TABLE nodes DROP COLUMN heard_store_of")
    op.execute("ALTER TABLE nodes DROP COLUMN heard_store_at")
