"""Redis given time to answer, for the tests whose counts across replicas hold only while it
answers (docs/testing.md, "flaky"): what a flood or concurrent requests through replicas
sharing Redis may hold is asserted with Redis answering, and an outage fails such a test by
name instead of as a wrong count. Not for the tests whose subject is Redis out or slow:
those keep the product's 0.5 s (``RedisLimiter.from_url``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from LLM_Mesh.registry.redis_inflight import SharedInFlight
from LLM_Mesh.registry.redis_limits import RedisLimiter
from tests.waiting import scaled

__all__ = ["answered", "patient_redis"]

T = TypeVar("T")

#: how long the clients made after :func:`patient_redis` wait to connect and for an answer
PATIENT_S = 10.0


def patient_redis(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The Redis clients made after this (the replicas' own, ``RedisLimiter.from_url``) wait
    ``PATIENT_S`` (scaled) to connect and for each answer, not 0.5 s; the outages any
    replica marks (``SharedInFlight.down``, ``RedisLimiter.down``), listed: a test asserts
    the list empty before the count that holds only with Redis answering.

    Found 2026-12-06 (share37, flaky37): a Redis call answered after 0.5 s marks Redis out,
    and for ``retry_s`` each replica limits and counts on its own (documented: fails open,
    logged; ``test_redis_share.py::test_redis_out_each_replica_counts_the_share_on_its_own``),
    so a flood through two replicas held 7 (8 reported) of the cap 6: 1 run in 32 at load
    ~12 on 2 cores, the flooding clients and both replicas in one event loop (every
    over-cap run had an outage; "Timeout connecting to server" in one). The other tests of
    counts shared by replicas have the same exposure (redisflood37)."""
    import redis.asyncio as redis_asyncio  # optional: the tests using this need Redis

    real = redis_asyncio.from_url

    def patient(url: str, **kw: Any) -> Any:
        wait_s = scaled(PATIENT_S)  # connecting too (flaky37)
        return real(url, **{**kw, "socket_timeout": wait_s, "socket_connect_timeout": wait_s})

    monkeypatch.setattr(redis_asyncio, "from_url", patient)
    outages: list[str] = []
    counts_down, limits_down = SharedInFlight.down, RedisLimiter.down

    def counts_noted(self: SharedInFlight, exc: BaseException) -> None:
        outages.append(f"counts {self.prefix}: {exc!r}")
        counts_down(self, exc)

    def limits_noted(self: RedisLimiter, exc: BaseException) -> None:
        outages.append(f"rate limits: {exc!r}")
        limits_down(self, exc)

    monkeypatch.setattr(SharedInFlight, "down", counts_noted)
    monkeypatch.setattr(RedisLimiter, "down", limits_noted)
    return outages


async def answered(request: Awaitable[T], outages: list[str], timeout_s: float = 10.0) -> T:
    """``request``'s answer within ``timeout_s``; else a failure naming the outages marked
    (a request a replica admitted on its own count is held by the test's node: no answer)."""
    try:
        return await asyncio.wait_for(request, timeout_s)
    except TimeoutError:
        pytest.fail(f"no answer in {timeout_s} s (admitted, held?); Redis outages: {outages}")
