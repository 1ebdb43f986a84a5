"""The gateway's traffic series fed from its request records (one call per request).

:class:`TrafficFeed` holds the process's :class:`~LLM_Mesh.core.traffic.TrafficSeries`
and the wall clock it is read with; :meth:`TrafficFeed.observe` is registered as an
observer of the request writer (``registry/request_log.py``), so every finished
request — answered, failed or cancelled, streamed or not — is counted once, in memory,
with no I/O and no await. This process's traffic only: each gateway replica counts its own.

A request is counted in the series when the series is next read (:attr:`TrafficFeed.series`,
the dashboard's only way to it) or once :data:`PENDING` requests wait, whichever comes
first: :meth:`~TrafficFeed.observe` notes the request and the clock's time, and the series
is fed those, in order, with those times, so every read sees what feeding each request
at once would have made of it. Feeding a request by itself ran the series' code cold on
every request (~12 µs of the gateway loop's CPU, docs/benchmarks.md); a batch runs it warm.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from LLM_Mesh.core.traffic import TrafficSeries
from LLM_Mesh.registry.ports import RequestRecord

__all__ = ["PENDING", "TrafficFeed"]

PENDING = 1024  # requests noted before the series is fed them without a read


class TrafficFeed:
    __slots__ = ("_pending", "_series", "clock")

    def __init__(
        self, series: TrafficSeries | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._series = series if series is not None else TrafficSeries()
        self.clock = clock
        # (the clock's time, record); a deque: a read from another thread (a test's) takes
        # them one by one while the loop may add more
        self._pending: deque[tuple[float, RequestRecord]] = deque()

    @property
    def series(self) -> TrafficSeries:
        """The series, every request observed so far counted in it."""
        if self._pending:
            self._feed()
        return self._series

    def observe(self, rec: RequestRecord) -> None:
        """Count one finished request (the request writer's observer; the record is the
        writer's, never changed once submitted)."""
        pending = self._pending
        pending.append((self.clock(), rec))
        if len(pending) >= PENDING:
            self._feed()

    def _feed(self) -> None:
        pending, observe = self._pending, self._series.observe
        while pending:
            now, rec = pending.popleft()
            observe(
                now,
                ok=rec.outcome == "ok",
                failed=rec.outcome == "error",
                latency_ms=rec.latency_ms,
                ttft_ms=rec.ttft_ms,
                tokens=rec.completion_tokens,
                node_id=rec.node_id,
                model=rec.model,
            )
