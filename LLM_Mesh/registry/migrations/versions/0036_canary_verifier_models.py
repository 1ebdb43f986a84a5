"""``canary_verifier_models``: verifier marks per model where code before 0034 does not read them.

Migration 0034 put a mark's models (model id -> sha256) in a column of ``canary_verifiers``,
but the code before 0034 reads every row of that table as a mark of the whole node (its
``list_verifiers``: ``SELECT node_id FROM canary_verifiers``): during a rolling upgrade a
replica not yet upgraded, and the package downgraded below 0034, took a node marked for
model A only as the reference, and trusted it, for every model it declared (a liar's
reference for B; found open 2026-12-07, session 43, closed verifier44).

Here each mark is a row of ``canary_verifier_models`` (node, model, sha256, ``marked_at``),
a table no older code reads: a mark that names models moves there, out of
``canary_verifiers``. What stays in ``canary_verifiers`` is what older code wrote as a mark of
the node alone (made before 0034, ``models`` ``{}``): to the code before 0034 that is the
whole node's mark it always was, from 0034 on it covers no model (mark again). A replica not
yet upgraded sees no mark that names models: its probes of those files are ``unverified``
and it routes ``trusted_only`` as if the node were no verifier (fail closed). The column
``models`` stays (0034 and 0035 read it).

The downgrade drops ``canary_verifier_models`` and does not write its marks back into
``canary_verifiers`` (where the code before 0034 would read each as the whole node's): below
0036 no mark names a model, and the admin marks again with that version's CLI. Likewise
0034's downgrade now drops the rows that name models (before: each became the whole node's
mark). SQLite's ``quality`` poll counter (0013) moves with every write to the new table.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (trigger name, event): the 0013 ``quality`` counter, for the new table
TRIGGERS = (
    ("poll_quality_verifier_models_ins", "INSERT"),
    ("poll_quality_verifier_models_del", "DELETE"),
    ("poll_quality_verifier_models_upd", "UPDATE"),
)


def _marks(raw: Any) -> dict[str, str]:
    """A 0034 row's models (id -> sha256) that could cover a file (a model id as registered,
    256 at most; a sha256 as declared, 64 hex digits); anything else covered none."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        m: s.lower()
        for m, s in raw.items()
        if isinstance(m, str) and 0 < len(m) <= 256 and isinstance(s, str) and len(s) == 64
    }


def upgrade() -> None:
    marks = op.create_table(
        "canary_verifier_models",
        sa.Column("node_id", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "model", name=op.f("pk_canary_verifier_models")),
    )
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for name, event in TRIGGERS:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON canary_verifier_models BEGIN "
                "UPDATE poll_versions SET version = version + 1 WHERE topic = 'quality'; END"
            )
    old = sa.table(
        "canary_verifiers",
        sa.column("node_id", sa.String()),
        sa.column("trusted_at", sa.DateTime(timezone=True)),
        sa.column("models", sa.JSON()),
    )
    rows, moved = [], []
    for r in bind.execute(sa.select(old.c.node_id, old.c.trusted_at, old.c.models)).all():
        if r.models == {} or r.models is None:  # a mark of the node alone (before 0034)
            continue
        moved.append(r.node_id)  # anything else named models (or was edited): not the node's
        rows += [
            {"node_id": r.node_id, "model": m, "sha256": s, "marked_at": r.trusted_at}
            for m, s in _marks(r.models).items()
        ]
    if rows:
        op.bulk_insert(marks, rows)
    if moved:  # out of the table the code before 0034 reads as whole-node marks
        bind.execute(sa.delete(old).where(old.c.node_id.in_(moved)))


def downgrade() -> None:
    # the marks are dropped, not written back into canary_verifiers (module docstring)
    if op.get_bind().dialect.name == "sqlite":
        for name, _ in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("canary_verifier_models")
