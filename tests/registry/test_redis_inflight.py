"""An anonymous address's requests in flight counted by every replica together in Redis
(``redis_inflight.py``; found 2026-12-05: each replica counted its own, so N replicas let
one address hold 4 N). docs/security.md, "Users and API keys".

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.core.anonymous_inflight import InFlight
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from tests.registry.redis_keys import swept
from tests.registry.redis_patience import answered, patient_redis
from tests.registry.redis_replicas import replicas_sharing_redis
from tests.registry.test_access import CHAT, _until, chat
from tests.registry.test_anonymous_in_flight import Gated, _from
from tests.registry.test_redis_admit import _ended
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)

ADDRESS = "2001:db8:5:6::1"


async def test_replicas_with_a_redis_url_give_an_address_one_in_flight_bound(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outages = patient_redis(monkeypatch)  # Redis out fails open: not what this tests
    nodes = Gated()
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(
            stack, tmp_path, redis_url, nodes, anonymous_in_flight=2
        )
        await a.register("n1", max_concurrency=32)
        await b.app.state.node_sync.poll()
        ca = await stack.enter_async_context(_from(a, ADDRESS))
        cb = await stack.enter_async_context(_from(b, ADDRESS))
        held = [asyncio.create_task(ca.post(CHAT, json=chat(stream=True))) for _ in range(2)]
        try:
            await _until(lambda: nodes.asked == 2)
            assert not outages, outages  # (else a replica's own count)
            r = await answered(cb.post(CHAT, json=chat()), outages)  # the other replica
            assert not outages, outages  # (else b's own count: 0 of 2, admitted)
            assert r.status_code == 429, r.text  # before: admitted there, held by the node
            assert "in flight" in r.json()["error"]["message"]
            assert nodes.asked == 2
        finally:
            nodes.gate.set()
        for r in await asyncio.gather(*held):
            assert r.status_code == 200
        # their places came back: given back here and their removals answered by Redis (sent
        # in the background; a's given back, b's take could reach Redis first and be refused:
        # found 2026-12-06, flaky38, with the removals 0.2 s late)
        await _ended(a, b)
        r = await asyncio.wait_for(cb.post(CHAT, json=chat()), 10)
        assert r.status_code == 200, r.text


def _shared(url: str, cap: int, **kw: Any) -> SharedInFlight:
    client = redis_asyncio.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    return SharedInFlight(client, InFlight(cap), prefix=f"h28:keyed28:{uuid.uuid4().hex}:", **kw)


async def _close(*shared: SharedInFlight) -> None:
    for s in shared:
        await s.aclose()
        await s.client.aclose()


async def test_a_dead_replicas_places_end_with_their_lease_a_live_ones_are_renewed(
    redis_url: str,  # noqa: F811
) -> None:
    live = _shared(redis_url, 1, lease_s=2.0)
    dead = _shared(redis_url, 1, lease_s=2.0)
    dead.prefix = live.prefix
    dead.names = live.names
    try:
        assert await dead.take("ip:a") is not None
        dead.held.clear()  # it stops renewing: as if it died
        assert await live.take("ip:a") is None  # at the cap
        give = await live.take("ip:b")  # a long request on the live replica
        assert give is not None
        # past the lease (2 s): the dead replica's place is gone (renewals every 0.67 s
        # leave a loaded box 1.3 s of slack: 0.6 s leases flaked at load 6)
        await asyncio.sleep(2.6)
        assert await live.take("ip:a") is not None
        assert await dead.take("ip:b") is None  # renewed: still held past its first lease
        give()
        await _until(lambda: not live._tasks)
        assert await dead.take("ip:b") is not None  # given back
    finally:
        await _close(live, dead)
        await swept(redis_url, live.prefix)


async def test_redis_out_falls_back_to_the_replicas_own_count() -> None:
    out = _shared("redis://127.0.0.1:1/0", 2, retry_s=30)  # nothing listens there
    try:
        gives = [await out.take("ip:a") for _ in range(3)]
        assert [g is not None for g in gives] == [True, True, False]  # the local bound
        assert out.local.counts == {"ip:a": 2} and not out.held
        for g in gives[:2]:
            assert g is not None
            g()
        assert out.local.counts == {}
    finally:
        await _close(out)


async def test_a_take_cancelled_while_redis_runs_it_leaves_no_place(
    redis_url: str,  # noqa: F811
) -> None:
    shared = _shared(redis_url, 1)
    script = shared._take
    ran = asyncio.Event()

    async def slow_answer(**kw: Any) -> Any:  # Redis ran it; its answer has not come yet
        await script(**kw)
        ran.set()
        await asyncio.Event().wait()

    shared._take = slow_answer
    try:
        task = asyncio.create_task(shared.take("ip:a"))
        await asyncio.wait_for(ran.wait(), 5)
        task.cancel()  # the client left
        with pytest.raises(asyncio.CancelledError):
            await task
        await _until(lambda: not shared._tasks)
        shared._take = script
        give = await shared.take("ip:a")  # not held by the cancelled one
        assert give is not None
        give()
    finally:
        await _close(shared)
        await swept(redis_url, shared.prefix)


async def test_a_renewal_that_lands_after_the_give_back_holds_no_place(
    redis_url: str,  # noqa: F811
) -> None:
    """Found 2026-12-05: the renewal (sent for every held request) was a plain ``ZADD``: one
    that Redis ran after the request's removal (the removal goes on another connection, in
    the background; a renewal retried after ``NOSCRIPT`` comes later still) put the ended
    request back, so the address lost a place for a whole lease (60 s) with nothing in
    flight; at its cap of 4 (the default) a client whose requests end quickly was refused."""
    shared = _shared(redis_url, 1, lease_s=30.0)
    try:
        give = await shared.take("ip:a")
        assert give is not None
        ((member, key),) = shared.held.items()
        give()
        await _until(lambda: not shared._tasks)  # removed
        # the renewal the loop had sent before the give, run by Redis after it
        await shared._renew(keys=[key], args=[shared.lease_s, member])
        again = await shared.take("ip:a")
        assert again is not None  # before: None, at the cap with nothing in flight
        again()
    finally:
        await _close(shared)
        await swept(redis_url, shared.prefix)
