"""``api_keys.allow_prompt_keeping``: a key whose requests may go to nodes that may keep
prompts (``core/prompt_keeping.py``; ``llm-mesh registry keys create --allow-keep``).

By default a request is never routed to a node declaring ``keeps_no_prompts: false`` (found
open 2026-12-06, attack33; closed 2026-12-06, private33): the request's
``allow_prompt_keeping`` or its key's opts in. Existing keys stay out of such nodes (false).
A plain ``ADD COLUMN``, as 0023's: a table copy (batch mode) would drop SQLite's 0013
triggers that move the ``api_keys`` poll version.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (no table copy): SQLite keeps the triggers of 0013 on ``api_keys``
    op.add_column(
        "api_keys",
        sa.Column("allow_prompt_keeping", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table copy, the 0013 triggers stay
    op.execute("ALTER TABLE api_keys DROP COLUMN allow_prompt_keeping")
