"""A node's declared slots that it never takes dilute the anonymous share's reserve
(attack33, found 2026-12-06): the share (``core/anonymous_share.py``) counts the
``max_concurrency`` of a model's routable nodes, so one node that registers 2^31 - 1
slots (or 2) and then reports itself full in every heartbeat, or reports itself empty and
refuses (429) whatever it is sent, raised the anonymous cap past every honest slot: an
anonymous flood held all of them and keyed requests got 429. A registration and its
heartbeats are all it costs its operator. docs/security.md, "Users and API keys"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.registry.helpers import FakeNodes, running
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_share import HoldAnonymous, _flood, _last

HUGE = 2**31 - 1


@pytest.mark.parametrize("slots", [HUGE, 2])
async def test_a_node_full_by_its_own_word_does_not_lend_its_slots_to_anonymous_requests(
    tmp_path: Path, slots: int
) -> None:
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        await h.register("z", max_concurrency=slots, max_queue=0)  # the phantom
        r = await h.client.post("/mesh/nodes/z/heartbeat", json={"in_flight": slots, "queued": 0})
        assert r.status_code == 200, r.text
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before the fix: 429 saturated
            assert nodes.most_held == 3  # before: 4, every honest slot
            assert not nodes.nodes["z:8801"].calls  # full: nothing routed to it
            assert _last(h).running.counts.get(MODEL, 0) == 3
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})


class HoldHonestAnonymous(HoldAnonymous):
    """As :class:`HoldAnonymous`, but node ``z`` answers at once (its ``behavior``)."""

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        if request.url.host == "z":
            return FakeNodes.handler(self, request)
        return await super().handler(request)


@pytest.mark.parametrize("slots", [HUGE, 2])
async def test_a_node_refusing_what_it_is_sent_lends_no_slot_of_the_reserve(
    tmp_path: Path, slots: int
) -> None:
    nodes = HoldHonestAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        z = await h.register("z", max_concurrency=slots, max_queue=0, behavior="429")
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            for _ in range(5):  # it says it is empty again, and refuses the next ones too
                r = await h.client.post("/mesh/nodes/z/heartbeat", json={})
                assert r.status_code == 200, r.text
                seen = len(z.calls)
                await _until(lambda seen=seen: len(z.calls) > seen, 10)
            assert nodes.most_held == 3  # before the fix: 4, every honest slot
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before: z's 429, the honest slots all held
            assert r.headers["x-mesh-node"] in ("a", "b")
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})
