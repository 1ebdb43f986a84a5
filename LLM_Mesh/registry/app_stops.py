"""The stops of what the app's start started (``app.py``'s lifespan), in the stop order.

Each start step records its stop as it runs (:meth:`Stops.start`, :meth:`Stops.add`); the
lifespan's end, or a start step that raised, runs the stops recorded, in :data:`STOP_ORDER`
(not the start's reverse: the settlement stops before the checkpointer signs its last
checkpoint, the request writer after the loops that queue rows). So a start that fails at step
k stops what steps 1..k-1 started and leaves nothing running against a closed store. Found
2026-12-07 (review, session 39): the loops started before the lifespan's ``try: yield`` were
never stopped when a later start step raised. ``on_start`` (optional) is told of each part
before it starts (the metrics watch its loops' failed rounds: ``metrics_loops.py``): a part
started is a ``failed_rounds.HasRoundLogs``, it declares its loops (none: ``()``), loops42.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from LLM_Mesh.registry.failed_rounds import RoundLog

__all__ = ["STOP_ORDER", "Stops"]

log = logging.getLogger("LLM_Mesh.registry.app")  # its lines as before the split

# The order of the stops, first to last; a name's stops run last recorded first (the pruners)
STOP_ORDER = (
    "prune", "canary", "departures", "usage_audit", "quality_watcher", "rewards", "settlement",
    "keys", "pusher", "witness_client", "checkpointer", "revocations", "health", "metrics",
    "writer", "cut_receipts", "unpaid", "heartbeats", "idempotency", "node_sync", "beat", "shared_shown",
    "shared_in_flight", "shared_share", "shared_limits", "client",
)  # fmt: skip


class Startable(Protocol):
    """A part the app starts: it declares its loops' logs (``failed_rounds.HasRoundLogs``)."""

    def start(self) -> object: ...

    def stop(self) -> Awaitable[object]: ...

    def round_logs(self) -> Iterable[RoundLog]: ...


class Stops:
    """The stops recorded by the start, run once by :meth:`run` in :data:`STOP_ORDER`."""

    def __init__(self, on_start: Callable[[Startable], object] | None = None) -> None:
        self._stops: dict[str, list[Callable[[], Awaitable[object]]]] = {}
        self.on_start = on_start

    def add(self, name: str, stop: Callable[[], Awaitable[object]]) -> None:
        """``stop`` run at the end (``name``: one of :data:`STOP_ORDER`)."""
        if name not in STOP_ORDER:
            raise ValueError(f"no stop named {name!r}")
        self._stops.setdefault(name, []).append(stop)

    def start(self, name: str, part: Startable) -> None:
        """``part`` started (told to ``on_start`` first), its ``stop`` recorded under
        ``name``."""
        if self.on_start is not None:
            self.on_start(part)
        part.start()
        self.add(name, part.stop)

    async def run(self) -> None:
        """Every stop recorded, in :data:`STOP_ORDER`; one that raises does not keep the
        others from running: the first error is raised after the last stop, any later logged."""
        first: BaseException | None = None
        for name in STOP_ORDER:
            for stop in reversed(self._stops.pop(name, [])):
                try:
                    await stop()
                except Exception as exc:
                    if first is not None:
                        log.exception("stopping %s failed", name)
                    first = first or exc
        if first is not None:
            raise first
