"""A background poll of the store: ``poll()`` every ``interval_s``, owned by the app's lifespan.

Revocations reach a running registry this way (nodes: :mod:`revocations`; API keys:
:mod:`api_keys`), so a revocation made by another process on the same store, or by
the admin CLI, takes effect within one interval. A failed poll is logged and the loop
goes on: a store hiccup must not stop it. A run of failures (a database gone away) is not
logged once a second with its traceback: the first failure in full, then one ERROR line a
minute while it lasts (how long, how many tries, the last reason), and one WARNING line when
a poll succeeds again (``core/fail_streak.py``); :meth:`Poller.silent_s` says how long since
the last successful poll (``GET /healthz`` reads the replica beat's).

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
from collections.abc import Callable

from LLM_Mesh.core.fail_streak import FailStreak
from LLM_Mesh.core.printable import one_line
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
    _streak: FailStreak | None = None
    _started: float | None = None

    @property
    def streak(self) -> FailStreak:
        if self._streak is None:
            self._streak = FailStreak()
            self._started = self.streak_clock()
        return self._streak

    def silent_s(self) -> float:
        """Seconds since this poller's last successful poll (since its first tick when
        none succeeded yet)."""
        streak, now = self.streak, self.streak_clock()
        return streak.silent_s(now, now if self._started is None else self._started)

    async def poll(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError

    async def tick(self) -> bool:
        """Poll unless ``changes`` says nothing was written since the last poll; whether
        it polled. A failed poll is logged (the next tick polls again)."""
        version = self._version()
        if version is not None and version == self._polled_at:
            return False
        streak = self.streak
        try:
            await self.poll()
        except Exception as exc:  # a store hiccup must not stop the loop
            self._polled_at = None
            said = streak.fail(self.streak_clock())
            if said == "first":
                log.exception(
                    "%s: poll failed (%s); while it fails, one line a minute",
                    self.task_name, one_line(exc),
                )  # fmt: skip
            elif said == "remind":
                log.error(
                    "%s: poll still failing, %d tries over %.0f s; the last: %s",
                    self.task_name, streak.failures, streak.failing_s(self.streak_clock()),
                    one_line(exc),
                )  # fmt: skip
            else:
                log.debug("%s: poll failed again: %s", self.task_name, one_line(exc))
        else:
            self._polled_at = version
            ended = streak.ok(self.streak_clock())
            if ended is not None:
                log.warning(
                    "%s: polls again, after %d failed tries over %.0f s",
                    self.task_name, ended[0], ended[1],
                )  # fmt: skip
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

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.task_name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
