"""``node_checks.since`` and ``node_checks.why``: what a check found, shared as its result is.

Until this revision the store shared each node's last active check result (``ok``,
``checked_at``) but not since when the checks found the node so nor why the last one
failed: those stayed in the memory of the replica that ran the check, so a node
heartbeating to another replica was told its checks failed without the reason, and with
the time that replica first applied the result. Now the replica that records a result
writes both (``SqlReplicaState.record_health_checks``): ``since`` is kept while the result
stays the same (the first check with it, whichever replica made it), ``why`` is the last
failed check's reason (at most 300 printable characters, ``core/check_state.reason``;
NULL when passing), and every replica applies them with the result (``node_sync.py``).

Rows written before this revision have both NULL: a replica reading one decides ``since``
from the results it saw and keeps a reason it knows, as before. A replica of the previous
version (0015) running beside this one during an upgrade writes ``ok`` and
``checked_at`` only; a reason it leaves under a passing result is never said (a passing
result has no reason), and ``since`` is right again at the next result a newer replica
writes. Downgrading drops the two columns (and what they said).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("node_checks") as batch:
        batch.add_column(sa.Column("since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("why", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("node_checks") as batch:
        batch.drop_column("why")
        batch.drop_column("since")
