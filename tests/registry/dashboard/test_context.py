"""``Dashboard.cached``: a public page's store aggregate is fetched once per TTL, however
many open pages poll it, and fetched again once the TTL has passed."""

from __future__ import annotations

import asyncio
from typing import Any

from LLM_Mesh.registry.dashboard.context import Dashboard
from LLM_Mesh.registry.dashboard.feed import TrafficFeed


def _dashboard(now: list[float]) -> Dashboard:
    feed = TrafficFeed(clock=lambda: now[0])
    return Dashboard(runtime=None, feed=feed, clock=lambda: now[0], cache_ttl_s=30.0)  # type: ignore[arg-type]


def test_an_aggregate_is_fetched_once_per_ttl_and_again_after() -> None:
    now = [100.0]
    calls: list[int] = []

    async def fetch() -> Any:
        calls.append(1)
        return {"n": len(calls)}

    d = _dashboard(now)

    async def run() -> list[Any]:
        got = [await d.cached("k", fetch) for _ in range(5)]  # five polls at once: one query
        now[0] += 29.9
        got.append(await d.cached("k", fetch))  # still within the TTL
        now[0] += 0.2
        got.append(await d.cached("k", fetch))  # past it: fetched again
        got.append(await d.cached("other", fetch))  # another key is its own entry
        return got

    got = asyncio.run(run())
    assert [g["n"] for g in got] == [1, 1, 1, 1, 1, 1, 2, 3]
    assert len(calls) == 3
