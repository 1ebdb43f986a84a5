"""``canary_verifiers.models``: the model files each canary verifier was marked for.

Until this revision the admin's mark (``llm-mesh registry nodes trust NODE``) named the node
only, and its answers were the probes' reference, and ``trusted_only`` routed to it, for
every model it declared with a sha256: one declared later, which the admin never checked,
too (found open 2026-12-07, session 42; closed 2026-12-07, verifier43). Now a mark names
its models, model id -> the sha256 declared when marked (``core/verifier_marks.py``).

A row written before this revision gets ``{}``: it covers no model until the admin marks the
node again. Not "the models it serves at upgrade time": those may be the very models
declared after the admin's check, and this migration cannot tell which were checked. The
registry says so at start (``registry/quality.py``) and ``registry nodes verifiers`` lists
it. Its downgrade drops the rows that name models (verifier44: below 0034 each would be the
whole node's mark); migration 0036 moved the marks to ``canary_verifier_models``. A plain
``ADD COLUMN``: a table copy (batch mode) would drop SQLite's 0013 triggers
that move the ``quality`` poll version.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (no table copy): SQLite keeps the triggers of 0013 on the table
    op.add_column(
        "canary_verifiers", sa.Column("models", sa.JSON(), nullable=False, server_default="{}")
    )


def downgrade() -> None:
    # A row that names models goes (verifier44): below 0034 every row is a mark of the whole
    # node, so it would be the reference for every model the node declares, not the ones it
    # was marked for (before: kept, each such mark widened). A row of the node alone (made
    # before 0034, ``{}``) stays the whole node's mark it was made as. The admin marks again.
    bind = op.get_bind()
    v = sa.table(
        "canary_verifiers", sa.column("node_id", sa.String()), sa.column("models", sa.JSON())
    )
    named = [r.node_id for r in bind.execute(sa.select(v.c.node_id, v.c.models)) if r.models != {}]
    if named:
        bind.execute(sa.delete(v).where(v.c.node_id.in_(named)))
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table copy, the 0013 triggers stay.
    op.execute("ALTER TABLE canary_verifiers DROP COLUMN models")
