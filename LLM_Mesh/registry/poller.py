"""A background poll of the store: ``poll()`` every ``interval_s``, owned by the app's lifespan.

Revocations reach a running registry this way (nodes: :mod:`revocations`; API keys:
:mod:`api_keys`), so a revocation made by another process on the same store, or by
the admin CLI, takes effect within one interval. A failed poll is logged and the loop
goes on: a store hiccup must not stop it. A run of failures (a database gone away) is said
as every background loop's is (``failed_rounds.RoundLog``, ``first_only``: a poll a second):
its first failed poll in one WARNING line (a lost connection, a timeout, SQLite's lock) or
an ERROR with its traceback (anything else), the others at DEBUG, 60 s into it one ERROR
``<task>: still failing after X s, N failed rounds in a row ...``, again every 600 s, and
one INFO ``<task>: recovered after N failed rounds over X s`` when a poll succeeds (found
2026-12-04: each poll's traceback every second, about 400 lines a second; alarm42: one
scheme for all loops). :meth:`Poller.silent_s` says how long since the last successful poll
(``GET /healthz`` reads the replica beat's).

``changes`` (optional) is a cheap check of whether the poll would find anything new: a
number that moves with every write the poll reads (``SqlStore.poll_version``: a counter
per poll that SQLite triggers move in the writes' own transactions, migration 0013), or
``None`` for "cannot tell". While it holds the value read before the last successful
poll, the poll would find nothing new and is skipped; a poll of a store that cannot tell
(PostgreSQL, the memory store) always runs. The value is read *before* the poll's
queries, so a write committed while they run moves it and the next tick polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from LLM_Mesh.registry.failed_rounds import RoundLog
from LLM_Mesh.task_stop import cancel_and_wait

__all__ = ["Poller"]

log = logging.getLogger(__name__)


class Poller:
    """Subclasses set ``interval_s`` and ``task_name`` and implement :meth:`poll`."""

    interval_s: float = 1.0
    task_name: str = "llm-mesh-poller"
    changes: Callable[[], int | None] | None = None
    _task: asyncio.Task[None] | None = None
    _polled_at: int | None = None  # ``changes()`` read before the last successful poll
    streak_clock: Callable[[], float] = staticmethod(time.monotonic)
    _round_log: RoundLog | None = None

    @property
    def round_log(self) -> RoundLog:
        """This poller's failed polls (made at its first tick, on ``streak_clock``)."""
        if self._round_log is None:
            self._round_log = RoundLog(  # the clock read each time: tests set it later
                log, self.task_name, clock=lambda: self.streak_clock(), first_only=True
            )
        return self._round_log

    def silent_s(self) -> float:
        """Seconds since this poller's last successful poll (since its first tick when
        none succeeded yet)."""
        return self.round_log.silent_s()

    async def poll(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    async def tick(self) -> bool:
        """Poll unless ``changes`` says nothing was written since the last poll; whether
        it polled. A failed poll is logged (the next tick polls again)."""
        version = self._version()
        if version is not None and version == self._polled_at:
            return False
        rounds = self.round_log
        try:
            await self.poll()
        except Exception as exc:  # a store hiccup must not stop the loop
            self._polled_at = None
            rounds.failed(exc, f"{self.task_name}: poll failed", "polled again next tick")
        else:
            self._polled_at = version
            rounds.ok()
        return True

    def _version(self) -> int | None:
        if self.changes is None:
            return None
        try:
            return self.changes()
        except Exception:  # cannot tell: poll
            return None

    def wait_s(self) -> float:
        """How long to sleep before the next tick: ``interval_s`` (a subclass may wake
        sooner, as the canary scheduler does at its next probe's time)."""
        return self.interval_s

    async def _loop(self) -> None:
        while True:
            await self.tick()
            await asyncio.sleep(self.wait_s())

    def round_logs(self) -> Iterable[RoundLog]:
        """This poller's loop (``failed_rounds.HasRoundLogs``)."""
        return (self.round_log,)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
