"""The gateway's traffic series fed from its request records (one call per request).

:class:`TrafficFeed` holds the process's :class:`~LLM_Mesh.core.traffic.TrafficSeries`
and the wall clock it is read with; :meth:`TrafficFeed.observe` is registered as an
observer of the request writer (``registry/request_log.py``), so every finished
request — answered, failed or cancelled, streamed or not — is counted once, in memory,
with no I/O and no await. This process's traffic only: each gateway replica counts its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from LLM_Mesh.core.traffic import TrafficSeries
from LLM_Mesh.registry.ports import RequestRecord

__all__ = ["TrafficFeed"]


class TrafficFeed:
    __slots__ = ("clock", "series")

    def __init__(
        self, series: TrafficSeries | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.series = series if series is not None else TrafficSeries()
        self.clock = clock

    def observe(self, rec: RequestRecord) -> None:
        """Count one finished request (the request writer's observer)."""
        self.series.observe(
            self.clock(),
            ok=rec.outcome == "ok",
            failed=rec.outcome == "error",
            latency_ms=rec.latency_ms,
            ttft_ms=rec.ttft_ms,
            tokens=rec.completion_tokens,
            node_id=rec.node_id,
            model=rec.model,
        )
