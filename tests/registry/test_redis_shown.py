"""What the nodes have shown they serve, shared by replicas through Redis
(``registry/redis_shown.py``, ``core/fleet_shown.py``; redisshare36, 2026-12-06).

share35's gap A with a Redis URL: since review35c a replica with Redis counted the declared
slots for the anonymous share (its own view of what the nodes showed capped the fleet's
count), so an open phantom (2^31 - 1 slots declared, answered one request very slowly,
refusing what it is sent) lifted the cap over every honest slot again: a flood through two
replicas held all 8 honest slots and a keyed request got the phantom's 429. Now each replica
publishes what each node showed it and counts the fleet's sum per node, up to its slots:
the phantom counts the one request it answered at each replica (2; the sum of what each
replica saw, docs/security.md's "what remains"), the cap 7 of 10.

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from LLM_Mesh.core.anonymous_inflight import InFlight
from LLM_Mesh.core.scope_names import ScopeNames
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from LLM_Mesh.registry.redis_shown import SharedShown
from tests.registry.helpers import Harness, rank, running, served_at_once
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_in_flight import _from
from tests.registry.test_anonymous_share import HoldAnonymous, _last
from tests.registry.test_redis_admit import _ended, _prefixed, _views_shared
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)
from tests.waiting import scaled

HUGE = 2**31 - 1
HONEST = ("n1", "n2", "n3", "n4")


@pytest.fixture
def patient_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registries' Redis client (``RedisLimiter.from_url``'s, 0.5 s) waits 5 s (scaled):
    the flood's 40 streams share one event loop with both replicas, and on a loaded box a
    Redis answer came later than 0.5 s of it: "Timeout connecting to server", the replica
    counted on its own (fails open, as documented) and the flood held 10 slots, not 7
    (flaky37, 1 run at load 19). What Redis being out does is tested elsewhere."""
    real = redis_asyncio.from_url

    def from_url(url: str, **kw: object) -> object:
        wait_s = scaled(5.0)
        return real(url, **{**kw, "socket_timeout": wait_s, "socket_connect_timeout": wait_s})

    monkeypatch.setattr(redis_asyncio, "from_url", from_url)


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
    patient_redis: None,
) -> None:
    nodes, store = HoldAnonymous(), MemoryStore()
    gateway_key = Ed25519PrivateKey.generate()  # replicas share registry.key (Redis' names)
    stop = asyncio.Event()
    refused: list[int] = []
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(
                running(
                    tmp_path / n,
                    store=store,
                    nodes=nodes,
                    anonymous_rpm=600,
                    redis_url=redis_url,
                    gateway_key=gateway_key,
                )
            )
            for n in ("a", "b")
        ]
        _prefixed(f"redisshare36:{uuid.uuid4().hex}:", a, b)
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
            await _until(lambda: nodes.held >= 7 and len(refused) > 40, 15)
            # 7 of 10 counted: 8 honest, z's 1 shown at each replica (before: 8, every one)
            assert nodes.most_held == 7
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


class Fleet:
    """``Router.fleet_shown`` as the publisher sees it: the last sums it was given, and
    ``own`` to publish."""

    def __init__(self, own: dict[str, int]) -> None:
        self.own = own
        self.given: list[Mapping[str, int] | None] = []

    def __call__(self, elsewhere: Mapping[str, int] | None) -> dict[str, int]:
        self.given.append(None if elsewhere is None else dict(elsewhere))
        return dict(self.own)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SHORT_FADE_S = 2.0


def _replica(
    url: str, prefix: str, own: dict[str, int], **kw: float
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


async def test_replicas_sum_each_nodes_shown_slots_and_a_gone_replicas_fade(
    redis_url: str,  # noqa: F811
) -> None:
    """Each replica reads the others' rooms, summed per node, its own left out; one that
    stops publishing is left out once its view is older than the fade (its hash expired)."""
    prefix = f"redisshare36:{uuid.uuid4().hex}:"
    # the fade: longer than the ticks up to w's read take on a loaded box (at 0.5 s, a stall
    # of half a second between x's tick and w's left x's view out: flaky37, by reading)
    x, _, _ = _replica(redis_url, prefix, {"n1": 3, "n2": 0}, fade_s=SHORT_FADE_S)
    y, _, _ = _replica(redis_url, prefix, {"n1": 2}, fade_s=SHORT_FADE_S)
    w, fw, _ = _replica(redis_url, prefix, {"n1": 1}, fade_s=SHORT_FADE_S)
    try:
        for s in (x, y, w):
            await s.tick()
        await w.tick()
        assert w.sums == {"n1": 5, "n2": 0}  # x's and y's, not its own; n2 answered at x
        assert fw.given[-1] == {"n1": 5, "n2": 0}  # set on the router's nodes
        await x.tick()
        assert x.sums == {"n1": 3}
        await asyncio.sleep(SHORT_FADE_S + 0.1)  # y and x publish no more: gone
        await w.tick()
        assert w.sums == {}
        replicas = x._name("replicas")
        assert await w.share.client.zcard(replicas) == 1  # only w left in the set
        assert not await w.share.client.exists(x._name("replica:") + x.replica)  # expired
    finally:
        await _close(x, y, w)


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
        assert y.sums == {"n1": 4}
        own = x._name("replica:") + x.replica
        await x.share.client.delete(own)  # Redis lost it (a restart, an eviction)
        await x.tick()  # its length is not what was sent: whole next time
        await x.tick()
        await y.tick()
        assert y.sums == {"n1": 4}
    finally:
        await _close(x, y)


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
        assert y.sums == {"n1": 3}
        y.share.down(ConnectionError("lost"))  # as the admission script marks it
        assert y.sums is None and fy.given[-1] is None  # at once, before any tick
        calls = len(fy.given)
        await y.tick()  # out: nothing asked, nothing set
        assert len(fy.given) == calls
        clock.now += 5.0  # retry_s later
        await y.tick()
        assert y.sums == {"n1": 3} and fy.given[-1] == {"n1": 3}
        await x.tick()
        assert x.sums == {"n1": 1}  # y wrote its hash whole again
    finally:
        await _close(x, y)


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
