"""Settlement: ``balances`` (kept by every ledger append, plus what requests in flight
reserve), ``settle_holders`` (the gateway processes that hold reservations, and when each
was last alive), ``pool_days`` (the community pool's daily top-ups), the holder of each
``settlements`` row, and ``requests.cost`` in whole micro-NetworkTokens.

``balances`` starts as the sums of the ledger's entries so far. On PostgreSQL, the
function ``llm_mesh_settle_batch`` runs a batch of the settlement's hot-path writes
(``registry/settle_db.py``: reserve, answer, part, void) in one round trip.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# One batch of the settlement's hot-path writes, in order (registry/settle_db.py,
# PgSettleDb): per op j, kinds[j] is
#   reserve: reserve estimates[j] from payers[j] if balance - reserved covers it, and write
#            the pending row; out: ok, the balance and reserved seen
#   answer:  pending -> answered with part 0 (nodes/operators/amounts/fees[j]); reserved
#            drops by the row's estimate less estimates[j] (the answer's total); out: ok
#   part:    parts[j]'s row (1, 2, ...) of the answer just before, if it was recorded
#   void:    pending -> void, the estimate released
SETTLE_BATCH = """
CREATE FUNCTION llm_mesh_settle_batch(
    kinds text[], keys text[], payers text[], models text[], estimates bigint[],
    parts int[], nodes text[], operators text[], amounts bigint[], fees bigint[],
    receipts text[], who text, ts timestamptz)
RETURNS TABLE (idx int, ok boolean, bal bigint, res bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    n int := coalesce(array_length(kinds, 1), 0);
    b bigint;
    r bigint;
    e bigint;
    p text;
    answered boolean := false;
BEGIN
    FOR j IN 1..n LOOP
        idx := j; ok := NULL; bal := NULL; res := NULL;
        IF kinds[j] = 'reserve' THEN
            UPDATE balances SET reserved = balances.reserved + estimates[j]
                WHERE balances.account = payers[j]
                  AND balances.balance - balances.reserved >= estimates[j]
                RETURNING balances.balance, balances.reserved INTO b, r;
            IF FOUND THEN
                INSERT INTO settlements (request_id, part, payer, model, estimate, state,
                                         created_at, updated_at, holder)
                    VALUES (keys[j], 0, payers[j], models[j], estimates[j], 'pending', ts,
                            ts, who);
                ok := true;
            ELSE
                b := 0; r := 0;
                SELECT bl.balance, bl.reserved INTO b, r FROM balances bl
                    WHERE bl.account = payers[j];
                ok := false;
            END IF;
            bal := coalesce(b, 0); res := coalesce(r, 0);
        ELSIF kinds[j] = 'answer' THEN
            UPDATE settlements s SET state = 'answered', node_id = nodes[j],
                    operator = operators[j], amount = amounts[j], fee = fees[j],
                    receipt_hash = receipts[j], updated_at = ts
                WHERE s.request_id = keys[j] AND s.part = 0 AND s.state = 'pending'
                RETURNING s.payer, s.estimate INTO p, e;
            answered := FOUND;
            IF answered THEN
                UPDATE balances SET reserved = balances.reserved - (e - estimates[j])
                    WHERE balances.account = p;
            END IF;
            ok := answered;
        ELSIF kinds[j] = 'part' THEN
            IF answered THEN
                INSERT INTO settlements (request_id, part, payer, node_id, operator, model,
                                         estimate, amount, fee, state, receipt_hash,
                                         created_at, updated_at, holder)
                    VALUES (keys[j], parts[j], payers[j], nodes[j], operators[j], models[j],
                            0, amounts[j], fees[j], 'answered', receipts[j], ts, ts, who);
            END IF;
            ok := answered;
        ELSIF kinds[j] = 'void' THEN
            UPDATE settlements s SET state = 'void', updated_at = ts
                WHERE s.request_id = keys[j] AND s.part = 0 AND s.state = 'pending'
                RETURNING s.payer, s.estimate INTO p, e;
            IF FOUND THEN
                UPDATE balances SET reserved = balances.reserved - e
                    WHERE balances.account = p;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$fn$
"""


def upgrade() -> None:
    op.create_table(
        "balances",
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account", name=op.f("pk_balances")),
    )
    op.execute(
        "INSERT INTO balances (account, balance, reserved) "
        "SELECT account, SUM(delta), 0 FROM ("
        " SELECT to_account AS account, amount AS delta FROM ledger_entries"
        " UNION ALL SELECT from_account AS account, -amount AS delta FROM ledger_entries"
        ") moves GROUP BY account"
    )
    op.create_table(
        "settle_holders",
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("beat_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_settle_holders")),
    )
    op.create_table(
        "pool_days",
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_pool_days")),
    )
    with op.batch_alter_table("settlements") as batch:
        batch.add_column(sa.Column("holder", sa.String(64), nullable=True))
        batch.create_index("ix_settlements_holder", ["holder"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SETTLE_BATCH)
    op.execute("UPDATE requests SET cost = ROUND(cost * 1000000)")
    with op.batch_alter_table("requests") as batch:
        batch.alter_column(
            "cost", existing_type=sa.Numeric(18, 6), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS llm_mesh_settle_batch(text[], text[], text[], text[], "
            "bigint[], int[], text[], text[], bigint[], bigint[], text[], text, timestamptz)"
        )
    with op.batch_alter_table("requests") as batch:
        batch.alter_column(
            "cost", existing_type=sa.BigInteger(), type_=sa.Numeric(18, 6), existing_nullable=False
        )
    op.execute("UPDATE requests SET cost = cost / 1000000.0")
    with op.batch_alter_table("settlements") as batch:
        batch.drop_index("ix_settlements_holder")
        batch.drop_column("holder")
    op.drop_table("pool_days")
    op.drop_table("settle_holders")
    op.drop_table("balances")
