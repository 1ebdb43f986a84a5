"""A replica's evidence written through the store in batches, off the request path: the
loop, start and bounded stop shared by ``usage_audit_sync.py`` (the usage audit's sums,
session 32) and ``canary_departures_sync.py`` (the canary's tallies, canarystore35).

The hot path adds to the subclass's pending state in memory (no I/O); every ``flush_s`` the
loop runs :meth:`StoreBatch.tick` (a failure logged, the next run tries again: the
database's connection lost, refused or broken, a transient on PostgreSQL (a failover, a
restart, ``pg_terminate_backend``; ``start_retry.log_failed_round``), in one WARNING line
naming the error; anything else at ERROR with its traceback: found 2026-12-07, ops41b, a
terminated connection logged a traceback every run; of a run of failed runs only the
first says its line, the others at DEBUG, ``first_only``, loops43; past 60 s one ERROR,
its end one INFO: ``failed_rounds.RoundLog``). At stop a
run under way ends first (cancelled in its write, its batch was lost: found 2026-12-06,
audit33), then what came meanwhile is written (:meth:`StoreBatch.flush`), each wait bounded
by ``stop_s`` (a store that never answered hung the shutdown: found 2026-12-06, review33;
what was not written is logged). A replica killed loses its pending state (``flush_s``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["StoreBatch"]

log = logging.getLogger(__name__)


class StoreBatch:
    """See the module docstring; a subclass names itself (``what``, for the logs) and gives
    :meth:`tick`, :meth:`flush` and :meth:`pending_note`."""

    what = "batch"

    def __init__(self, flush_s: float, stop_s: float) -> None:
        if flush_s <= 0:
            raise ValueError("flush_s must be positive")
        self.flush_s, self.stop_s = flush_s, stop_s
        self.failures = 0  # runs whose store work failed
        # their run: the first said, the rest at DEBUG (first_only: a run every 2 s, loops43:
        # before, 30 lines till the ERROR), past 60 s an ERROR, its end INFO
        self.round_log = RoundLog(log, self.what, first_only=True)
        self._task: asyncio.Task[None] | None = None
        self._running = False  # the loop's run under way (not its sleep)
        self._closing = False  # the loop ends after its run under way

    async def tick(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    async def flush(self) -> object:  # pragma: no cover - abstract
        """Write what is pending."""
        raise NotImplementedError

    def pending_note(self) -> str:  # pragma: no cover - abstract
        """What is pending, for the log of a stop that could not write it."""
        raise NotImplementedError

    async def first(self) -> None:
        """Before the loop's first run (nothing by default)."""

    def round_logs(self) -> Iterable[RoundLog]:
        """This batch's loop (``failed_rounds.HasRoundLogs``)."""
        return (self.round_log,)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def abandon(self) -> None:
        """Stop the loop, writing nothing (a start that raised: nothing pending yet)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def stop(self) -> None:
        """Stop the loop, then write what is pending (the module docstring)."""
        task, self._task = self._task, None
        if task is not None and self._running:
            self._closing = True  # the loop ends after this run
            try:  # (the caller's cancel does not cancel the run)
                await asyncio.wait({task}, timeout=self.stop_s)
            except asyncio.CancelledError:
                task.cancel()
                raise
            self._closing = False
        if task is not None:
            await cancel_and_wait(task)  # (a run past ``stop_s``: its batch lost, review33)
        lost = self.pending_note()
        try:  # bounded: a store that never answers does not hang the shutdown (review33)
            await asyncio.wait_for(self.flush(), self.stop_s)
        except Exception as exc:
            log.warning("%s: %s not written at stop (%r)", self.what, lost, exc)

    async def _loop(self) -> None:
        await self.first()
        while not self._closing:
            await asyncio.sleep(self.flush_s)
            self._running = True
            try:
                await self.tick()
            except Exception as exc:  # a store failure: logged, the next run tries again
                self.failures += 1
                what = f"{self.what}: the shared evidence could not be written or read"
                self.round_log.failed(exc, what, f"this round is tried again in {self.flush_s:g} s")
            else:
                self.round_log.ok()
            finally:
                self._running = False
