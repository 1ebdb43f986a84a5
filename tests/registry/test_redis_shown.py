"""What the nodes have shown they serve, shared by replicas through Redis
(``registry/redis_shown.py``, ``core/fleet_shown.py``; redisshare36, 2026-12-06).

share35's gap A with a Redis URL: since review35c a replica with Redis counted the declared
slots for the anonymous share (its own view of what the nodes showed capped the fleet's
count), so an open phantom (2^31 - 1 slots declared, answered one request very slowly,
refusing what it is sent) lifted the cap over every honest slot again: a flood through two
replicas held all 8 honest slots and a keyed request got the phantom's 429. Now each replica
publishes what each node showed it and counts the fleet's view per node, up to its slots:
the phantom counted the one request it answered at each replica (2, the sum of what each
replica saw: the cap 7 of 10) until trust37, 1 since (the most any replica saw: the cap 6
of 9).

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from LLM_Mesh.core.anonymous_inflight import InFlight
from LLM_Mesh.core.anonymous_share import anonymous_cap
from LLM_Mesh.core.fleet_shown import Elsewhere
from LLM_Mesh.core.scope_names import ScopeNames
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from LLM_Mesh.registry.redis_shown import SharedShown
from tests.registry.helpers import Harness, rank, served_at_once
from tests.registry.redis_keys import swept
from tests.registry.redis_patience import patient_redis
from tests.registry.redis_replicas import replicas_sharing_redis
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_in_flight import _from
from tests.registry.test_anonymous_share import HoldAnonymous, _last
from tests.registry.test_redis_admit import _ended, _views_shared
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)

HUGE = 2**31 - 1
HONEST = ("n1", "n2", "n3", "n4")


async def _flood(h: Harness, first: int, n: int, stop: asyncio.Event, refused: list[int]) -> None:
    """Anonymous streams from ``n`` /64s (from the ``first``), each sent again as soon as it
    is refused or ends, until ``stop`` (``test_anonymous_share._flood``, at one replica)."""

    async def one(i: int) -> None:
        async with _from(h, f"2001:db8:36:{i:x}::1") as c:
            while not stop.is_set():
                r = await c.post(CHAT, json=chat(f"anon {i}", stream=True))
                if r.status_code == 429:
                    refused.append(i)
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(one(i) for i in range(first, first + n)))


async def test_a_phantom_lends_no_slot_of_the_reserve_through_replicas_sharing_redis(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outages = patient_redis(monkeypatch)  # Redis out fails open: not what this tests
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(
            stack, tmp_path, redis_url, nodes, prefix="redisshare36"
        )
        for n in HONEST:
            await a.register(n, max_concurrency=2, max_queue=0)  # 8 honest slots
        z = await a.register("z", max_concurrency=HUGE, max_queue=0, behavior="429")
        await b.app.state.node_sync.poll()
        for h in (a, b):
            router = h.runtime.routing.router
            rank(router, [*HONEST, "z"], MODEL, h.clock())  # z answered one, very slowly
            for n in HONEST:
                served_at_once(router, n, MODEL, 2, h.clock())  # the honest ones, all their slots
        await _views_shared(a, b)
        key, _ = await new_key(a, name="payer")
        floods = [
            asyncio.create_task(_flood(h, 20 * i, 20, stop, refused)) for i, h in enumerate((a, b))
        ]
        try:
            # before the fix: never; the flood held every honest slot (declared ones counted)
            await _until(lambda: nodes.held >= 6 and len(refused) > 40, 15)
            # 6 of 9 counted: 8 honest, z's 1 shown at each replica counted once (trust37;
            # before: 7 of 10, the sum of z's; before redisshare36: 8, every one)
            assert not outages, outages  # (else each replica's own count: share37)
            assert nodes.most_held == 6
            r = await a.client.post("/mesh/nodes/z/heartbeat", json={})  # open again
            assert r.status_code == 200, r.text
            r = await asyncio.wait_for(
                a.client.post(CHAT, json=chat("keyed"), headers=bearer(key)), 20
            )
            assert r.status_code == 200, r.text  # before: 429, z's, the honest slots all held
            assert r.headers["x-mesh-node"] in HONEST
            assert not z.calls  # the share never reached it
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(asyncio.gather(*floods), 30)
        await _until(lambda: _last(a).running.counts == {} and _last(b).running.counts == {})
        await _ended(a, b)


async def test_a_phantom_answering_once_at_each_replica_counts_as_at_one(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    """redisshare36's "what remains" (1), closed 2026-12-06 (trust37): the fleet's count was
    the sum of what each replica saw, so a phantom (2^31 - 1 slots declared) that answered
    one request, one at a time, at each of R replicas counted R slots: at R = 3, 11 slots
    (8 honest + 3), a cap of 8 at share 0.75, every honest slot lent to anonymous requests.
    One replica that saw all three answers (one at a time) counts it 1: 9, a cap of 6."""
    nodes = HoldAnonymous()
    async with AsyncExitStack() as stack:
        hs = await replicas_sharing_redis(
            stack, tmp_path, redis_url, nodes, names=("a", "b", "c"), prefix="trust37"
        )
        a = hs[0]
        for n in HONEST:
            await a.register(n, max_concurrency=2, max_queue=0)  # 8 honest slots
        await a.register("z", max_concurrency=HUGE, max_queue=0, behavior="429")
        for h in hs[1:]:
            await h.app.state.node_sync.poll()
        for h in hs:
            router = h.runtime.routing.router
            rank(router, [*HONEST, "z"], MODEL, h.clock())  # z answered one, very slowly
        for n in HONEST:  # the honest ones served all their slots at once, at one replica
            served_at_once(a.runtime.routing.router, n, MODEL, 2, a.clock())
        await _views_shared(*hs)
        for h in hs:
            slots = h.runtime.routing.router.slots(MODEL)
            # before the fix: 11 at each (z: 1 + 1 + 1), a cap of 8, every honest slot
            assert slots == 9, slots
            assert anonymous_cap(slots, 0.75) == 6
        await _ended(*hs)


class Fleet:
    """``Router.fleet_shown`` as the publisher sees it: the last sums it was given, and
    ``own`` to publish."""

    def __init__(self, own: dict[str, int | str]) -> None:
        self.own = own
        self.given: list[Mapping[str, Elsewhere] | None] = []

    def __call__(self, elsewhere: Mapping[str, Elsewhere] | None) -> dict[str, int | str]:
        self.given.append(None if elsewhere is None else dict(elsewhere))
        return dict(self.own)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SHORT_FADE_S = 2.0


def _replica(
    url: str, prefix: str, own: dict[str, int | str], **kw: float
) -> tuple[SharedShown, Fleet, Clock]:
    client = redis_asyncio.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    clock = Clock()
    share = SharedInFlight(
        client, InFlight(1), names=ScopeNames(b"k" * 32), clock=clock, retry_s=5.0
    )
    fleet = Fleet(own)
    return SharedShown(client, fleet, share, prefix=prefix, **kw), fleet, clock


async def _close(*shown: SharedShown) -> None:
    for s in shown:
        await s.aclose()
        await s.share.client.aclose()


async def test_replicas_take_the_most_shown_add_the_held_and_a_gone_replicas_fade(
    redis_url: str,  # noqa: F811
) -> None:
    """Each replica reads the others' views, its own left out: per node the most any of
    them saw it serve at once (not their sum, trust37) and the requests they hold there
    together; one that stops publishing is left out once its view is older than the fade
    (its hash expired)."""
    prefix = f"redisshare36:{uuid.uuid4().hex}:"
    # the fade: longer than the ticks up to w's read take on a loaded box (at 0.5 s, a stall
    # of half a second between x's tick and w's left x's view out: flaky37, by reading)
    x, _, _ = _replica(redis_url, prefix, {"n1": "3,2", "n2": "0"}, fade_s=SHORT_FADE_S)
    y, _, _ = _replica(redis_url, prefix, {"n1": "2,1"}, fade_s=SHORT_FADE_S)
    w, fw, _ = _replica(redis_url, prefix, {"n1": "1"}, fade_s=SHORT_FADE_S)
    try:
        for s in (x, y, w):
            await s.tick()
        await w.tick()
        seen = {"n1": Elsewhere(3, 3), "n2": Elsewhere(0, 0)}  # n2 answered at x
        assert w.sums == seen  # x's and y's, not its own (before trust37: n1 5)
        assert fw.given[-1] == seen  # set on the router's nodes
        await x.tick()
        assert x.sums == {"n1": Elsewhere(2, 1)}
        await asyncio.sleep(SHORT_FADE_S + 0.1)  # y and x publish no more: gone
        await w.tick()
        assert w.sums == {}
        replicas = x._name("replicas")
        assert await w.share.client.zcard(replicas) == 1  # only w left in the set
        assert not await w.share.client.exists(x._name("replica:") + x.replica)  # expired
    finally:
        await _close(x, y, w)
        await swept(redis_url, prefix)


async def test_only_changes_are_sent_and_redis_is_written_whole_when_it_may_differ(
    redis_url: str,  # noqa: F811
) -> None:
    prefix = f"redisshare36:{uuid.uuid4().hex}:"
    x, fx, _ = _replica(redis_url, prefix, {"n1": 3, "n2": 1})
    y, _, _ = _replica(redis_url, prefix, {})
    try:
        await x.tick()
        fx.own = {"n1": 4}  # n2 left (failed hard, or gone), n1 showed more
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": Elsewhere(4, 0)}
        own = x._name("replica:") + x.replica
        await x.share.client.delete(own)  # Redis lost it (a restart, an eviction)
        await x.tick()  # its length is not what was sent: whole next time
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": Elsewhere(4, 0)}
    finally:
        await _close(x, y)
        await swept(redis_url, prefix)


async def test_redis_out_drops_the_other_replicas_view_and_it_comes_back_after(
    redis_url: str,  # noqa: F811
) -> None:
    """Redis out (a take failing, ``SharedInFlight.down``): at once only this replica's own
    shown slots count (review35d); no round trip while out; after ``retry_s`` the whole
    hash again and the others' rooms back."""
    prefix = f"redisshare36:{uuid.uuid4().hex}:"
    x, _, _ = _replica(redis_url, prefix, {"n1": 3})
    y, fy, clock = _replica(redis_url, prefix, {"n1": 1})
    try:
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": Elsewhere(3, 0)}
        y.share.down(ConnectionError("lost"))  # as the admission script marks it
        assert y.sums is None and fy.given[-1] is None  # at once, before any tick
        calls = len(fy.given)
        await y.tick()  # out: nothing asked, nothing set
        assert len(fy.given) == calls
        clock.now += 5.0  # retry_s later
        await y.tick()
        assert y.sums == {"n1": Elsewhere(3, 0)} and fy.given[-1] == {"n1": Elsewhere(3, 0)}
        await x.tick()
        assert x.sums == {"n1": Elsewhere(1, 0)}  # y wrote its hash whole again
    finally:
        await _close(x, y)
        await swept(redis_url, prefix)


async def test_a_publication_that_fails_marks_redis_out() -> None:
    x, fx, _ = _replica("redis://127.0.0.1:1/0", "redisshare36:none:", {"n1": 3})
    try:
        await x.tick()
        assert x.share.out and x.sums is None
        assert fx.given == [None]  # asked for its own, then nothing set
    finally:
        await _close(x)


@pytest.mark.parametrize("bad", [{"period_s": 0.0}, {"fade_s": -1.0}])
async def test_periods_must_be_positive(bad: dict[str, float]) -> None:
    client = redis_asyncio.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(ValueError):
            SharedShown(client, Fleet({}), SharedInFlight(client, InFlight(1)), **bad)
    finally:
        await client.aclose()
