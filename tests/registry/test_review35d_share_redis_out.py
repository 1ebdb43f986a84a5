"""The anonymous share with a Redis URL while Redis is out (review35d, 2026-12-06).

Since review35c a replica with a Redis URL counts a model's declared slots, as every
replica's requests are held to one cap in Redis. While Redis is out
(``SharedInFlight.out``) this replica's own count decides, as without Redis, so share35's
phantom (a node open by its word, declaring 2^31 slots, that the router sends nothing)
lent the share its declared slots again: the flood held every honest slot and a keyed
request found none. Found 2026-12-06 (review35d); closed the same day: the share counts
the slots shown here while Redis is out (``AnonymousLast.slots``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.registry.helpers import rank, running, served_at_once
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_share import HoldAnonymous, _flood, _last

HUGE = 2**31 - 1
OUT = "redis://127.0.0.1:1/9"  # configured, never answers: out


async def test_a_phantom_lends_no_slot_of_the_reserve_while_redis_is_out(
    tmp_path: Path,
) -> None:
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600, redis_url=OUT) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        z = await h.register("z", max_concurrency=HUGE, max_queue=0, behavior="429")
        router = h.runtime.routing.router
        rank(router, ["a", "b", "z"], MODEL, h.clock())  # z answered one, very slowly
        for n in ("a", "b"):
            served_at_once(router, n, MODEL, 2, h.clock())
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            # before the fix: never; the flood held 40 (every slot it was sent), none refused
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            assert _last(h).shared is not None  # a Redis URL, out: this replica's count
            assert nodes.most_held == 3
            r = await h.client.post("/mesh/nodes/z/heartbeat", json={})  # open again
            assert r.status_code == 200, r.text
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before: 429, the honest slots all held
            assert r.headers["x-mesh-node"] in ("a", "b")
            assert not z.calls
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})
