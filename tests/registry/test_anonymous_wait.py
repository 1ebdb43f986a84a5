"""Anonymous requests that opt into a wait on a saturated model: at most
``MAX_ANONYMOUS_WAITERS`` wait in a process at once, one more is refused at once (found
2026-12-05: any number waited, each looking again every 50 ms, so a minute of anonymous
requests from a few addresses stalled the gateway's loop), shared between addresses by
push-out (found 2026-12-05: 64 IPv6 /64s filled them all). docs/security.md, "Users and
API keys"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from LLM_Mesh.core.anonymous_inflight import DEFAULT_ANONYMOUS_IN_FLIGHT
from LLM_Mesh.core.anonymous_wait import MAX_ANONYMOUS_WAITERS
from LLM_Mesh.core.balancer import Outcome
from tests.registry.helpers import Harness, running
from tests.registry.test_access import CHAT, MODEL, _until, chat
from tests.registry.test_anonymous_share import _last

EXTRA = 3


async def test_anonymous_waiters_past_the_cap_are_refused_at_once(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)  # the model saturated
        waiting = [
            asyncio.create_task(h.client.post(CHAT, json=chat(mesh_wait_s=60)))
            for _ in range(MAX_ANONYMOUS_WAITERS)
        ]
        try:
            await _until(lambda: routing.demand.waiting.get(MODEL, 0) == MAX_ANONYMOUS_WAITERS,
                         timeout_s=60.0)  # fmt: skip
            for _ in range(EXTRA):  # before: each waited too (up to its 60 s)
                r = await asyncio.wait_for(h.client.post(CHAT, json=chat(mesh_wait_s=60)), 10)
                assert r.status_code == 429, r.text
                err = r.json()["error"]
                assert err["code"] == "overloaded" and err["anonymous"] is True
                assert "wait already" in err["message"]
            assert routing.demand.waiting.get(MODEL, 0) == MAX_ANONYMOUS_WAITERS
            routing.finish(busy, Outcome.SUCCESS)  # a slot frees: a waiter is served
            first = await asyncio.wait_for(
                next(asyncio.as_completed(waiting)), 10
            )  # fmt: skip
            assert first.status_code == 200
        finally:
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)


def _from(h: Harness, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://mesh", timeout=90)


async def test_sixty_four_addresses_flooding_the_wait_leave_a_place_for_another(
    tmp_path: Path,
) -> None:
    """Found 2026-12-05: 64 IPv6 /64s (of one /48), each at its in-flight bound (4), filled
    the 256 places and every other anonymous client's wait was refused at once. Now a 65th
    address waits, and the newest waiter of one flooding address is answered at once as
    without a wait (429 ``overloaded``, Retry-After, x-should-retry)."""
    flooders = MAX_ANONYMOUS_WAITERS // DEFAULT_ANONYMOUS_IN_FLIGHT
    async with running(tmp_path, anonymous_rpm=600) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)  # the model saturated
        last = _last(h)
        clients = [_from(h, f"2001:db8:7:{i:x}::1") for i in range(flooders)]
        other = _from(h, "198.51.100.7")
        waiting = [
            asyncio.create_task(c.post(CHAT, json=chat(mesh_wait_s=60)))
            for c in clients
            for _ in range(DEFAULT_ANONYMOUS_IN_FLIGHT)
        ]
        theirs: asyncio.Task[httpx.Response] | None = None
        try:
            await _until(lambda: last.waiting_all == MAX_ANONYMOUS_WAITERS, timeout_s=60.0)
            assert not any(t.done() for t in waiting)
            theirs = asyncio.create_task(other.post(CHAT, json=chat(mesh_wait_s=60)))
            await _until(lambda: theirs.done() or any(t.done() for t in waiting), 10)
            # before: refused at once ("... as may wait here wait already")
            assert not theirs.done(), theirs.result().text
            pushed = [t.result() for t in waiting if t.done()]
            assert len(pushed) == 1
            r = pushed[0]
            assert r.status_code == 429, r.text
            err = r.json()["error"]
            assert err["code"] == "overloaded" and err["anonymous"] is True
            assert "went to a request of another address" in err["message"]
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["x-should-retry"] == "true"
            assert len(last.places.by_holder) == flooders + 1
            assert last.places.by_holder["198.51.100.7"]  # it holds a place
            assert last.waiting_all == MAX_ANONYMOUS_WAITERS
            held = sorted(len(p) for p in last.places.by_holder.values())
            assert held == [1, 3] + [4] * (flooders - 1)
            routing.finish(busy, Outcome.SUCCESS)  # a slot frees: a waiter is served
            served = await asyncio.wait_for(
                next(asyncio.as_completed([t for t in waiting if not t.done()] + [theirs])), 10
            )  # fmt: skip
            assert served.status_code == 200
        finally:
            rest = waiting + ([theirs] if theirs is not None else [])
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            for c in [*clients, other]:
                await c.aclose()
        await _until(lambda: last.waiting_all == 0 and not last.places.by_holder)
