"""``idempotency_keys.claim``: the token naming one claim of a client request id.

A replica's release of an id (its request ended in a retryable way) deleted the running
row of that id under that replica: a try of the release that reached the store late (a
retry after its answer was lost) deleted the same replica's own later claim of the id,
and a third request ran beside the second. From this revision each claim writes a random
token here, and its end, its release and the push of an open stream's row (a stream's id
is held until it ends: ``registry/shared_idempotency.py``) match it. Rows written before
this revision have NULL: no release of this version matches them (they expire as before).
Downgrading drops the column.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("claim", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("claim")
