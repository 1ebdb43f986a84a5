"""Settlement's per-process reservation leases: ``settle_leases``.

A holder (a gateway process, ``settle_holders``) reserves a block of a payer's balance
once (``balances.reserved += amount`` under the same conditional ``UPDATE`` as a
request's reservation, and this row, in one transaction), admits its requests against
it in memory, and each answer moves its total from the lease to its ``answered`` row
(``registry/settle_lease.py``). A payer's ``reserved`` is then its pending estimates, its
answered (unsettled) totals and its leases. An idle lease is given back (row deleted,
``reserved`` released); a dead holder's leases are released by recovery with its rows.

On PostgreSQL, ``llm_mesh_settle_batch2`` is 0006's batch function with the lease's
writes (``take``, ``spend``, ``give``; three more arrays: lease ids, grows and margins —
a spend's total in ``grows`` — and one more result column, ``lease``: what a take grew
the lease by, 1 when a spend drew from the lease), and ``llm_mesh_settle_batch2_once``
runs it once per batch id as 0010's ``llm_mesh_settle_batch_once`` does 0006's. A process
of the previous version (0014) running beside this one while replicas are upgraded keeps
calling the old functions and never reads or writes the table: its per-request
reservations stay correct, and so does the sum.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# per op j, as 0006's function, and (``registry/settle_lease.py``):
#   take:  grow lease leases[j] by grows[j] if the payer's balance - reserved covers
#          grows[j] + margins[j] (out: ok, bal, res, lease = grows[j]); else reserve
#          estimates[j] alone, its pending row, as reserve (lease NULL)
#   spend: draw the answer's total (grows[j]) from lease leases[j] if it holds it, else
#          reserve it from the payer's available balance, else nothing (ok false); then
#          part 0's answered row (estimate estimates[j]); its parts follow as 'part' rows;
#          out: ok, lease = 1 when drawn from the lease, 0 when not
#   give:  delete lease leases[j] and release its amount
SETTLE_BATCH2 = """
CREATE FUNCTION llm_mesh_settle_batch2(
    kinds text[], keys text[], payers text[], models text[], estimates bigint[],
    parts int[], nodes text[], operators text[], amounts bigint[], fees bigint[],
    receipts text[], leases text[], grows bigint[], margins bigint[], who text,
    ts timestamptz)
