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
42's note): a long outage was one WARNING a round and never an ERROR. A loop of a round
every few seconds or more often (the store polls, the settlement's rounds and writer, the
batch and heartbeat writers, the store batches, the worker gauges: loops43) is
``first_only``: only a run's first failed round says its own line
(``core/round_alarm.py``).

Its ``watch`` (a :class:`LoopWatch`, injected: ``GatewayMetrics.loops``, the replica's
``/metrics``) is told of each failed round and of the alarm's start and end, by the loop's
``label`` (``llm_mesh_gateway_loop_failed_rounds_total{loop}``,
``llm_mesh_gateway_loop_failing{loop}``: 1 from the ERROR to the INFO). Each part that owns
loops declares their logs (:class:`HasRoundLogs`, loops42: before, found by reflection on
the part's attributes, and a loop out of its reach silently unwatched).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from LLM_Mesh.core.printable import one_line
from LLM_Mesh.core.round_alarm import ALARM_AFTER_S, REPEAT_S, Alarm, RoundAlarm
from LLM_Mesh.registry.start_retry import log_failed_round

__all__ = ["HasRoundLogs", "LoopWatch", "RoundLog", "loop_label"]


class LoopWatch(Protocol):
    """Told of a loop's failed rounds (the replica's metrics: ``registry/metrics_loops.py``)."""

    def failed_round(self, loop: str) -> None:
        """One failed round of ``loop``."""

    def failing(self, loop: str, alarmed: bool) -> None:
        """``loop``'s run of failed rounds said as an ERROR (True), or ended (False)."""

    def watched(self, loop: str) -> None:
        """``loop`` is watched from now on (its metrics shown before it fails)."""


def loop_label(name: str) -> str:
    """A loop's metric label from its name: "the requests writer" -> ``requests_writer``,
    "llm-mesh-replica-beat" -> ``replica_beat``."""
    label = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    for head in ("the_", "llm_mesh_"):
        label = label.removeprefix(head)
    return label or "loop"


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
        first_only: bool = False,
        label: str | None = None,
        watch: LoopWatch | None = None,
    ) -> None:
        self.log = logger
        self.name = name
        self.label = loop_label(name) if label is None else label
        self.clock = clock
        self.wall_clock = wall_clock
        self.alarm = RoundAlarm(alarm_after_s, repeat_s, first_only=first_only)
        self._watch: LoopWatch | None = None
        self.watch = watch
        self._started = clock()  # a loop with no success yet: silent since

    @property
    def watch(self) -> LoopWatch | None:
        """Told of this loop's failed rounds and alarms (the metrics), by its ``label``."""
        return self._watch

    @watch.setter
    def watch(self, watch: LoopWatch | None) -> None:
        self._watch = watch
        if watch is not None:
            watch.watched(self.label)

    @property
    def failing(self) -> int:
        """The failed rounds in a row now (0: the last round succeeded)."""
        return self.alarm.streak.failures

    def failing_s(self) -> float | None:
        """How long the current run of failed rounds has lasted; None: not failing."""
        streak = self.alarm.streak
        return streak.failing_s(self.clock()) if streak.failures else None

    def silent_s(self) -> float:
        """Seconds since the last round that succeeded (since this log was made: none yet)."""
        return self.alarm.streak.silent_s(self.clock(), self._started)

    def failed(self, exc: BaseException, what: str, then: str = "", *, stacklevel: int = 1) -> None:
        """A failed round (in the loop's ``except``): its line (``log_failed_round``'s,
        quiet once the run was said as an ERROR, or after its first when ``first_only``),
        and the run's ERROR when due. ``stacklevel``: as ``logging``'s, from the caller."""
        said = self.alarm.failed(self.clock())
        first_only = self.alarm.first_only
        up = stacklevel + 1
        store = log_failed_round(self.log, exc, what, then, quiet=said.quiet,
                                 errors_too=first_only, stacklevel=up)  # fmt: skip
        watch = self.watch
        if watch is not None:
            watch.failed_round(self.label)
        if said.alarm is not None:
            quiet = ", each failed round at DEBUG till then" if store or first_only else ""
            self.log.error(
                "%s: %s; the last: %s (%s); said again every %.0f s while it fails%s",
                self.name, self._text(said.alarm), what, one_line(exc), self.alarm.repeat_s,
                quiet, stacklevel=up,
            )  # fmt: skip
            if watch is not None:
                watch.failing(self.label, True)

    def ok(self, *, stacklevel: int = 1) -> None:
        """A round that succeeded: the INFO that ends a run of failed ones."""
        alarmed = self.alarm.alarmed
        ended = self.alarm.succeeded(self.clock())
        if ended is not None:
            self.log.info("%s: %s", self.name, self._text(ended), stacklevel=stacklevel + 1)
            if alarmed and self.watch is not None:
                self.watch.failing(self.label, False)

    def _text(self, alarm: Alarm) -> str:
        began = self.wall_clock() - alarm.failing_s
        return alarm.text(time.strftime("%H:%M:%S UTC", time.gmtime(began)))


class HasRoundLogs(Protocol):
    """A part that owns background loops: it declares their :class:`RoundLog`\\ s, every
    one (the metrics watch what this names, nothing else: ``registry/metrics_loops.py``; a
    part started by the app's ``app_stops.Stops`` is one, its loops or none)."""

    def round_logs(self) -> Iterable[RoundLog]:
        """This part's loops' logs (those of the parts it owns and starts too), each once."""
        ...
