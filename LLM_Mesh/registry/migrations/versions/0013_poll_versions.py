"""A change counter per store poll: ``poll_versions`` and, on SQLite, the triggers that move it.

The registry's store polls (node revocations, API-key revocations, the canary's quality
records: ``registry/poller.py``) skip their queries while the store says nothing they read
has changed. On SQLite that check was ``PRAGMA data_version``, which moves on *every*
commit, the gateway's own settlement and request log included, so under traffic each poll
still ran about once a second. Here each poll gets its own counter, moved by a trigger in
the transaction of every write the poll reads, whoever writes (this process, another one,
the admin CLI, plain SQL): ``revocations`` (``node_keys``: a row added or removed, its
``revoked_at`` set), ``api_keys`` (``api_keys``: the same) and ``quality`` (any write to
``canary_status`` or ``canary_verifiers``). ``SqlStore.poll_version`` reads them.

PostgreSQL gets the table only (the schema is the same on both): its polls run every
interval, as before, and no write there pays for a trigger.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOPICS = ("revocations", "api_keys", "quality")

# (trigger name, event, table, topic)
TRIGGERS = (
    ("poll_revocations_ins", "INSERT", "node_keys", "revocations"),
    ("poll_revocations_del", "DELETE", "node_keys", "revocations"),
    ("poll_revocations_upd", "UPDATE OF revoked_at", "node_keys", "revocations"),
    ("poll_api_keys_ins", "INSERT", "api_keys", "api_keys"),
    ("poll_api_keys_del", "DELETE", "api_keys", "api_keys"),
    ("poll_api_keys_upd", "UPDATE OF revoked_at", "api_keys", "api_keys"),
    ("poll_quality_status_ins", "INSERT", "canary_status", "quality"),
    ("poll_quality_status_del", "DELETE", "canary_status", "quality"),
    ("poll_quality_status_upd", "UPDATE", "canary_status", "quality"),
    ("poll_quality_verifiers_ins", "INSERT", "canary_verifiers", "quality"),
    ("poll_quality_verifiers_del", "DELETE", "canary_verifiers", "quality"),
    ("poll_quality_verifiers_upd", "UPDATE", "canary_verifiers", "quality"),
)


def upgrade() -> None:
    table = op.create_table(
        "poll_versions",
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("topic", name=op.f("pk_poll_versions")),
    )
    op.bulk_insert(table, [{"topic": t, "version": 0} for t in TOPICS])
    if op.get_bind().dialect.name == "sqlite":
        for name, event, on, topic in TRIGGERS:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {on} BEGIN "
                f"UPDATE poll_versions SET version = version + 1 WHERE topic = '{topic}'; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name, *_ in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("poll_versions")
