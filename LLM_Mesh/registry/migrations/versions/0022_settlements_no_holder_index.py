"""``ix_settlements_holder`` dropped: no query reads it, and every settlement row wrote it.

Its readers were recovery's ``answered_rows`` and ``void_pending``
(``registry/settle_ledger.py``): on SQLite (no planner statistics in a registry's store)
they read it for every row the holder ever wrote, where the ``state`` index's in-flight
rows are the few wanted (found 2026-12-05, ``tests/registry/test_settle_scans.py``); they
now filter on ``holder || ''``, which no index serves, so nothing reads this index on
either database. Each request's rows entered it on the hot path (written ``pending``, the
holder set; the retention's delete removes them): one B-tree of the five a ``settlements``
row wrote (docs/benchmarks.md).

Downgrading builds it again (on a large PostgreSQL table: a while, blocking settlement
writes meanwhile, as 0012 says of its index).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_settlements_holder", table_name="settlements", if_exists=True)


def downgrade() -> None:
    op.create_index("ix_settlements_holder", "settlements", ["holder"], if_not_exists=True)
