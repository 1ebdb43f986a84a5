"""Retention: old ``requests`` rows and done-with ``settlements`` deleted hourly, in bounded
batches.

:class:`RequestLogPruner` (a :class:`~LLM_Mesh.registry.poller.Poller` owned by the
app's lifespan when ``Settings.request_log_keep_days`` > 0) runs at start and then every
``interval_s`` (an hour). A run deletes the rows created before
:func:`~LLM_Mesh.core.retention.request_log_cutoff` with ``Store.prune_requests``,
``batch`` rows per statement (1,000: each its own short transaction, ~50 ms on SQLite
with the gateway's random request ids, docs/benchmarks.md, where 10,000 held SQLite's write
lock 0.2–0.9 s), pausing between statements at least as long as the last one took (at
least ``pause_s``), so other writers (the request writer, settlement) get the lock at least
half the time, until a statement deletes fewer than ``batch`` or ``max_batches`` ran (the
rest waits for the next run). Deleting is idempotent: several replicas on one PostgreSQL
database may each run it. A failed run is logged and the loop goes on.

:class:`SettlementPruner` (when ``Settings.settlement_keep_days`` > 0: 400 by default) does
the same for ``settlements`` rows that are ``settled`` or ``void`` and were settled before
:func:`~LLM_Mesh.core.retention.settlement_cutoff` (never within the longest earnings
window), with :func:`prune_settlements` on the settlement's own engine: a row still
``pending``, ``answered`` or ``lapsed`` is never deleted (recovery reads those).

:class:`CutReceiptPruner` (when ``Settings.cut_receipt_keep_days`` > 0: 400 by default) does
the same for ``cut_receipts`` rows (a cut stream's receipt nobody received,
``registry/cut_receipts.py``) made before :func:`~LLM_Mesh.core.retention.cut_receipt_cutoff`,
with the store's ``prune_cut_receipts`` (SQL and memory stores alike).

:class:`UnpaidPruner` (when ``Settings.unpaid_keep_days`` > 0: 400 by default) does the same
for ``unpaid_served`` rows (a node's count of requests served unpaid, a row a UTC day,
``registry/store_unpaid.py``) of days wholly before
:func:`~LLM_Mesh.core.retention.unpaid_cutoff` (never within the longest earnings window),
with the store's ``prune_unpaid`` (SQL and memory stores alike; found 2026-12-07,
hygiene44: never pruned).

The ledger (``ledger_entries``, ``ledger_nodes``, checkpoints) is the public audit log,
every payment in it, and is never deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol, TypedDict, cast

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from LLM_Mesh.core.retention import (
    cut_receipt_cutoff,
    prune_bounds,
    request_log_cutoff,
    settlement_cutoff,
    unpaid_cutoff,
)
from LLM_Mesh.registry import tables
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import Store
from LLM_Mesh.registry.settle_scans import col, done_rows, is_done
from LLM_Mesh.registry.unpaid import stores_unpaid

if TYPE_CHECKING:  # (typing's from 3.11; only read by the type checker here)
    from typing import Unpack

__all__ = [
    "BatchLoop",
    "CutReceiptPruner",
    "RequestLogPruner",
    "SettlementPruner",
    "UnpaidPruner",
    "prune_settlements",
    "unpaid_pruner",
]

log = logging.getLogger(__name__)


class BatchLoop(TypedDict, total=False):
    """The bounded delete loop's settings (the module docstring), which every pruner takes
    as keywords and hands to :class:`_BatchPruner` as they are (defaults there)."""

    interval_s: float
    batch: int
    max_batches: int
    pause_s: float
    wall_clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[object]]
    clock: Callable[[], float]


class CutReceiptPrunable(Protocol):
    async def prune_cut_receipts(self, before: datetime, limit: int) -> int: ...


class UnpaidPrunable(Protocol):
    async def prune_unpaid(self, before: datetime, limit: int) -> int: ...


class _BatchPruner(Poller):
    """The bounded delete loop the pruners share (the module docstring; ``node_retention``'s
    too), a run's count said to ``said_to`` (the pruner's module's logger)."""

    said_to = log

    def __init__(
        self,
        *,
        interval_s: float = 3600.0,
        batch: int = 1000,
        max_batches: int = 1000,
        pause_s: float = 0.05,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or batch < 1 or max_batches < 1 or pause_s < 0:
            raise ValueError("interval_s, batch and max_batches are positive, pause_s >= 0")
        self.interval_s = interval_s
        self.batch = batch
        self.max_batches = max_batches
        self.pause_s = pause_s
        self._wall = wall_clock
        self._sleep = sleep
        self._clock = clock

    async def _delete_before(
        self, before: datetime, prune: Callable[[datetime, int], Awaitable[int]]
    ) -> int:
        """``prune(before, batch)`` until it deletes fewer than ``batch`` or ``max_batches``
        ran, pausing between statements; how many rows went."""
        total = 0
        took = 0.0
        for i in range(self.max_batches):
            if i:  # the other writers' turn: at least as long as the pruner had the lock
                await self._sleep(max(self.pause_s, took))
            started = self._clock()
            gone = await prune(before, self.batch)
            took = self._clock() - started
            total += gone
            if gone < self.batch:
                break
        return total

    async def _prune_before(
        self, cutoff: float | None, prune: Callable[[datetime, int], Awaitable[int]], said: str
    ) -> int:
        """One run: ``prune`` the rows before ``cutoff`` (a Unix time; ``None``: keep all, 0)
        in :meth:`_delete_before`'s bounded statements; how many went, said at INFO by
        ``said`` (``%d`` the rows, ``%s`` the cutoff) when any did."""
        if cutoff is None:
            return 0
        before = datetime.fromtimestamp(cutoff, timezone.utc)
        total = await self._delete_before(before, prune)
        if total:
            self.said_to.info(said, total, before.isoformat())
        return total


class RequestLogPruner(_BatchPruner):
    task_name = "llm-mesh-request-log-pruner"

    def __init__(
        self,
        store: Store,
        *,
        keep_days: int,
        reward_period_s: int,
        grace_s: float,
        **loop: Unpack[BatchLoop],
    ) -> None:
        super().__init__(**loop)
        request_log_cutoff(0.0, keep_days, reward_period_s=reward_period_s, grace_s=grace_s)
        self.store = store
        self.keep_days = keep_days
        self.reward_period_s = reward_period_s
        self.grace_s = grace_s

    async def poll(self) -> int:
        """One run: delete what is older than the cutoff, bounded; how many rows went."""
        cutoff = request_log_cutoff(
            self._wall(),
            self.keep_days,
            reward_period_s=self.reward_period_s,
            grace_s=self.grace_s,
        )
        said = "request log: %d rows created before %s deleted"
        return await self._prune_before(cutoff, self.store.prune_requests, said)


class SettlementPruner(_BatchPruner):
    """Done-with settlement rows deleted (the module docstring), on ``engine()``'s database:
    the settlement's (the store's own, or the ledger's private one)."""

    task_name = "llm-mesh-settlement-pruner"

    def __init__(
        self,
        engine: Callable[[], Awaitable[AsyncEngine]],
        *,
        keep_days: int,
        **loop: Unpack[BatchLoop],
    ) -> None:
        super().__init__(**loop)
        settlement_cutoff(0.0, keep_days)
        self.engine = engine
        self.keep_days = keep_days

    async def poll(self) -> int:
        """One run: delete done-with rows settled before the cutoff, bounded; how many."""
        cutoff = settlement_cutoff(self._wall(), self.keep_days)
        if cutoff is None:
            return 0
        engine = await self.engine()  # asked only when a run is due

        async def prune(before: datetime, limit: int) -> int:
            return await prune_settlements(engine, before, limit)

        said = "settlements: %d settled or void rows settled before %s deleted"
        return await self._prune_before(cutoff, prune, said)


class CutReceiptPruner(_BatchPruner):
    """Cut streams' stored receipts made before the cutoff deleted (the module docstring),
    with ``store.prune_cut_receipts``."""

    task_name = "llm-mesh-cut-receipt-pruner"

    def __init__(
        self,
        store: CutReceiptPrunable,
        *,
        keep_days: int,
        **loop: Unpack[BatchLoop],
    ) -> None:
        super().__init__(**loop)
        cut_receipt_cutoff(0.0, keep_days)
        self.store = store
        self.keep_days = keep_days

    async def poll(self) -> int:
        """One run: delete the receipts made before the cutoff, bounded; how many."""
        cutoff = cut_receipt_cutoff(self._wall(), self.keep_days)
        said = "cut receipts: %d made before %s deleted"
        return await self._prune_before(cutoff, self.store.prune_cut_receipts, said)


class UnpaidPruner(_BatchPruner):
    """The counts of requests served unpaid of days before the cutoff deleted (the module
    docstring), with ``store.prune_unpaid``."""

    task_name = "llm-mesh-unpaid-pruner"

    def __init__(self, store: UnpaidPrunable, *, keep_days: int, **loop: Unpack[BatchLoop]) -> None:
        super().__init__(**loop)
        unpaid_cutoff(0.0, keep_days)
        self.store = store
        self.keep_days = keep_days

    async def poll(self) -> int:
        """One run: delete the rows of days wholly before the cutoff, bounded; how many."""
        cutoff = unpaid_cutoff(self._wall(), self.keep_days)
        said = "unpaid requests: %d counts of days before %s deleted"
        return await self._prune_before(cutoff, self.store.prune_unpaid, said)


def unpaid_pruner(store: object, keep_days: int) -> UnpaidPruner | None:
    """The app's :class:`UnpaidPruner` for ``store``: None when it counts nothing served
    unpaid or ``keep_days`` is 0 (kept forever)."""
    if keep_days == 0 or not stores_unpaid(store):
        return None
    return UnpaidPruner(cast(UnpaidPrunable, store), keep_days=keep_days)


async def prune_settlements(engine: AsyncEngine, before: datetime, limit: int) -> int:
    """Delete at most ``limit`` settlement rows that are ``settled`` or ``void`` and were
    last updated (settled, voided) before ``before``; how many. One short statement, as
    ``Store.prune_requests``: on PostgreSQL the rows are taken ``FOR UPDATE SKIP LOCKED``,
    so replicas pruning at once skip each other's rows; the delete checks the state again,
    so a row that changed meanwhile stays."""
    prune_bounds(before, limit)
    s = tables.settlements
    # the keys: ``ix_settlements_done``'s range (SQLite: named, settle_scans.py), not every
    # settled row of the ``state`` index; the delete's check again: ``state || ''``, which
    # no index serves, so it finds its rows by their keys
    done = (s.c.state.concat("").in_(("settled", "void")), s.c.updated_at < before)
    dialect = engine.dialect.name
    keys = (
        select(col("request_id"), col("part"))
        .select_from(done_rows(dialect))
        .where(is_done(), col("updated_at") < before)
        .limit(limit)
    )
    if dialect == "postgresql":
        # materialized: PostgreSQL may otherwise run a LIMIT subquery under IN again for
        # each outer row and delete more than ``limit`` (seen: all 7 rows at limit 3)
        keys = keys.with_for_update(skip_locked=True)
        doomed = keys.cte("doomed").prefix_with("MATERIALIZED")
        keys = select(doomed.c.request_id, doomed.c.part)
    stmt = delete(s).where(tuple_(s.c.request_id, s.c.part).in_(keys), *done)
    async with engine.begin() as conn:
        result = await conn.execute(stmt)
    return int(result.rowcount or 0)
