"""The request log's retention: old ``requests`` rows deleted hourly, in bounded batches.

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

Only the request log: the ledger (``ledger_entries``, ``ledger_nodes``, checkpoints) is
the public audit log and is never deleted; ``settlements`` rows are kept too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from LLM_Mesh.core.retention import request_log_cutoff
from LLM_Mesh.registry.poller import Poller
from LLM_Mesh.registry.ports import Store

__all__ = ["RequestLogPruner"]

log = logging.getLogger(__name__)


class RequestLogPruner(Poller):
    task_name = "llm-mesh-request-log-pruner"

    def __init__(
        self,
        store: Store,
        *,
        keep_days: int,
        reward_period_s: int,
        grace_s: float,
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
        request_log_cutoff(0.0, keep_days, reward_period_s=reward_period_s, grace_s=grace_s)
        self.store = store
        self.keep_days = keep_days
        self.reward_period_s = reward_period_s
        self.grace_s = grace_s
        self.interval_s = interval_s
        self.batch = batch
        self.max_batches = max_batches
        self.pause_s = pause_s
        self._wall = wall_clock
        self._sleep = sleep
        self._clock = clock

    async def poll(self) -> int:
        """One run: delete what is older than the cutoff, bounded; how many rows went."""
        cutoff = request_log_cutoff(
            self._wall(),
            self.keep_days,
            reward_period_s=self.reward_period_s,
            grace_s=self.grace_s,
        )
        if cutoff is None:
            return 0
        before = datetime.fromtimestamp(cutoff, timezone.utc)
        total = 0
        took = 0.0
        for i in range(self.max_batches):
            if i:  # the other writers' turn: at least as long as the pruner had the lock
                await self._sleep(max(self.pause_s, took))
            started = self._clock()
            gone = await self.store.prune_requests(before, self.batch)
            took = self._clock() - started
            total += gone
            if gone < self.batch:
                break
        if total:
            log.info("request log: %d rows created before %s deleted", total, before.isoformat())
        return total
