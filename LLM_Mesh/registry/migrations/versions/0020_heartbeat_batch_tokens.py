"""``node_keys.seq_batch``: the token of the heartbeat batch that took ``last_seq``.

On PostgreSQL a batch of heartbeats takes its sequence numbers in one autocommit
``UPDATE ... FROM unnest(...)`` (``registry/store_replicas.py``); a connection killed
after that commit and before its answer is replaced and the batch run once more, which
found its own numbers taken and refused those heartbeats as replays. From this revision
each batch writes a random token with the numbers it takes, and a number equal to the
stored one is taken again only under the same token (the same batch, tried again): a
message replayed elsewhere is still refused. Rows written before have NULL (no batch
matches them). Downgrading drops the column.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("node_keys", sa.Column("seq_batch", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node_keys") as batch:
        batch.drop_column("seq_batch")
