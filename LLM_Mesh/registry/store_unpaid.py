"""The store's count of requests its nodes served unpaid (migration 0035).

A request the gateway could not charge because its receipt could not carry the charges
(``core/receipt_money.price_receipt``: not charged, its receipt signing ``settled`` false)
is counted for every node it would have paid (``registry/unpaid.py`` writes, off the hot path): one row per
node, UTC day, model and reason, ``requests`` added to (``ON CONFLICT DO UPDATE``, so
replicas add up). ``GET /v1/earnings`` reads an operator's nodes' rows in its window
(:meth:`SqlUnpaid.unpaid_served`); the rows of days wholly before the retention's cutoff
are deleted hourly (``prune_unpaid``: ``registry/retention.UnpaidPruner``,
``LLM_MESH_UNPAID_KEEP_DAYS``, 400 days by default). :class:`SqlUnpaid` is mixed into
:class:`~LLM_Mesh.registry.store.SqlStore` (which gives it ``engine``),
:class:`MemoryUnpaid` into the memory store. No prompt, no client: a node, a day, a model,
why, how many.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import and_, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.retention import prune_bounds
from LLM_Mesh.registry import tables

__all__ = ["MemoryUnpaid", "SqlUnpaid", "Unpaid", "UnpaidCount", "summed"]

MAX_REASON = 200  # characters of a reason (the column's)


@dataclass(frozen=True)
class Unpaid:
    """One node's share of a request served unpaid, as queued (``request_id``: the request's
    logged id, for the log only; never stored)."""

    request_id: str
    node_id: str
    model: str
    reason: str
    day: str  # YYYY-MM-DD, UTC

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.node_id, self.day, self.model, self.reason[:MAX_REASON])


@dataclass(frozen=True)
class UnpaidCount:
    """How many requests a node served unpaid in a window, for one model and reason."""

    node_id: str
    model: str
    reason: str
    requests: int

    def to_json(self) -> dict[str, object]:
        return {"node_id": self.node_id, "model": self.model, "reason": self.reason,
                "requests": self.requests}  # fmt: skip


def summed(values: Sequence[Unpaid]) -> dict[tuple[str, str, str, str], int]:
    """``values`` counted per row key (a batch's rows: one statement a key)."""
    out: dict[tuple[str, str, str, str], int] = {}
    for v in values:
        out[v.key] = out.get(v.key, 0) + 1
    return out


def _day_before(before: datetime, limit: int) -> str:
    """The first UTC day (``YYYY-MM-DD``) not wholly before ``before``: a row of an earlier
    day may go. The prune's arguments checked (``prune_bounds``)."""
    prune_bounds(before, limit)
    return before.astimezone(timezone.utc).date().isoformat()


class SqlUnpaid:
    """The counts on SQLAlchemy (see the module docstring)."""

    @property
    def engine(self) -> AsyncEngine:  # pragma: no cover - provided by SqlStore
        raise NotImplementedError

    async def record_unpaid(self, values: Sequence[Unpaid]) -> None:
        """Add ``values`` to their rows in one transaction."""
        if not values:
            return
        t = tables.unpaid_served
        rows = [
            {"node_id": n, "day": d, "model": m, "reason": r, "requests": k}
            for (n, d, m, r), k in sorted(summed(values).items())
        ]
        async with self.engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            stmt = insert(t)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.node_id, t.c.day, t.c.model, t.c.reason],
                set_={"requests": t.c.requests + stmt.excluded.requests},
            )
            for row in rows:  # (a few rows a batch: such requests are rare)
                await conn.execute(stmt, row)

    async def unpaid_served(self, nodes: Sequence[str], since: date) -> list[UnpaidCount]:
        """What ``nodes`` served unpaid from the UTC day ``since`` on, per node, model and
        reason (sorted)."""
        if not nodes:
            return []
        t = tables.unpaid_served
        stmt = (
            select(t.c.node_id, t.c.model, t.c.reason, func.sum(t.c.requests).label("n"))
            .where(and_(t.c.node_id.in_(list(nodes)), t.c.day >= since.isoformat()))
            .group_by(t.c.node_id, t.c.model, t.c.reason)
            .order_by(t.c.node_id, t.c.model, t.c.reason)
        )
        async with self.engine.connect() as conn:
            found = (await conn.execute(stmt)).all()
        return [UnpaidCount(r.node_id, r.model, r.reason, int(r.n)) for r in found]

    async def prune_unpaid(self, before: datetime, limit: int) -> int:
        """Delete at most ``limit`` rows of UTC days wholly before ``before``; how many. One
        short statement, as ``Store.prune_requests``; on PostgreSQL the rows are taken
        ``FOR UPDATE SKIP LOCKED`` in a materialized CTE (replicas pruning at once skip each
        other's rows; a ``LIMIT`` under ``IN`` could otherwise be run again per row and
        delete more, as ``retention.prune_settlements`` found). The table has a row only per
        node, day, model and reason with a request served unpaid: small, read whole."""
        day = _day_before(before, limit)
        t = tables.unpaid_served
        pk = (t.c.node_id, t.c.day, t.c.model, t.c.reason)
        keys = select(*pk).where(t.c.day < day).limit(limit)
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                doomed = keys.with_for_update(skip_locked=True).cte("doomed")
                doomed = doomed.prefix_with("MATERIALIZED")
                keys = select(doomed.c.node_id, doomed.c.day, doomed.c.model, doomed.c.reason)
            result = await conn.execute(delete(t).where(tuple_(*pk).in_(keys), t.c.day < day))
        return int(result.rowcount or 0)


class MemoryUnpaid:
    """The counts in memory (tests, ``demo``)."""

    def __init__(self) -> None:
        self.unpaid: dict[tuple[str, str, str, str], int] = {}

    async def record_unpaid(self, values: Sequence[Unpaid]) -> None:
        for key, n in summed(values).items():
            self.unpaid[key] = self.unpaid.get(key, 0) + n

    async def unpaid_served(self, nodes: Sequence[str], since: date) -> list[UnpaidCount]:
        wanted, day = set(nodes), since.isoformat()
        out: dict[tuple[str, str, str], int] = {}
        for (node, d, model, reason), n in self.unpaid.items():
            if node in wanted and d >= day:
                out[(node, model, reason)] = out.get((node, model, reason), 0) + n
        return [UnpaidCount(*k, n) for k, n in sorted(out.items())]

    async def prune_unpaid(self, before: datetime, limit: int) -> int:
        day = _day_before(before, limit)
        doomed = [k for k in self.unpaid if k[1] < day][:limit]
        for k in doomed:
            del self.unpaid[k]
        return len(doomed)
