"""Settlement's per-process reservation leases: ``settle_leases``.

A holder (a gateway process, ``settle_holders``) reserves a block of a payer's balance
once (``balances.reserved += amount`` under the same conditional ``UPDATE`` as a
request's reservation, and this row, in one transaction), admits its requests against
it in memory, and each answer moves its total from the lease to its ``answered`` row
(``registry/settle_lease.py``). A payer's ``reserved`` is then its pending estimates, its
answered (unsettled) totals and its leases. An idle lease is given back (row deleted,
``reserved`` released); a dead holder's leases are released by recovery with its rows.

A process of the previous version (0014) running beside this one while replicas are
upgraded never reads or writes the table: its per-request reservations stay correct,
and so does the sum.

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


def downgrade() -> None:
    # a lease's amount goes back to its payer's available balance with the table
    op.execute(
        "UPDATE balances SET reserved = reserved - (SELECT COALESCE(SUM(l.amount), 0) "
        "FROM settle_leases l WHERE l.payer = balances.account)"
    )
    op.drop_index("ix_settle_leases_holder", table_name="settle_leases")
    op.drop_table("settle_leases")
