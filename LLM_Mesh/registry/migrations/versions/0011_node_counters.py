"""The ``nodes`` counters backfilled once from the request log.

``nodes.requests``, ``failures`` and ``tokens_generated`` are bumped by every recorded
batch, in the batch's transaction (``SqlStore.record_requests``), and never lowered or
pruned; rows recorded before those bumps existed are only in the request log. Until this
revision every registry start took, per node and counter, the larger of the row's counter
and the log's total (a ``GROUP BY`` over the whole ``requests`` table). This revision
applies that rule once, here, so a start reads the ``nodes`` rows only
(``registry/snapshot.py``) and the counters no longer depend on what retention has left.

A request counts for its node; a failure is an ``error`` outcome (``FAILURE_OUTCOMES`` of
``store.py``, written out: a revision is a snapshot of the rules of its day); tokens are the
completion tokens. Requests with no node, and log rows of nodes without a ``nodes`` row,
change nothing.

On PostgreSQL the revision first takes ``SHARE`` on ``requests``: a registry of the previous
version still recording batches waits until this transaction commits (its batch and its
counter bump are one transaction, so none is half seen: no batch is counted twice or lost).
Replicas starting at once run the migrations one after the other under the store's
advisory lock (``store_migrate.migrate_to_head``); the next one finds 0011 applied and skips it.
Running the rule twice would change nothing anyway (it only raises a counter to the log's
total). Downgrading leaves the counters as they are: they are right for 0010 too.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOG_TOTALS = """
SELECT node_id,
       COUNT(*) AS requests,
       COALESCE(SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), 0) AS failures,
       COALESCE(SUM(completion_tokens), 0) AS tokens
FROM requests
WHERE node_id IS NOT NULL
GROUP BY node_id
"""

# a node's counter goes up to the log's total, never down (bound as BIGINT: PostgreSQL
# infers no type for a bare parameter in a CASE branch)
RAISE_COUNTERS = """
UPDATE nodes SET
    requests = CASE WHEN requests < CAST(:requests AS BIGINT)
        THEN CAST(:requests AS BIGINT) ELSE requests END,
    failures = CASE WHEN failures < CAST(:failures AS BIGINT)
        THEN CAST(:failures AS BIGINT) ELSE failures END,
    tokens_generated = CASE WHEN tokens_generated < CAST(:tokens AS BIGINT)
        THEN CAST(:tokens AS BIGINT) ELSE tokens_generated END
WHERE node_id = :node_id
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("LOCK TABLE requests IN SHARE MODE")
    totals = [
        {
            "node_id": row.node_id,
            "requests": int(row.requests),
            "failures": int(row.failures),
            "tokens": int(row.tokens),
        }
        for row in bind.execute(sa.text(LOG_TOTALS))
    ]
    if totals:
        bind.execute(sa.text(RAISE_COUNTERS), totals)


def downgrade() -> None:
    pass  # the counters stay: 0010 reads them the same way
