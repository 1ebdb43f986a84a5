"""The discrete-event loop: a virtual clock and a heap of timed callbacks.

Nothing sleeps: ``run`` pops the earliest event, sets ``now`` to its time and
calls it. Ties run in scheduling order (a sequence number breaks them), so a
run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

__all__ = ["EventLoop"]


class EventLoop:
    __slots__ = ("_heap", "_seq", "events_run", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self.events_run = 0

    def clock(self) -> float:
        return self.now

    def at(self, t: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` at virtual time ``t`` (not before ``now``)."""
        self._seq += 1
        heapq.heappush(self._heap, (t if t > self.now else self.now, self._seq, fn, arg))

    def after(self, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        self.at(self.now + delay, fn, arg)

    def run(self, until: float) -> None:
        heap = self._heap
        pop = heapq.heappop
        n = 0
        while heap and heap[0][0] <= until:
            t, _, fn, arg = pop(heap)
            self.now = t
            fn(arg)
            n += 1
        self.now = until
        self.events_run += n
