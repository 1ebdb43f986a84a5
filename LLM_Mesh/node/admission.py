"""The node's admission queue: a few slots, a bounded wait, then 429.

``max_concurrency`` requests run at once; up to ``max_queue`` more wait, keyed
requests (the gateway's ``mesh_priority``, read by ``node/app.py`` from a request it
authenticated) before the others and each class first come first served, an ordinary
waiter served at the latest after :data:`~LLM_Mesh.core.priority.MAX_PASSED_OVER` keyed
ones overtook it or :data:`~LLM_Mesh.core.priority.MAX_ORDINARY_WAIT_S` of waiting
(:func:`~LLM_Mesh.core.priority.next_waiter`); the last places of the line kept for keyed
requests while the node has lately had one (:func:`~LLM_Mesh.core.priority.admits`: an
ordinary request finding only those free is refused); beyond that
:class:`~LLM_Mesh.errors.Overloaded` (HTTP 429
with ``Retry-After`` = the estimated time until the queue ahead has drained,
:func:`~LLM_Mesh.core.queue_wait.queue_wait_s`, from the running and queued
requests and the measured time a request holds its slot,
:class:`~LLM_Mesh.core.queue_wait.ServiceTime`). The operator's controls are states:

- ``online``   — normal;
- ``paused``   — accept nothing new (503); what already runs or waits finishes;
- ``draining`` — finish in-flight and queued work, take nothing new (503).

Everything runs on the event loop; no locks needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import Enum

from LLM_Mesh.core.priority import (
    Waiter,
    admits,
    keeps_places,
    kept_places,
    keyed_age_s,
    next_waiter,
    pass_over,
)
from LLM_Mesh.core.queue_wait import ServiceTime, queue_wait_s, retry_after_header
from LLM_Mesh.errors import ModelUnavailable, Overloaded


class AdmissionState(str, Enum):
    ONLINE = "online"
    PAUSED = "paused"
    DRAINING = "draining"


class _InLine(Waiter):
    """A waiter and the future its slot is handed over by."""

    __slots__ = ("fut",)

    def __init__(self, keyed: bool, since: float, fut: asyncio.Future[float]) -> None:
        super().__init__(keyed, since)
        self.fut = fut


class Admission:
    """Bounded concurrency with a bounded wait, keyed requests first (module docstring).

    :meth:`acquire` returns the time the slot was taken (``clock()``); pass it to
    :meth:`release` with ``sample=True`` when the request finished normally, and
    the slot's hold time feeds the service-time EWMA the 429's wait is built from.
    """

    def __init__(
        self,
        max_concurrency: int = 1,
        max_queue: int = 8,
        *,
        clock: Callable[[], float] = time.monotonic,
        service: ServiceTime | None = None,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_queue < 0:
            raise ValueError("max_queue cannot be negative")
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.clock = clock
        self.service = service or ServiceTime()
        self.state = AdmissionState.ONLINE
        self._in_flight = 0
        self._starts: list[float] = []  # when each running slot was taken
        self._waiters: list[_InLine] = []  # in the order they came
        self._keyed_at: float | None = None  # when the last keyed request came (clock())
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.fut.done())

    def keyed_age_s(self) -> float | None:
        """Seconds since the last keyed request while places are kept for keyed ones
        (``core/priority.keyed_age_s``: what the heartbeat says), else ``None``."""
        return keyed_age_s(self._keyed_at, self.clock())

    @property
    def idle(self) -> bool:
        return self._in_flight == 0 and self.queued == 0

    def pause(self) -> None:
        self.state = AdmissionState.PAUSED

    def resume(self) -> None:
        self.state = AdmissionState.ONLINE

    def drain(self) -> None:
        self.state = AdmissionState.DRAINING

    def wait_estimate_s(self) -> float:
        """Seconds until everything running or queued now has drained (the 429's wait)."""
        now = self.clock()
        elapsed = [now - t for t in self._starts]
        service_s = self.service.estimate(elapsed)
        return queue_wait_s(
            self._in_flight + self.queued,
            service_s,
            self.max_concurrency,
            running_elapsed_s=elapsed,
        )

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

    async def acquire(self, *, keyed: bool = False) -> float:
        """Take a slot, waiting in line if needed (``keyed``: before the ordinary waiters,
        module docstring); raise when the line is full.

        Returns when the slot was taken (for :meth:`release`).
        """
        self._check_open()
        now = self.clock()
        if keyed:
            self._keyed_at = now
        if self._in_flight < self.max_concurrency and not self.queued:
            return self._take()
        queued = self.queued
        keep = keeps_places(self._keyed_at, now)
        ordinary = sum(1 for w in self._waiters if not w.keyed and not w.fut.done())
        if not admits(queued, ordinary, self.max_queue, keyed=keyed, keep=keep):
            wait = self.wait_estimate_s()
            kept = kept_places(self.max_queue) if keep and queued < self.max_queue else 0
            why = f"; {kept} waiting places are kept for keyed requests" if kept else ""
            raise Overloaded(
                f"node busy: {self._in_flight} running and {queued} waiting "
                f"(max_queue={self.max_queue}{why}); estimated wait {wait:.2f} s",
                retry_after=retry_after_header(wait),
                wait_s=round(wait, 3),
            )
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        entry = _InLine(keyed, now, fut)
        self._waiters.append(entry)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(fut.result())  # the slot was handed over just as we gave up
            else:
                self._drop(entry)
            raise

    def _take(self) -> float:
        self._in_flight += 1
        self._idle.clear()
        started = self.clock()
        self._starts.append(started)
        return started

    def _drop(self, entry: _InLine) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(entry)

    def release(self, started: float | None = None, *, sample: bool = False) -> None:
        """Give a slot back: to the next waiter (:func:`~LLM_Mesh.core.priority.next_waiter`),
        or free it.

        ``started`` is what :meth:`acquire` returned (default: the oldest running
        slot); with ``sample`` the time held is a service-time sample.
        """
        if self._in_flight <= 0:
            raise RuntimeError("release() without a matching acquire()")
        now = self.clock()
        if started is None or started not in self._starts:
            started = self._starts[0] if self._starts else now
        with contextlib.suppress(ValueError):
            self._starts.remove(started)
        if sample:
            self.service.observe(max(0.0, now - started))
        waiters = self._waiters
        if waiters and any(w.fut.done() for w in waiters):  # cancelled meanwhile
            waiters[:] = [w for w in waiters if not w.fut.done()]
        if waiters:
            i = next_waiter(waiters, now)
            pass_over(waiters, i)
            fut = waiters.pop(i).fut
            self._starts.append(now)
            fut.set_result(now)  # the slot passes over; in_flight is unchanged
            return
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    @asynccontextmanager
    async def slot(self, *, keyed: bool = False) -> AsyncIterator[None]:
        started = await self.acquire(keyed=keyed)
        ok = False
        try:
            yield
            ok = True
        finally:
            self.release(started, sample=ok)

    async def wait_idle(self) -> None:
        """Return once nothing runs or waits."""
        while not self.idle:
            await self._idle.wait()
            if not self.idle:
                await asyncio.sleep(0)