RETURNS TABLE (idx int, ok boolean, bal bigint, res bigint, lease bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    n int := coalesce(array_length(kinds, 1), 0);
    b bigint;
    r bigint;
    e bigint;
    p text;
    k text;
    answered boolean := false;
BEGIN
    FOR j IN 1..n LOOP
        idx := j; ok := NULL; bal := NULL; res := NULL; lease := NULL; k := kinds[j];
        IF k = 'take' THEN
            UPDATE balances SET reserved = balances.reserved + grows[j]
                WHERE balances.account = payers[j]
                  AND balances.balance - balances.reserved >= grows[j] + margins[j]
                RETURNING balances.balance, balances.reserved INTO b, r;
            IF FOUND THEN
                INSERT INTO settle_leases AS l (lease_id, holder, payer, amount)
                    VALUES (leases[j], who, payers[j], grows[j])
                    ON CONFLICT (lease_id) DO UPDATE SET amount = l.amount + EXCLUDED.amount;
                ok := true; bal := b; res := r; lease := grows[j];
            ELSE
                k := 'reserve';
            END IF;
        END IF;
        IF k = 'reserve' THEN
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
        ELSIF k = 'spend' THEN
            UPDATE settle_leases l SET amount = l.amount - grows[j]
                WHERE l.lease_id = leases[j] AND l.amount >= grows[j];
            lease := CASE WHEN FOUND THEN 1 ELSE 0 END;
            answered := FOUND;
            IF NOT answered THEN
                UPDATE balances SET reserved = balances.reserved + grows[j]
                    WHERE balances.account = payers[j]
                      AND balances.balance - balances.reserved >= grows[j];
                answered := FOUND;
            END IF;
            IF answered THEN
                INSERT INTO settlements (request_id, part, payer, node_id, operator, model,
                                         estimate, amount, fee, state, receipt_hash,
                                         created_at, updated_at, holder)
                    VALUES (keys[j], 0, payers[j], nodes[j], operators[j], models[j],
                            estimates[j], amounts[j], fees[j], 'answered', receipts[j], ts,
                            ts, who);
            END IF;
            ok := answered;
        ELSIF k = 'give' THEN
            DELETE FROM settle_leases l WHERE l.lease_id = leases[j]
                RETURNING l.payer, l.amount INTO p, e;
            IF FOUND AND e <> 0 THEN
                UPDATE balances SET reserved = balances.reserved - e
                    WHERE balances.account = p;
            END IF;
        ELSIF k = 'answer' THEN
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
        ELSIF k = 'part' THEN
            IF answered THEN
                INSERT INTO settlements (request_id, part, payer, node_id, operator, model,
                                         estimate, amount, fee, state, receipt_hash,
                                         created_at, updated_at, holder)
                    VALUES (keys[j], parts[j], payers[j], nodes[j], operators[j], models[j],
                            0, amounts[j], fees[j], 'answered', receipts[j], ts, ts, who);
            END IF;
            ok := answered;
        ELSIF k = 'void' THEN
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

# 0010's wrapper, for llm_mesh_settle_batch2
SETTLE_BATCH2_ONCE = """
CREATE FUNCTION llm_mesh_settle_batch2_once(
    batch uuid, kinds text[], keys text[], payers text[], models text[], estimates bigint[],
    parts int[], nodes text[], operators text[], amounts bigint[], fees bigint[],
    receipts text[], leases text[], grows bigint[], margins bigint[], who text,
    ts timestamptz)
RETURNS TABLE (idx int, ok boolean, bal bigint, res bigint, lease bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    done json;
BEGIN
    INSERT INTO settle_batches (batch_id, created_at) VALUES (batch, now())
        ON CONFLICT (batch_id) DO NOTHING;
    IF FOUND THEN
        SELECT json_agg(t ORDER BY t.idx) INTO done
            FROM llm_mesh_settle_batch2(kinds, keys, payers, models, estimates, parts,
                                        nodes, operators, amounts, fees, receipts, leases,
                                        grows, margins, who, ts) t;
        UPDATE settle_batches sb SET results = done WHERE sb.batch_id = batch;
    ELSE
        SELECT sb.results INTO done FROM settle_batches sb WHERE sb.batch_id = batch;
    END IF;
    RETURN QUERY SELECT x.idx, x.ok, x.bal, x.res, x.lease
        FROM json_to_recordset(done) AS x(idx int, ok boolean, bal bigint, res bigint,
                                          lease bigint);
END
$fn$
"""

_ARGS = (
    "text[], text[], text[], text[], bigint[], int[], text[], text[], bigint[], bigint[], "
    "text[], text[], bigint[], bigint[], text, timestamptz"
)


def upgrade() -> None:
    op.create_table(
        "settle_leases",
        sa.Column("lease_id", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("payer", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("lease_id", name=op.f("pk_settle_leases")),
    )
    op.create_index("ix_settle_leases_holder", "settle_leases", ["holder"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SETTLE_BATCH2)
        op.execute(SETTLE_BATCH2_ONCE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS llm_mesh_settle_batch2_once(uuid, {_ARGS})")
        op.execute(f"DROP FUNCTION IF EXISTS llm_mesh_settle_batch2({_ARGS})")
    # a lease's amount goes back to its payer's available balance with the table
    op.execute(
        "UPDATE balances SET reserved = reserved - (SELECT COALESCE(SUM(l.amount), 0) "
        "FROM settle_leases l WHERE l.payer = balances.account)"
    )
    op.drop_index("ix_settle_leases_holder", table_name="settle_leases")
    op.drop_table("settle_leases")
