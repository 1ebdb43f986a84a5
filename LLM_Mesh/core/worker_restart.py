"""When a registry worker that died is started again (``registry serve --workers N``).

The supervisor (:mod:`LLM_Mesh.registry.workers`) restarts a worker process that exited
while nobody asked it to stop. A worker that keeps dying at start (its database gone, a
bad certificate) must not be restarted in a tight loop that fills the log and burns a
core: :class:`RestartPolicy` waits 1, 2, 4, 8, 16, then 30 s between the restarts of one
worker while each run lived less than ``steady_s`` (:class:`~LLM_Mesh.core.retry.Backoff`'s
delays, its exponent capped: a loop of days does not overflow); a run that lived
``steady_s`` or longer starts the count again (its death is news, not a crash loop). Times are one monotonic
clock's seconds, given by the caller.

A worker that hangs (stopped with ``SIGSTOP``, its event loop blocked) does not exit, yet
the kernel still hands it its share of the port's new connections. Each worker proves its
event loop alive by a beat every second (:mod:`LLM_Mesh.worker_beat`); :class:`HangPolicy`
says when one has been silent too long and is to be killed (then restarted as one that
died): ``timeout_s`` after its last beat, or, before its first (a worker still starting:
migrations, keys), ``start_s`` after its start if that is longer. ``timeout_s`` 0: never.
A timeout of about a beat would kill healthy, idle workers (a beat a second, seen up to a
poll later): ``registry serve`` takes :data:`MIN_WORKER_TIMEOUT_S` or more (found
2026-12-04, review: ``--worker-timeout 1`` was taken).
"""

from __future__ import annotations

from dataclasses import dataclass

from LLM_Mesh.core.retry import Backoff

__all__ = ["DEFAULT_WORKER_TIMEOUT_S", "MIN_WORKER_TIMEOUT_S", "HangPolicy", "RestartPolicy"]

DEFAULT_WORKER_TIMEOUT_S = 30.0  # as gunicorn's --timeout
MIN_WORKER_TIMEOUT_S = 5.0  # 5 beats (worker_beat.BEAT_S): a loop late by a beat lives


@dataclass
class RestartPolicy:
    first_s: float = 1.0
    max_s: float = 30.0
    steady_s: float = 60.0
    crashes: int = 0  # short runs in a row

    def died(self, lived_s: float) -> float:
        """A run of ``lived_s`` seconds ended unasked: the seconds to wait before the next."""
        self.crashes = 1 if lived_s >= self.steady_s else self.crashes + 1
        return Backoff(base_s=self.first_s, max_s=self.max_s).delay(self.crashes)


@dataclass(frozen=True)
class HangPolicy:
    timeout_s: float = DEFAULT_WORKER_TIMEOUT_S  # 0: a silent worker is never killed
    start_s: float = 120.0  # before its first beat, at least this long

    def silent_too_long(self, now: float, started_at: float, beat_at: float | None) -> float | None:
        """The seconds a worker started at ``started_at``, last beating at ``beat_at``
        (None: not yet), has been silent, when that is too long at ``now``; else None."""
        if self.timeout_s <= 0:
            return None
        if beat_at is None:
            silent, allowed = now - started_at, max(self.timeout_s, self.start_s)
        else:
            silent, allowed = now - beat_at, self.timeout_s
        return silent if silent > allowed else None
