"""The anonymous share with replicas (review35c, 2026-12-06): since share35 a replica counts
of each node the slots it has shown it serves (``core/route_pools.shown_slots``), learned
from its own answers and its own requests in flight (``2n + 1``), while with Redis the
count held to that cap is every replica's (``redis_inflight.SharedInFlight``). A replica
that served a node one request at a time (a replica restarted, or one the balancer sends
less) caps the model's anonymous requests at its own small view and refuses them all
while the other replicas hold more, though the node has free slots of the share; it
admits none, so it learns no more (``2n + 1`` grows with its own requests only).

Found 2026-12-06 (review35c); closed the same day: with Redis the share counts the declared
slots (``AnonymousLast.slots``), docs/security.md, "Users and API keys"; since redisshare36
the slots the nodes have shown at every replica (``registry/redis_shown.py``), so the
replicas share their views first here (their loops do every 2 s).

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.registry.helpers import served_at_once
from tests.registry.redis_patience import patient_redis
from tests.registry.redis_replicas import replicas_sharing_redis
from tests.registry.test_access import CHAT, MODEL, _until, chat
from tests.registry.test_anonymous_in_flight import Gated, _from
from tests.registry.test_redis_admit import _ended, _views_shared
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)


async def test_a_replica_that_served_a_node_one_at_a_time_still_lends_its_share(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One node of 8 slots (a share of 6) behind two replicas: 4 anonymous streams held
    through ``a``, then one through ``b``, which had answered one request at a time: the
    fifth is within the share (before the fix: 429 from ``b``, its cap 1 of its own 2
    slots counted, against every replica's 4)."""
    outages = patient_redis(monkeypatch)  # Redis out: b's own view, not what this tests
    nodes = Gated()
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(stack, tmp_path, redis_url, nodes, prefix="review35c")
        await a.register("n1", max_concurrency=8, max_queue=0)
        await b.app.state.node_sync.poll()
        served_at_once(a.runtime.routing.router, "n1", MODEL, 8, a.clock())  # all 8 at once
        served_at_once(b.runtime.routing.router, "n1", MODEL, 1, b.clock())  # one at a time
        await _views_shared(a, b)  # since redisshare36: b counts what n1 showed at a too
        clients = [
            await stack.enter_async_context(_from(h, f"2001:db8:35c:{i + 1:x}::1"))
            for i, h in enumerate((a, a, a, a, b))
        ]
        held = [asyncio.create_task(c.post(CHAT, json=chat(stream=True))) for c in clients[:4]]
        try:
            await _until(lambda: nodes.asked == 4 or any(t.done() for t in held))
            assert nodes.asked == 4  # within the share: every replica's 4 of 6
            fifth = asyncio.create_task(clients[4].post(CHAT, json=chat(stream=True)))
            await _until(lambda: nodes.asked == 5 or fifth.done())
        finally:
            nodes.gate.set()
        codes = [(await t).status_code for t in (*held, fifth)]
        assert not outages, outages  # (else b counts its own view: the fifth refused)
        assert codes == [200] * 5, codes  # before: the fifth 429 from b
        await _ended(a, b)
