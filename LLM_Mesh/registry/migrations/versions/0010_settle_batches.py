"""Settlement batches applied once: ``settle_batches`` and, on PostgreSQL, the function
``llm_mesh_settle_batch_once``.

``registry/settle_db.py`` (``PgSettleDb``) sends a batch of the settlement's hot-path writes
as one autocommit call. When the connection is lost after the server committed but before
the client read the rows, the client sends the batch again: the batch id (random, the
client's) makes that repeat return the first call's rows without applying anything. The
function records the id and the rows in ``settle_batches``, in the batch's transaction;
the settler's upkeep deletes ids older than an hour (``registry/settle_holders.py``).

``llm_mesh_settle_batch`` (0006) stays: a process of the previous version, still running
beside this one while replicas are upgraded, goes on calling it. SQLite only gets the
(unused) table: its batches run in-process, where a commit is never lost on its way back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0006's function behind a batch id. The INSERT comes first: a repeat whose first call
# still runs (its client gone, its backend not aware yet) waits there for that call's
# transaction; once it committed, the repeat finds the id taken and returns the rows
# recorded (the statement after the INSERT sees them: a new snapshot); if it rolled
# back, the repeat applies the batch itself.
SETTLE_BATCH_ONCE = """
CREATE FUNCTION llm_mesh_settle_batch_once(
    batch uuid, kinds text[], keys text[], payers text[], models text[], estimates bigint[],
    parts int[], nodes text[], operators text[], amounts bigint[], fees bigint[],
    receipts text[], who text, ts timestamptz)
RETURNS TABLE (idx int, ok boolean, bal bigint, res bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    done json;
BEGIN
    INSERT INTO settle_batches (batch_id, created_at) VALUES (batch, now())
        ON CONFLICT (batch_id) DO NOTHING;
    IF FOUND THEN
        SELECT json_agg(t ORDER BY t.idx) INTO done
            FROM llm_mesh_settle_batch(kinds, keys, payers, models, estimates, parts, nodes,
                                       operators, amounts, fees, receipts, who, ts) t;
        UPDATE settle_batches sb SET results = done WHERE sb.batch_id = batch;
    ELSE
        SELECT sb.results INTO done FROM settle_batches sb WHERE sb.batch_id = batch;
    END IF;
    RETURN QUERY SELECT x.idx, x.ok, x.bal, x.res
        FROM json_to_recordset(done) AS x(idx int, ok boolean, bal bigint, res bigint);
END
$fn$
"""


def upgrade() -> None:
    op.create_table(
        "settle_batches",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_settle_batches")),
    )
    op.create_index("ix_settle_batches_created_at", "settle_batches", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SETTLE_BATCH_ONCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS llm_mesh_settle_batch_once(uuid, text[], text[], text[], "
            "text[], bigint[], int[], text[], text[], bigint[], bigint[], text[], text, "
            "timestamptz)"
        )
    op.drop_index("ix_settle_batches_created_at", table_name="settle_batches")
    op.drop_table("settle_batches")
