"""``nodes.keeps_no_prompts`` and ``nodes.keeps_at``: a node's signed declaration, shared.

Until this revision a replica knew a node's ``keeps_no_prompts`` (``core/prompt_keeping.py``)
only from a registration it received itself: a replica that learnt the node from the store
(it registered at another one, ``node_sync.py``) or that restarted (``snapshot.load_nodes``)
judged it by its engines, so a ``llama-cpp`` node that declared ``false`` got prompts that did
not opt in through that replica until it registered there again (found 2026-12-06, closed
2026-12-06, keepstore33). Now each registration writes its declaration with the row (NULL:
it declared nothing) and ``keeps_at`` equal to the row's ``tls_at`` (``store.py``); every
replica reads it when it loads or polls the node.

A replica of the previous version (0028) running beside this one during an upgrade
re-registers a node without these columns: its ``tls_at`` moves and ``keeps_at`` does not, so
the declaration left in the row is not told (``store_replicas.node_from_row``) and the node is
judged as before, by its engines. Rows written before this revision have both NULL: the same.
Plain ``ADD COLUMN`` and ``DROP COLUMN`` (no table copy): SQLite keeps 0013's triggers.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("keeps_no_prompts", sa.Boolean(), nullable=True))
    op.add_column("nodes", sa.Column("keeps_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table copy, the 0013 triggers stay
    op.execute("ALTER TABLE nodes DROP COLUMN keeps_at")
    op.execute("ALTER TABLE nodes DROP COLUMN keeps_no_prompts")
