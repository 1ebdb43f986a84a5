"""Witnesses' cosignatures of the ledger's checkpoints: ``ledger_cosignatures``.

One row per (checkpoint size, witness key text): the ``cosignature/v1`` signature line a
witness (``llm-mesh ledger witness``) made on that checkpoint, and its timestamp. The
registry accepts only lines that verify, by witness keys it was configured with
(``LLM_MESH_LEDGER_WITNESSES``), and serves them appended to the checkpoint's note
(``registry/ledger.py``), so every replica on the store serves the same ones.

Append-only like the rest of the ledger (0004): triggers refuse UPDATE and DELETE (and, on
PostgreSQL, TRUNCATE; 0004's ``ledger_refuse_change`` function). Replicas starting at once
run the migrations one after the other under the store's advisory lock
(``store_migrate.migrate_to_head``); the next finds 0014 applied and skips it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ledger_cosignatures"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(256), nullable=False),
        sa.Column("time_s", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", "witness", name=op.f("pk_ledger_cosignatures")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
        return
    for what in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{what.lower()} BEFORE {what} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {what} on {TABLE} "
            "refused'); END"
        )


def downgrade() -> None:
    op.drop_table(TABLE)  # its triggers go with it
