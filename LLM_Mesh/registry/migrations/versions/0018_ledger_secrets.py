"""``ledger_secrets``: the ledger's secret account key, shared by replicas.

Operator, node and held accounts were unkeyed SHA-256 pseudonyms of public or guessable
names (an operator's name, a node's id): anyone could find an operator's account and read
its earnings. From this revision they are HMACs under a random key kept in this table
(``core/ledger_entry.Pseudonyms``, ``registry/ledger_accounts.py``): made by the first
registry that needs it (``INSERT`` that keeps an existing row, so replicas starting at
once agree), never published. The balances of the old accounts are not moved (an entry
from an old account to its keyed one would link them in public): they stay where they are
and the operator's views add both up (``registry/ledger_accounts.py``). Downgrading drops the table and the key with it: the keyed
accounts' balances stay in the ledger, but no registry finds them again (a later upgrade
makes another key). Back the database up (docs/operations.md); do not downgrade one in use.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_secrets")
