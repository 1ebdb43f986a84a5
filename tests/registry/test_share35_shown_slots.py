"""Two gaps of the anonymous share's reserve (attack33's and anon34's "what remains",
docs/security.md, "Users and API keys"), found 2026-12-06 (share35):

A. A node that looks open (its heartbeats say it has room, it refused nothing since) had
   its declared slots counted whole: at share 0.75, open phantom slots P >= ceil(H / 3)
   beside H honest ones lift the anonymous cap to every honest slot; the router sends the
   flood to the honest nodes (the phantom slower than they, as measured), it holds all of
   them, and a keyed request goes to the phantom, which refuses it: 429. The share now
   counts of each node the slots it has shown it serves (``core/route_pools.shown_slots``).
B. A node failing fast with a 500 was no refusal, so ``admit.over_share`` was not asked
   and an anonymous request past the share failed over into a kept slot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from LLM_Mesh.core.balancer import Router
from tests.registry.helpers import rank, running, served_at_once
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_share import HoldAnonymous, _flood, _last
from tests.registry.test_attack33_phantom_slots import HoldHonestAnonymous

HUGE = 2**31 - 1


def _served_at_once(router: Router, node: str, n: int, now: float) -> None:
    served_at_once(router, node, MODEL, n, now)


@pytest.mark.parametrize("slots", [HUGE, 2])
async def test_an_open_node_the_router_sends_nothing_lends_no_slot_of_the_reserve(
    tmp_path: Path, slots: int
) -> None:
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        # the phantom: open by its word, it refuses whatever it is sent
        z = await h.register("z", max_concurrency=slots, max_queue=0, behavior="429")
        router = h.runtime.routing.router
        rank(router, ["a", "b", "z"], MODEL, h.clock())  # z answered one, very slowly
        for n in ("a", "b"):
            _served_at_once(router, n, 2, h.clock())  # the honest ones, all their slots
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            assert nodes.most_held == 3  # before the fix: 4, every honest slot
            r = await h.client.post("/mesh/nodes/z/heartbeat", json={})  # open again
            assert r.status_code == 200, r.text
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before: 429, z's, the honest slots all held
            assert r.headers["x-mesh-node"] in ("a", "b")
            assert not z.calls  # the share never reached it
            assert _last(h).running.counts.get(MODEL, 0) == 3
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})


async def test_a_fresh_node_lends_the_share_as_it_takes_what_it_is_sent(tmp_path: Path) -> None:
    """The other side of A: a node counts its slots as it serves them (``2n + 1`` while it
    holds ``n`` of ours), so an honest node that has answered one request at a time still
    lends anonymous requests its whole share once they come together."""
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        await h.register("a", max_concurrency=4, max_queue=0)
        nodes.gate.set()
        r = await h.client.post(CHAT, json=chat("anon once"))  # one at a time: shown 1
        assert r.status_code == 200, r.text
        assert h.runtime.routing.router.node("a").shown == 1
        assert h.runtime.routing.slots(MODEL) == 2  # what it has shown, at least 2
        nodes.gate.clear()
        flood = asyncio.create_task(_flood(h, 20, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 20, 10)
            assert nodes.most_held == 3  # the share of its 4 slots, as before
            assert h.runtime.routing.slots(MODEL) == 4
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})


async def test_an_anonymous_request_past_the_share_stops_at_a_fast_500(tmp_path: Path) -> None:
    """B: with the flood holding its share (3 of 4 honest slots), a node that has served 2
    at once, fast as measured, raises the cap to 4 of 6, and the next anonymous request
    goes to it, which answers 500 at once. Its slots no longer shown, that request is past
    the share as counted then: it stops there (502) instead of failing over into the
    honest slot kept for keyed requests."""
    nodes = HoldHonestAnonymous()  # z answers at once: its 500
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        z = await h.register("z", max_concurrency=2, max_queue=0, behavior="500")
        router = h.runtime.routing.router
        rank(router, ["a", "b", "z"], MODEL, h.clock())  # z slow: sent nothing yet
        router.node("z").shown = 0  # ... and counted for nothing (rank's one answer undone)
        for n in ("a", "b"):
            _served_at_once(router, n, 2, h.clock())
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            assert not z.calls
            _served_at_once(router, "z", 2, h.clock())  # fast now, 2 at once: then it fails
            rank(router, ["z", "b"], MODEL, h.clock())  # b, the last honest slot: slower
            await _until(lambda: len(z.calls) >= 1, 10)
            seen = len(refused)
            await _until(lambda: len(refused) > seen + 40, 10)
            assert nodes.most_held == 3  # before the fix: 4, z's 500 failed over into the last
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before: 429 saturated, every honest slot held
            assert r.headers["x-mesh-node"] in ("a", "b")
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})
