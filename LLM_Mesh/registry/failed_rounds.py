"""One background loop's failed rounds in the log, and the outage they add up to.

Each loop on the store keeps a :class:`RoundLog` and tells it of every round:
:meth:`RoundLog.failed` in its ``except`` (the round's own line:
``start_retry.log_failed_round``), :meth:`RoundLog.ok` after a round that succeeded. The
run of failed rounds is judged by ``core/round_alarm.RoundAlarm``: 60 s after its first
failed round (at least its second), one ERROR ``<loop>: still failing after X s, N failed
rounds in a row (since HH:MM:SS UTC); the last: <round's line>``, each failed round's own
WARNING at DEBUG from then on (a round's ERROR, a bug's traceback, is never quieted), that
ERROR again every 600 s while it lasts, and one INFO ``<loop>: recovered after N failed
rounds over X s (since ...)`` at the first round that succeeds. Found 2026-12-07 (session
42's note): a long outage was one WARNING a round and never an ERROR.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from LLM_Mesh.core.printable import one_line
from LLM_Mesh.core.round_alarm import ALARM_AFTER_S, REPEAT_S, Alarm, RoundAlarm
from LLM_Mesh.registry.start_retry import log_failed_round

__all__ = ["RoundLog"]


class RoundLog:
    """A loop's failed rounds and their run, in ``logger``; ``name``: the loop, as the run's
    lines say it ("usage audit"); ``clock`` (monotonic) times the run, ``wall_clock`` says
    when it began."""

    def __init__(
        self,
        logger: logging.Logger,
        name: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        alarm_after_s: float = ALARM_AFTER_S,
        repeat_s: float = REPEAT_S,
    ) -> None:
        self.log = logger
        self.name = name
        self.clock = clock
        self.wall_clock = wall_clock
        self.alarm = RoundAlarm(alarm_after_s, repeat_s)

    @property
    def failing(self) -> int:
        """The failed rounds in a row now (0: the last round succeeded)."""
        return self.alarm.streak.failures

    def failed(self, exc: BaseException, what: str, then: str = "") -> None:
        """A failed round (in the loop's ``except``): its line (``log_failed_round``'s,
        quiet once the run was said as an ERROR), and the run's ERROR when due."""
        said = self.alarm.failed(self.clock())
        store = log_failed_round(self.log, exc, what, then, quiet=said.quiet, stacklevel=2)
        if said.alarm is not None:
            quiet = ", each failed round at DEBUG till then" if store else ""
            self.log.error(
                "%s: %s; the last: %s (%s); said again every %.0f s while it fails%s",
                self.name, self._text(said.alarm), what, one_line(exc), self.alarm.repeat_s,
                quiet, stacklevel=2,
            )  # fmt: skip

    def ok(self) -> None:
        """A round that succeeded: the INFO that ends a run of failed ones."""
        ended = self.alarm.succeeded(self.clock())
        if ended is not None:
            self.log.info("%s: %s", self.name, self._text(ended), stacklevel=2)

    def _text(self, alarm: Alarm) -> str:
        began = self.wall_clock() - alarm.failing_s
        return alarm.text(time.strftime("%H:%M:%S UTC", time.gmtime(began)))
