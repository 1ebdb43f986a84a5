"""A run of failures of one repeated task (a store poll every second): what to say of each.

A replica whose database went away failed each of its store polls every second, and each
failure was logged with its whole traceback: about 400 lines a second from one replica
(found 2026-12-04, a replica cut off from PostgreSQL), in which the cause was hard to find.
:class:`FailStreak` decides which failures are worth a line: the first of a run (``"first"``,
with its traceback), then one a ``remind_s`` (``"remind"``: still failing, how long, how many
times), the others ``"quiet"``; and :meth:`FailStreak.ok` ends the run, answering how many
failures it had and for how long, so that the recovery is said once too. It also keeps when
the task last succeeded (:meth:`FailStreak.silent_s`: the replica's health answer reads it).
Times are any one monotonic clock's seconds, given by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FailStreak", "Said"]

Said = Literal["first", "remind", "quiet"]


@dataclass
class FailStreak:
    remind_s: float = 60.0
    failures: int = 0  # in the current run; 0: the last try succeeded
    since: float | None = None  # the run's first failure
    ok_at: float | None = None  # the last success
    _told_at: float = 0.0

    def fail(self, now: float) -> Said:
        """One more failure at ``now``: whether to log it in full, as a reminder, or not."""
        self.failures += 1
        if self.failures == 1 or self.since is None:
            self.since = self._told_at = now
            return "first"
        if now - self._told_at >= self.remind_s:
            self._told_at = now
            return "remind"
        return "quiet"

    def ok(self, now: float) -> tuple[int, float] | None:
        """A success at ``now``: the run of failures it ends (how many, for how many seconds),
        or None when the last try succeeded too."""
        self.ok_at = now
        if self.failures == 0 or self.since is None:
            return None
        ended = (self.failures, now - self.since)
        self.failures, self.since = 0, None
        return ended

    def failing_s(self, now: float) -> float:
        """How long the current run of failures has lasted; 0 when not failing."""
        return 0.0 if self.since is None else max(0.0, now - self.since)

    def silent_s(self, now: float, started: float) -> float:
        """Seconds since the last success (since ``started`` when none yet)."""
        return max(0.0, now - (started if self.ok_at is None else self.ok_at))
