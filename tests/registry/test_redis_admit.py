"""An anonymous request's Redis round trips (``redis_admit.py``, ``redis_inflight.Removals``;
issue 7: five round trips, three at admission and two at the end, found 2026-12-05): one
at admission, one at its end; replicas still agree on the counts under concurrency; Redis
lost in mid-request.

Needs Redis as ``test_redis_limits.py`` does (skipped when it does not answer)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from LLM_Mesh.core.anonymous_wait import Clear
from LLM_Mesh.core.ratelimit import address_scope
from LLM_Mesh.registry.access import AnonymousLast
from LLM_Mesh.registry.redis_inflight import SharedInFlight
from tests.registry.helpers import Harness, running, served_at_once
from tests.registry.redis_keys import own_prefixes, swept
from tests.registry.redis_patience import patient_redis
from tests.registry.redis_replicas import prefixed, replicas_sharing_redis
from tests.registry.test_access import CHAT, MODEL, _until, chat
from tests.registry.test_anonymous_in_flight import Gated, _from
from tests.registry.test_redis_limits import redis_asyncio, redis_url  # noqa: F401 (fixture)

redis_connection = pytest.importorskip("redis.asyncio.connection")


class Sends:
    """Round trips to Redis: each write of one or more commands (a pipeline is one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        cls = redis_connection.AbstractConnection
        send = cls.send_packed_command

        async def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            self.n += 1
            await send(conn, command, check_health)

        monkeypatch.setattr(cls, "send_packed_command", counted)


def _counts(h: Harness) -> list[SharedInFlight]:
    share, in_flight = h.runtime.shared_share, h.runtime.shared_in_flight
    assert share is not None and in_flight is not None
    return [share, in_flight]


async def _views_shared(*hs: Harness) -> None:
    """Each replica publishes what its nodes showed and reads the others' (twice round, so
    every replica has read every other's latest): what their loops do every 2 s."""
    for _ in range(2):
        for h in hs:
            assert h.runtime.shared_shown is not None
            await h.runtime.shared_shown.tick()


async def _ended(*hs: Harness) -> None:
    """Every place given back, its removal answered."""
    await _until(lambda: all(not c.held and not c._tasks for h in hs for c in _counts(h)))


async def test_an_anonymous_request_costs_one_redis_round_trip_in_and_one_out(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: 5 (the rate limit's script, the address' take, the model's share's take, and
    each place's removal on its own)."""
    async with running(tmp_path, anonymous_rpm=600, redis_url=redis_url) as h:
        prefixed(f"redis31:{uuid.uuid4().hex}:", h)
        await h.register("n1", max_concurrency=8)
        assert h.runtime.shared_shown is not None  # its ticks are not the requests' trips
        await h.runtime.shared_shown.aclose()
        async with _from(h, "2001:db8:31:1::1") as c:
            r = await c.post(CHAT, json=chat())  # the scripts loaded (NOSCRIPT once)
            assert r.status_code == 200, r.text
            await _ended(h)
            sends = Sends(monkeypatch)
            for _ in range(4):
                r = await c.post(CHAT, json=chat())
                assert r.status_code == 200, r.text
                await _ended(h)
            assert sends.n == 4 * 2
    await swept(redis_url, *own_prefixes([h.runtime]))  # its keys, once it stopped


async def test_replicas_agree_on_the_counts_under_concurrency(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One address' streams through two replicas at once: its in-flight bound (3) holds for
    both together; then many addresses: the model's share (3 of 4 slots) holds."""
    outages = patient_redis(monkeypatch)  # Redis out fails open: not what this tests
    nodes = Gated()
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(
            stack, tmp_path, redis_url, nodes, prefix="redis31", anonymous_in_flight=3
        )
        await a.register("n1", max_concurrency=32)
        await b.app.state.node_sync.poll()
        one = [await stack.enter_async_context(_from(h, "2001:db8:31:2::1")) for h in (a, b) * 6]
        codes = await _held_at_once(nodes, one)
        assert not outages, outages  # (else each replica's own bound: 3 at each)
        assert sorted(codes) == [200] * 3 + [429] * 9  # before and after: one bound of 3
        assert nodes.asked == 3
        await _ended(a, b)

        nodes.gate.clear()
        nodes.asked = 0
        await a.register("n1", max_concurrency=4)  # the share: 3 of 4 slots
        await b.app.state.node_sync.poll()
        for h in (a, b):  # it has served its 4 at once through each (share35: counted so)
            served_at_once(h.runtime.routing.router, "n1", MODEL, 4, h.clock())
        await _views_shared(a, b)
        many = [
            await stack.enter_async_context(_from(h, f"2001:db8:31:{i + 16:x}::1"))
            for i, h in enumerate((a, b) * 6)
        ]
        codes = await _held_at_once(nodes, many)
        assert not outages, outages
        assert sorted(codes) == [200] * 3 + [429] * 9
        assert nodes.asked == 3
        await _ended(a, b)
        for h in (a, b):
            for counts in _counts(h):
                assert not counts.local.counts  # nothing counted apart from Redis


async def _held_at_once(nodes: Gated, clients: list[httpx.AsyncClient]) -> list[int]:
    """Every client's stream sent at once; those admitted held by the node till all are in."""
    tasks = [asyncio.create_task(c.post(CHAT, json=chat(stream=True))) for c in clients]
    try:
        await _until(lambda: sum(t.done() for t in tasks) + nodes.asked == len(tasks))
    finally:
        nodes.gate.set()
    return [(await t).status_code for t in tasks]


class Proxy:
    """A TCP proxy to Redis that can be cut: Redis lost to the gateway, as a crash."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.db = parts.hostname or "127.0.0.1", parts.port, parts.path
        self.pipes: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self.db}"

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(self.host, self.port or 6379)
        self.pipes += [w, uw]

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(r, uw), copy(ur, w))

    def cut(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.pipes:
            w.transport.abort()


@asynccontextmanager
async def _proxied(url: str) -> AsyncIterator[tuple[Proxy, str]]:
    proxy = Proxy(url)
    via = await proxy.start()
    try:
        yield proxy, via
    finally:
        proxy.cut()


async def test_redis_lost_mid_request(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    """A stream admitted through Redis ends after Redis is lost: answered whole, its places
    forgotten (not renewed for ever); the next request is counted by the replica alone, and
    given back there."""
    nodes = Gated()
    async with AsyncExitStack() as stack:
        proxy, via = await stack.enter_async_context(_proxied(redis_url))
        h = await stack.enter_async_context(
            running(tmp_path, nodes=nodes, anonymous_rpm=600, redis_url=via)
        )
        prefixed(f"redis31:{uuid.uuid4().hex}:", h)
        share, in_flight = _counts(h)
        await h.register("n1", max_concurrency=8)
        async with _from(h, "2001:db8:31:3::1") as c:
            held = asyncio.create_task(c.post(CHAT, json=chat(stream=True)))
            await _until(lambda: nodes.asked == 1)
            assert len(share.held) == 1 and len(in_flight.held) == 1  # counted in Redis
            proxy.cut()  # Redis lost
            nodes.gate.set()
            r = await asyncio.wait_for(held, 10)
            assert r.status_code == 200, r.text
            assert not share.held and not in_flight.held  # left to their leases
            await _until(lambda: not share._tasks and not in_flight._tasks)
            nodes.gate.clear()
            after = asyncio.create_task(c.post(CHAT, json=chat(stream=True)))
            await _until(lambda: nodes.asked == 2)
            limiter = h.runtime.shared_limits
            assert limiter is not None and limiter.clock() < limiter._down_until
            assert share.clock() < share._down_until and in_flight.clock() < in_flight._down_until
            assert share.local.counts and in_flight.local.counts  # this replica's own
            nodes.gate.set()
            r = await asyncio.wait_for(after, 10)
            assert r.status_code == 200, r.text
            await _until(lambda: not share.local.counts and not in_flight.local.counts)
    await swept(redis_url, *own_prefixes([h.runtime]))  # its keys, once it stopped


async def test_a_place_taken_ahead_comes_back_when_a_later_check_answers(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    """The share's place, taken with the rate limit, of a request the idempotency check
    answers (a replay) is given back: none left in Redis, none renewed for ever (it fails
    without ``Client.on_refusal``'s give-back: the place stayed held)."""
    async with running(tmp_path, anonymous_rpm=600, redis_url=redis_url) as h:
        prefixed(f"redis31:{uuid.uuid4().hex}:", h)
        share, in_flight = _counts(h)
        await h.register("n1", max_concurrency=8)
        async with _from(h, "2001:db8:31:4::1") as c:
            for _ in range(2):  # the second one replayed
                r = await c.post(CHAT, json=chat(), headers={"Idempotency-Key": "k31"})
                assert r.status_code == 200, r.text
            assert h.nodes.calls() == 1
            await _ended(h)
            for counts in (share, in_flight):
                scope = address_scope("2001:db8:31:4::1")
                key = counts.key(chat()["model"] if counts is share else scope)
                assert await counts.client.zcard(key) == 0
    await swept(redis_url, *own_prefixes([h.runtime]))  # its keys, once it stopped


async def test_a_place_taken_ahead_comes_back_when_the_last_check_finds_the_model_not_clear(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clear when the rate limit ran (the share taken in its script), no longer clear at
    ``AnonymousLast`` (a keyed request began to wait between): the place goes back and the
    request is refused as before (it fails without the give-back: the place stayed held)."""
    async with running(tmp_path, anonymous_rpm=600, redis_url=redis_url) as h:
        prefixed(f"redis31:{uuid.uuid4().hex}:", h)
        share, _ = _counts(h)
        await h.register("n1", max_concurrency=8)
        said = AnonymousLast._said
        looks: list[Clear] = []

        def first_clear_then_held(last: AnonymousLast, job: Any, held: bool = False) -> Clear:
            looks.append(said(last, job, held) if not looks else Clear.HOLD)
            return looks[-1]

        monkeypatch.setattr(AnonymousLast, "_said", first_clear_then_held)
        async with _from(h, "2001:db8:31:5::1") as c:
            r = await c.post(CHAT, json=chat())
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "overloaded"
        assert looks == [Clear.GO, Clear.HOLD]  # taken ahead (cap_ahead), then not clear
        await _ended(h)
        assert await share.client.zcard(share.key(chat()["model"])) == 0
    await swept(redis_url, *own_prefixes([h.runtime]))  # its keys, once it stopped
