"""Loading stored nodes back into the node table (registry start-up, other replicas).

A stored node counts healthy only when its stored last heartbeat is still
within the expiry (translated from wall-clock time to the table's monotonic
clock) or after a fresh heartbeat; otherwise it waits, out of routing, for the
node to beat or re-register.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from pydantic import ValidationError

from LLM_Mesh.core.schemas import NodeRegistration, NodeState
from LLM_Mesh.registry.node_table import NodeEntry, NodeTable
from LLM_Mesh.registry.ports import NodeRecord, Store

log = logging.getLogger(__name__)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def entry_from_record(
    table: NodeTable,
    rec: NodeRecord,
    *,
    heard_now: bool = False,
    wall_now: datetime | None = None,
) -> NodeEntry | None:
    """Put a stored node into ``table``; ``None`` if the record no longer validates."""
    try:
        state = NodeState(rec.state)
    except ValueError:
        state = NodeState.OFFLINE
    try:
        reg = NodeRegistration(
            node_id=rec.node_id,
            url=rec.url,
            region=rec.region,
            models=rec.models,  # validated from the stored dicts
            hardware=rec.hardware,
            max_concurrency=rec.max_concurrency,
            max_queue=rec.max_queue,
            version=rec.version,
            state=state,
        )
    except ValidationError as exc:
        log.warning("stored node %s is not valid any more; skipped: %s", rec.node_id, exc)
        return None
    if heard_now:
        return table.register(reg)
    last: float | None = None
    if rec.last_heartbeat_at is not None:
        wall_now = wall_now or datetime.now(timezone.utc)
        age = (wall_now - _aware(rec.last_heartbeat_at)).total_seconds()
        if 0.0 <= age < table.expiry_s:
            last = table.clock() - age
    return table.register(reg, last_heartbeat=last)


async def load_nodes(table: NodeTable, store: Store) -> int:
    """Every stored node into the table, with its counters from its ``nodes`` row (bumped
    in the transaction of every recorded batch, never lowered, untouched by the request
    log's retention; migration 0011 raised them once to the log's totals for rows recorded
    before the bumps existed). The request log is not read: a start costs one read of the
    ``nodes`` table, whatever the log's size."""
    loaded = 0
    stats: dict[str, dict[str, int]] = {}
    for rec in await store.list_nodes():
        if entry_from_record(table, rec) is not None:
            loaded += 1
        stats[rec.node_id] = {
            "requests": rec.requests,
            "failures": rec.failures,
            "tokens": rec.tokens_generated,
        }
    table.seed_counters(stats)
    return loaded
