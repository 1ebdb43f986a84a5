"""``ix_settlements_payer`` dropped: no query needs it, and every settlement row wrote it.

The one query that names ``settlements.payer`` (``registry/paid_ids.py``, ``paid_under``)
reads the primary key's range of one client id (a few rows); PostgreSQL's planner took that
range with or without this index, and SQLite's (a registry's store has no statistics) took
this index instead: every row the payer ever paid, for each id it looked up (found
2026-12-05, ``tests/registry/test_paid_ids_plan.py``). Each answered request inserts its
rows into this index on the hot path (and the retention's delete removes them): one B-tree
of the six a ``settlements`` row wrote (docs/benchmarks.md).

Downgrading builds it again (on a large PostgreSQL table: a while, blocking settlement
writes meanwhile, as 0012 says of its index).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_settlements_payer", table_name="settlements", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_settlements_payer", "settlements", ["payer"], if_not_exists=True)
