"""The ledger: entries, tree nodes, head, signed checkpoints, signer keys; append-only.

Triggers refuse UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) on
``ledger_entries``, ``ledger_nodes`` and ``ledger_checkpoints``, so a row once written
stays as written unless someone with DDL rights drops the trigger (which
``llm-mesh ledger verify`` then catches from the hashes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("ledger_entries", "ledger_nodes", "ledger_checkpoints")


def _triggers_up() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the ledger is append-only: % on % refused', TG_OP, "
            "TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
            )
        return
    for table in APPEND_ONLY:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{what.lower()} BEFORE {what} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {what} on {table} "
                "refused'); END"
            )


def _triggers_down() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ledger_refuse_change()")
        return
    for table in APPEND_ONLY:
        for what in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{what}")


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("from_account", sa.String(128), nullable=False),
        sa.Column("to_account", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("receipt_hash", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_entries")),
    )
    op.create_index(op.f("ix_ledger_entries_request_id"), "ledger_entries", ["request_id"])
    op.create_index(op.f("ix_ledger_entries_from_account"), "ledger_entries", ["from_account"])
    op.create_index(op.f("ix_ledger_entries_to_account"), "ledger_entries", ["to_account"])
    op.create_table(
        "ledger_nodes",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_nodes")),
    )
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("last_leaf", sa.LargeBinary(32), nullable=False),
        sa.Column("last_time_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_head")),
    )
    op.bulk_insert(
        head, [{"id": 1, "size": 0, "frontier": b"", "last_leaf": bytes(32), "last_time_us": 0}]
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("time_us", sa.BigInteger(), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_ledger_checkpoints")),
    )
    op.create_table(
        "ledger_keys",
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("public_key", name=op.f("pk_ledger_keys")),
    )
    _triggers_up()


def downgrade() -> None:
    _triggers_down()
    op.drop_table("ledger_keys")
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_head")
    op.drop_table("ledger_nodes")
    op.drop_index(op.f("ix_ledger_entries_to_account"), table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_from_account"), table_name="ledger_entries")
    op.drop_index(op.f("ix_ledger_entries_request_id"), table_name="ledger_entries")
    op.drop_table("ledger_entries")
