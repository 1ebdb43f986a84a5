"""The node's admission queue: a few slots, a bounded wait, then 429.

``max_concurrency`` requests run at once; up to ``max_queue`` more wait, first
come first served; beyond that :class:`~LLM_Mesh.errors.Overloaded` (HTTP 429
with ``Retry-After``). The operator's controls are states:

- ``online``   — normal;
- ``paused``   — accept nothing new (503); what already runs or waits finishes;
- ``draining`` — finish in-flight and queued work, take nothing new (503).

Everything runs on the event loop; no locks needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum

from LLM_Mesh.errors import ModelUnavailable, Overloaded


class AdmissionState(str, Enum):
    ONLINE = "online"
    PAUSED = "paused"
    DRAINING = "draining"


class Admission:
    """Bounded concurrency with a bounded FIFO wait."""

    def __init__(self, max_concurrency: int = 1, max_queue: int = 8, *, retry_after: int = 1):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_queue < 0:
            raise ValueError("max_queue cannot be negative")
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.state = AdmissionState.ONLINE
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    @property
    def idle(self) -> bool:
        return self._in_flight == 0 and self.queued == 0

    def pause(self) -> None:
        self.state = AdmissionState.PAUSED

    def resume(self) -> None:
        self.state = AdmissionState.ONLINE

    def drain(self) -> None:
        self.state = AdmissionState.DRAINING

    def _check_open(self) -> None:
        if self.state is AdmissionState.PAUSED:
            raise ModelUnavailable(
                "this node is paused by its operator", retry_after=30, node_state="paused"
            )
        if self.state is AdmissionState.DRAINING:
            raise ModelUnavailable(
                "this node is draining and takes no new requests",
                retry_after=30,
                node_state="draining",
            )

    async def acquire(self) -> None:
        """Take a slot, waiting in line if needed; raise when the line is full."""
        self._check_open()
        if self._in_flight < self.max_concurrency and not self.queued:
            self._take()
            return
        if self.queued >= self.max_queue:
            raise Overloaded(
                f"node busy: {self._in_flight} running and {self.queued} waiting "
                f"(max_queue={self.max_queue})",
                retry_after=self.retry_after,
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we gave up
            else:
                self._drop(fut)
            raise

    def _take(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def _drop(self, fut: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)

    def release(self) -> None:
        """Give a slot back: to the next waiter in line, or free it."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes over; in_flight is unchanged
                return
        if self._in_flight <= 0:
            raise RuntimeError("release() without a matching acquire()")
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()

    async def wait_idle(self) -> None:
        """Return once nothing runs or waits."""
        while not self.idle:
            await self._idle.wait()
            if not self.idle:
                await asyncio.sleep(0)
