"""``nodes.keyed_at``: the node's last keyed request, as its last heartbeat said.

A node keeps the last places of its line (``max_queue``) from anonymous requests while it
has had a keyed request in the last 600 s (``core/priority.py``), and the gateway's router
counts those places the same way. Before this revision each replica knew only the keyed
requests it had sent: a replica that sent none took the node for keeping none, and after
an anonymous request's 429 there closed it to keyed requests too until the next heartbeat
(found 2026-12-05). Now a node says how long ago its last keyed request came
(``Heartbeat.keyed_age_s``); the replica that gets the heartbeat writes the time here, and
every other replica reads it back with the heartbeat (``registry/node_sync.py``). NULL:
not said (an older node, none in the window, or a row an older replica's heartbeat wrote
last); an older replica neither writes nor reads it. Downgrading drops the column.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("keyed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("keyed_at")
