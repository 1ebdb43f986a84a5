"""``nodes.address``: the ``host:port`` of a node's URL, indexed (``ix_nodes_address``).

Since the rule of one live node per address across replicas (2026-12-05), each
registration read the id and URL of every live node row and compared addresses in
Python, under the address's advisory lock: O(fleet) a registration, and a fleet
re-registering at once O(fleet²) (docs/benchmarks.md). Each ``upsert_node`` now writes the
address with the row (``core/liveness.address_text``), and the check reads only the rows
at its address and those with none (``store.SqlStore._check_address``).

NULL is "not known", compared by URL as before: rows written before this revision (not
backfilled here: the URL rule is code, ``core/liveness.node_address``, and a revision is a
snapshot of its day; each row gets its address at its next registration), and rows whose
URL a replica of the previous version (0022) changed, which writes no address: a trigger
clears the address when ``url`` changes and ``address`` does not (a new replica moving a
node within one address, a path or scheme change, clears it too, until the next
registration). A mixed-version fleet so never hides a live node behind a stale address.

Downgrading drops the triggers, the index and the column.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGGER = "nodes_address_stale"

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger AS $$
BEGIN
    NEW.address := NULL;
    RETURN NEW;
END
$$ LANGUAGE plpgsql
"""

# only an UPDATE that sets ``url`` (a registration), never a heartbeat's, and the WHEN is
# tested without calling the function
PG_TRIGGER = f"""
CREATE TRIGGER {TRIGGER} BEFORE UPDATE OF url ON nodes FOR EACH ROW
WHEN (NEW.url IS DISTINCT FROM OLD.url AND NEW.address IS NOT DISTINCT FROM OLD.address)
EXECUTE FUNCTION {TRIGGER}()
"""

# AFTER (SQLite cannot change NEW); the inner UPDATE sets no ``url``, so it fires nothing
SQLITE_TRIGGER = f"""
CREATE TRIGGER {TRIGGER} AFTER UPDATE OF url ON nodes
WHEN NEW.url IS NOT OLD.url AND NEW.address IS OLD.address
BEGIN UPDATE nodes SET address = NULL WHERE node_id = NEW.node_id; END
"""


def upgrade() -> None:
    # plain ADD COLUMN (no table copy): SQLite keeps the triggers of 0013 on ``nodes``
    op.add_column("nodes", sa.Column("address", sa.String(2048), nullable=True))
    op.create_index("ix_nodes_address", "nodes", ["address"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON nodes")
        op.execute(f"DROP FUNCTION IF EXISTS {TRIGGER}()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    op.drop_index("ix_nodes_address", table_name="nodes")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table copy, the 0013 triggers stay
    op.execute("ALTER TABLE nodes DROP COLUMN address")
