"""share35's "what remains" (1), found 2026-12-06 (share35b): what a node had shown it
serves (``NodeStats.shown``) never decayed. A phantom serves ``k`` requests at once
honestly, then turns slow and refuses what it is sent: the router then sends it nothing,
so it never fails again, and its ``k`` slots lifted the anonymous cap for good. At share
0.75, 4 honest slots and a phantom that once served 4 at once: a cap of 6, the flood
holds every honest slot and a keyed request goes to the phantom, which refuses it (429).

Now ``shown`` is a windowed maximum (``core/shown_window.py``): a node that has not held
that many at an answer for two windows (``SHOWN_WINDOW_S``) lends nothing once it is heard
from again (its heartbeat), while honest nodes that keep serving keep their count."""

from __future__ import annotations

import asyncio
from pathlib import Path

from LLM_Mesh.core.shown_window import SHOWN_WINDOW_S
from tests.registry.helpers import Harness, rank, running, served_at_once
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_share import HoldAnonymous, _flood, _last

HUGE = 2**31 - 1


async def _time_passes(h: Harness, seconds: float, busy: tuple[str, ...]) -> None:
    """``seconds`` on the registry's clock, every node heartbeating each 10 s; the ``busy``
    ones serve all their slots (2) at once in each step (honest traffic: they keep being
    sent requests)."""
    router = h.runtime.routing.router
    for _ in range(int(seconds // 10)):
        h.clock.advance(10.0)
        for n in busy:
            served_at_once(router, n, MODEL, 2, h.clock())
        for n in ("a", "b", "z"):
            r = await h.client.post(f"/mesh/nodes/{n}/heartbeat", json={})
            assert r.status_code == 200, r.text


async def test_a_phantom_that_served_once_stops_lending_its_slots(tmp_path: Path) -> None:
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        z = await h.register("z", max_concurrency=HUGE, max_queue=0, behavior="429")
        router = h.runtime.routing.router
        served_at_once(router, "z", MODEL, 4, h.clock())  # honest once: 4 at once
        rank(router, ["a", "b", "z"], MODEL, h.clock())  # then slow: the router sends it nothing
        await _time_passes(h, 2 * SHOWN_WINDOW_S + 10, busy=("a", "b"))
        assert router.node("z").shown == 0  # before the fix: 4, for good
        assert (router.node("a").shown, router.node("b").shown) == (2, 2)  # busy: kept
        assert h.runtime.routing.slots(MODEL) == 4
        key, _ = await new_key(h, name="payer")
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 3 and len(refused) > 40, 10)
            assert nodes.most_held == 3  # before the fix: 4, every honest slot
            r = await asyncio.wait_for(
                h.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before: 429, z's, the honest slots all held
            assert r.headers["x-mesh-node"] in ("a", "b")
            assert not z.calls
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})


async def test_honest_busy_nodes_keep_their_share(tmp_path: Path) -> None:
    """The other side: nodes sent requests all along keep what they show, however long;
    so the flood still gets its share of their slots (3 of 4), no fewer."""
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        for n in ("a", "b", "z"):
            await h.register(n, max_concurrency=2, max_queue=0)
        router = h.runtime.routing.router
        for n in ("a", "b", "z"):
            served_at_once(router, n, MODEL, 2, h.clock())
        await _time_passes(h, 5 * SHOWN_WINDOW_S, busy=("a", "b", "z"))
        assert [router.node(n).shown for n in ("a", "b", "z")] == [2, 2, 2]
        assert h.runtime.routing.slots(MODEL) == 6
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= 4 and len(refused) > 40, 10)
            assert nodes.most_held == 4  # floor(0.75 x 6): its share, as before the windows
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})
