"""``nodes.tls_fingerprint`` and ``nodes.tls_at``: a node's TLS certificate pin, shared.

Until this revision a replica learnt an https node's certificate fingerprint only from a
registration it received itself (the pins were in memory). A node registers and
heartbeats at one replica of its list (or whichever one the balancer gives it), so the
other replicas, which learn the node from the store, called it unpinned: a self-signed
node failed every request they sent it (found deploying two replicas behind nginx,
docs/deploy.md). Now each registration writes its pin with the row (``""``: none, plain
http or a certificate verified by the CAs) and ``tls_at`` equal to the row's
``changed_at`` (``store.py``); every replica pins it when it loads or polls the node
(``snapshot.py``, ``node_sync.py``).

A replica of the previous version (0016) running beside this one during an upgrade
re-registers a node without these columns: its ``changed_at`` moves and ``tls_at`` does
not, so the pin left in the row is not told (``store_replicas.node_from_row``) and the
node is asked to register again where it heartbeats, as before. Rows written before this
revision have both NULL: the same. Downgrading drops the two columns.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (no table copy): SQLite keeps the triggers of 0013 on ``nodes``
    op.add_column("nodes", sa.Column("tls_fingerprint", sa.String(128), nullable=True))
    op.add_column("nodes", sa.Column("tls_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("tls_at")
        batch.drop_column("tls_fingerprint")
