"""A background loop's run of failed rounds: when an outage is worth an ERROR, and its end.

A registry's loops on the store (the usage audit's and the canary's batches, the heartbeat
writer, the ledger checkpointer, the reward task, the witness pusher, the health checks'
leases and results, the request log's writer) log a round that failed for the database's
connection lost, timed out or locked as one WARNING line (``registry/start_retry.
log_failed_round``): an expected transient. An outage of an hour was a WARNING every round
and never an ERROR, so an operator's alerting on ERROR never fired, and nothing said when it
ended (found 2026-12-07, session 42's note). :class:`RoundAlarm` decides, from each round's
time (any one monotonic clock's seconds, the caller's) and whether it failed:

- a failed round of a run (the rounds failed in a row) younger than ``alarm_after_s``
  (60 s after its first failed round), or the run's first: its own line, as it is;
- the first failed round at or past ``alarm_after_s`` (at least the run's second): one
  ERROR (:attr:`Alarm.level`), "still failing after X s, N failed rounds in a row"; from
  then on each failed round's own line is quiet (the caller logs it at DEBUG);
- while the run lasts, that ERROR again every ``repeat_s`` (600 s) after the last;
- the first round that succeeds after a run: one INFO, "recovered after N failed rounds
  over X s" (any run, alarmed or not: the WARNINGs' end is said too).

A loop that runs every few seconds or more often (the store polls, ``registry/poller.py``;
the settler's, its log sync's and the upkeep's rounds, ``registry/settle_durable.py``; the
settlement's, the request log's, the cut receipts' and the heartbeat writers; the usage
audit's and the canary's batches, ``registry/store_batch.py``; the worker gauges, loops43:
before, those said each failed round till the ERROR) is ``first_only``: of a run only its first failed round says its own line, the others are
quiet from the second on (a line a round of such a loop was the flood found 2026-12-04: a
replica cut off from PostgreSQL logged about 400 lines a second); the ERROR, its repeats and
the INFO are the same (session 42, alarm42: one scheme for every loop, where the pollers
and the settlement said a run's first failure, then an ERROR a minute, its end a WARNING).

It keeps the counts in a :class:`~LLM_Mesh.core.fail_streak.FailStreak` (also when the
loop last succeeded: ``FailStreak.silent_s``, the replica beat's ``GET /healthz``), whose
own first/remind answer is not used here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from LLM_Mesh.core.fail_streak import FailStreak

__all__ = ["ALARM_AFTER_S", "REPEAT_S", "Alarm", "RoundAlarm", "RoundSaid"]

ALARM_AFTER_S = 60.0  # a run of failed rounds this long is an ERROR
REPEAT_S = 600.0  # and said again this often while it lasts


@dataclass(frozen=True)
class Alarm:
    """A line about the run itself, at ``level`` (a ``logging`` level number): still
    failing (ERROR) or recovered (INFO)."""

    level: int
    rounds: int  # the run's failed rounds so far (recovered: all of them)
    failing_s: float  # since the run's first failed round

    def text(self, since: str = "") -> str:
        """The line, after the loop's name; ``since``: the first failure's wall time."""
        at = f" (since {since})" if since else ""
        if self.level == logging.INFO:
            return f"recovered after {_rounds(self.rounds)} over {self.failing_s:.0f} s{at}"
        return f"still failing after {self.failing_s:.0f} s, {_rounds(self.rounds)} in a row{at}"


@dataclass(frozen=True)
class RoundSaid:
    """What to log of a failed round: its own line quiet (DEBUG) or not, and an alarm."""

    quiet: bool
    alarm: Alarm | None


@dataclass
class RoundAlarm:
    """One loop's runs of failed rounds (see the module docstring)."""

    alarm_after_s: float = ALARM_AFTER_S
    repeat_s: float = REPEAT_S
    first_only: bool = False  # a run's rounds after its first quiet too (module docstring)
    streak: FailStreak = field(default_factory=FailStreak)
    _alarmed_at: float | None = None  # the last alarm of the current run

    @property
    def alarmed(self) -> bool:
        """Whether the current run was said as an ERROR."""
        return self._alarmed_at is not None

    def failed(self, now: float) -> RoundSaid:
        """One more failed round at ``now``."""
        self.streak.fail(now)
        rounds, failing_s = self.streak.failures, self.streak.failing_s(now)
        alarmed = self._alarmed_at
        if alarmed is None:
            if rounds < 2 or failing_s < self.alarm_after_s:
                return RoundSaid(quiet=self.first_only and rounds > 1, alarm=None)
        elif now - alarmed < self.repeat_s:
            return RoundSaid(quiet=True, alarm=None)
        self._alarmed_at = now
        return RoundSaid(quiet=True, alarm=Alarm(logging.ERROR, rounds, failing_s))

    def succeeded(self, now: float) -> Alarm | None:
        """A round that succeeded at ``now``: the INFO that ends a run, or None (none ran)."""
        self._alarmed_at = None
        ended = self.streak.ok(now)
        return None if ended is None else Alarm(logging.INFO, ended[0], ended[1])


def _rounds(n: int) -> str:
    return f"{n} failed round" if n == 1 else f"{n} failed rounds"
