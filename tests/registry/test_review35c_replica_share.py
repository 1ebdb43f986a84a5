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
replicas share their views first here (their loops do every 2 s; stopped here, so that
the count is the one those views give). Since 2026-12-06 (strength38) it holds the far
side too: three replicas, and a request past the share refused at ``b`` by Redis' take,
so a looser take (Redis' cap + 1), the replicas' shown slots summed, or the others' view
ignored fails it (before: two replicas, 5 of 8 slots held and none asked past the share).

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
from tests.registry.test_anonymous_share import _last
from tests.registry.test_redis_admit import _ended, _views_shared
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)


async def test_a_replica_that_served_a_node_one_at_a_time_still_lends_its_share(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One node of 16 slots behind three replicas: ``a`` saw it serve 9 at once, ``c`` 4,
    ``b`` one at a time. 4 anonymous streams held through ``a``, then through ``b``: the
    fifth and sixth are within the share (before the fix: 429 from ``b``, its cap 1 of its
    own 2 slots counted, against every replica's 4), the seventh is not: ``b`` counts what
    one replica that had sent n1 every request would (the most any saw, 9: a share of 6),
    not the replicas' sum (9 + 4, or 1 + 9: trust37), and Redis' take holds every
    replica's 6 to that cap (strength38: with 5 slots held of 8 and no seventh asked, a
    looser take, a sum or Redis' cap + 1 passed here)."""
    outages = patient_redis(monkeypatch)  # Redis out: b's own view, not what this tests
    nodes = Gated()
    async with AsyncExitStack() as stack:
        a, b, c = await replicas_sharing_redis(
            stack, tmp_path, redis_url, nodes, names=("a", "b", "c"), prefix="review35c"
        )
        for h in (a, b, c):  # the views shared below only: no tick counts held ones between
            assert h.runtime.shared_shown is not None
            await h.runtime.shared_shown.aclose()
        await a.register("n1", max_concurrency=16, max_queue=0)
        for h in (b, c):
            await h.app.state.node_sync.poll()
        for h, at_once in ((a, 9), (c, 4), (b, 1)):  # b: one at a time
            served_at_once(h.runtime.routing.router, "n1", MODEL, at_once, h.clock())
        await _views_shared(a, b, c)  # since redisshare36: b counts what n1 showed elsewhere
        assert b.runtime.routing.slots(MODEL) == 9  # the most (trust37), not 13 nor 10 nor 2
        clients = [
            await stack.enter_async_context(_from(h, f"2001:db8:35c:{i + 1:x}::1"))
            for i, h in enumerate((a, a, a, a, b, b, b))
        ]
        held = [asyncio.create_task(cl.post(CHAT, json=chat(stream=True))) for cl in clients[:4]]
        try:
            await _until(lambda: nodes.asked == 4 or any(t.done() for t in held))
            assert nodes.asked == 4  # within the share: every replica's 4 of 6
            for i in (4, 5):
                held.append(asyncio.create_task(clients[i].post(CHAT, json=chat(stream=True))))
                await _until(lambda: nodes.asked == len(held) or held[-1].done())
            assert nodes.asked == 6, [t.result().text for t in held if t.done()]
            assert _last(b).running.counts.get(MODEL, 0) == 2  # b's own 2: Redis' 6 decides
            seventh = asyncio.create_task(clients[6].post(CHAT, json=chat(stream=True)))
            await _until(lambda: nodes.asked > 6 or seventh.done())
            assert seventh.done() and nodes.asked == 6, "the seventh sent on, over the share"
            r = seventh.result()
            assert r.status_code == 429, r.text
            assert "hold their share of the slots" in r.json()["error"]["message"]
        finally:
            nodes.gate.set()
        codes = [(await t).status_code for t in held]
        assert not outages, outages  # (else b counts its own view: the fifth refused)
        assert codes == [200] * 6, codes  # before: the fifth 429 from b
        await _ended(a, b, c)
