"""A wait on one gateway, watched for a hung process (the I/O of :mod:`LLM_Mesh.core.hang_watch`).

:func:`watched` awaits a step (a call's answer, a stream's head) on a gateway and, while
it is not in, probes that gateway's ``GET /healthz`` (:func:`probe`: a fresh connection
while the step holds its own, at most ``probe_s``) as :class:`~LLM_Mesh.core.hang_watch.HangWatch`
says; once it takes the gateway for hung the step is cancelled (its connection closed) and
:class:`Hung` raised. :class:`~LLM_Mesh.client.MeshClient` watches only a wait it may move
to another gateway (several URLs, a read, the health check or a call carrying its request id, and another URL
left to try): with one URL, or none left, it waits as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from LLM_Mesh.bounded_http import AnswerRefused, call
from LLM_Mesh.core.hang_watch import HangPolicy, HangWatch, Probe
from LLM_Mesh.errors import MeshError

__all__ = ["PROBE_ANSWER_BYTES", "Hung", "probe", "watched"]

T = TypeVar("T")
PROBE_ANSWER_BYTES = 64 << 10  # what a probe reads of /healthz's answer ({"status": "ok"})


class Hung(Exception):
    """The gateway at ``base`` answered neither the step nor its probes: taken for hung."""

    def __init__(self, base: str, waited_s: float, policy: HangPolicy) -> None:
        super().__init__(
            f"the registry at {base} sent no answer in {waited_s:.1f} s and did not answer "
            f"{policy.misses} GET /healthz in a row either (each {policy.probe_s:g} s): "
            "taken for hung"
        )
        self.base = base


async def probe(http: httpx.AsyncClient, base: str, probe_s: float) -> Probe:
    """``GET base/healthz`` within ``probe_s``: any HTTP answer is :attr:`Probe.ANSWERED`.
    ``Connection: close``: each probe on a connection of its own, none kept for the next (a
    port several processes serve, ``registry serve --workers N``: a kept connection to a
    live worker answered every later probe, and a stopped worker was never left)."""
    try:
        await call(
            http, "GET", base + "/healthz", PROBE_ANSWER_BYTES, deadline_s=probe_s,
            follow_redirects=False, timeout=httpx.Timeout(probe_s),
            headers={"Connection": "close"},
        )  # fmt: skip
    except httpx.PoolTimeout:  # the client's own pool was full: nothing was sent
        return Probe.UNKNOWN
    except (httpx.TransportError, AnswerRefused):  # no answer in time, refused, cut
        return Probe.SILENT
    except (httpx.HTTPError, MeshError):  # something came back, if not a good answer
        return Probe.ANSWERED
    return Probe.ANSWERED


async def watched(
    step: Awaitable[T],
    base: str,
    policy: HangPolicy,
    ask: Callable[[], Awaitable[Probe]],
) -> T:
    """``await step``; while it is not done, ``ask()`` (a probe of ``base``) as ``policy``
    says; :class:`Hung` (``step`` cancelled) once the probes say the gateway is hung."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    watch = HangWatch(policy, started)
    task = asyncio.ensure_future(step)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=watch.probe_due(loop.time()))
            if done:
                return task.result()
            began = loop.time()
            asking = asyncio.ensure_future(ask())
            try:
                await asyncio.wait({task, asking}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await _ended(asking)
            if task.done():  # (it may have ended while the probe was let go)
                return task.result()
            if watch.probed(began, asking.result()):
                raise Hung(base, loop.time() - started, policy)
    finally:
        await _ended(task)


async def _ended(task: asyncio.Future[Any]) -> None:
    """``task`` cancelled if it still runs, and waited for (its outcome dropped; a cancel
    of this wait itself is raised)."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: not logged as never retrieved
