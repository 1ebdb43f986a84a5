"""What a request takes from the admit stage's limits and gives back when it does not go on.

The anonymous total's request (``registry/access.RateLimit``) comes back when a later check
refuses the request, an answer is replayed, or the shared (Redis) check raises or is
cancelled (the client left); a keyed request's token charge comes back when its client
leaves before any answer; waiting counts end with the wait. (Split from ``test_access.py``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.balancer import Outcome
from LLM_Mesh.core.ratelimit import Limits, RateLimiter
from LLM_Mesh.errors import RateLimited
from LLM_Mesh.registry.access import RateLimit
from LLM_Mesh.registry.job import Client
from LLM_Mesh.registry.redis_limits import RedisLimiter
from tests.registry.helpers import FakeNodes, running
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key


async def test_a_request_refused_after_the_rate_check_gives_back_the_anonymous_total(
    tmp_path: Path,
) -> None:
    """Found 2026-12-03: the anonymous total's request, taken by the rate check, stayed taken
    when a later check refused the request (saturated: anonymous last) or the idempotency
    check replayed an answer: no node ran, yet each such request counted, so refusals
    spent the total and held every anonymous address off. Now only a request sent on counts."""
    # every slot open to anonymous requests (anonymous_share 1): a lone slot is else kept
    # for keyed requests (core/anonymous_share.py); this test is about the total
    async with running(
        tmp_path, anonymous_rpm=100, anonymous_total_rpm=2, anonymous_share=1.0
    ) as h:
        node = await h.register("a", max_concurrency=1, max_queue=0)
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)
        for i in range(4):  # refused by the anonymous-last check: 429 saturated, no node
            r = await h.client.post(CHAT, json=chat(f"saturated-{i}"))
            assert r.status_code == 429 and r.json()["error"]["reason"] == "saturated", r.text
        routing.finish(busy, Outcome.SUCCESS)
        once = {"X-Request-Id": "anon-1"}
        assert (await h.client.post(CHAT, json=chat(), headers=once)).status_code == 200
        for _ in range(3):  # replayed from the first: no node
            r = await h.client.post(CHAT, json=chat(), headers=once)
            assert r.status_code == 200 and r.headers["x-mesh-replayed"] == "true"
        assert (await h.client.post(CHAT, json=chat())).status_code == 200  # 2 of the 2
        r = await h.client.post(CHAT, json=chat())
        assert r.status_code == 429 and "every address together" in r.json()["error"]["message"]
        assert len(node.calls) == 2


class _StuckRedis:
    """A Redis client whose every script call waits for ever (a slow or hung Redis)."""

    def register_script(self, _script: str) -> Callable[..., Any]:
        async def run(**_kw: Any) -> Any:
            await asyncio.Event().wait()

        return run

    async def aclose(self) -> None:
        return None


class _FailingShared:
    """A shared limiter whose check raises (not Redis being out: that falls back)."""

    async def check(self, *_a: Any) -> Any:
        raise RuntimeError("boom")


@pytest.mark.parametrize("how", ["cancelled", "raises"])
async def test_a_shared_check_that_never_decides_gives_back_the_anonymous_total(how: str) -> None:
    """Found 2026-12-03: the rate check took the anonymous total's request, then awaited the
    replicas' shared (Redis) check; a client that closed its connection meanwhile (the
    request cancelled), or a check that raised, left it taken. Now it is given back; with
    Redis out the replica's own buckets decide as before, and a request they admit counts."""
    now = [1000.0]
    local = RateLimiter()
    shared: Any = (
        RedisLimiter(_StuckRedis(), local, clock=lambda: now[0])
        if how == "cancelled"
        else _FailingShared()
    )
    stage = RateLimit(local, 60, lambda: now[0], shared=shared, anonymous_total_rpm=1)
    job: Any = SimpleNamespace(choices=1, prompt_text="hi", max_tokens=10, messages=1, context=0)
    for _ in range(3):
        task = asyncio.create_task(stage(job, Client("198.51.100.3")))
        if how == "cancelled":
            await asyncio.sleep(0.01)  # waiting on Redis
            task.cancel()
        with pytest.raises(asyncio.CancelledError if how == "cancelled" else RuntimeError):
            await task
    # Redis out: this replica's buckets decide; the total's one request is there, once
    down = RedisLimiter(_StuckRedis(), local, clock=lambda: now[0])
    down._down_until = now[0] + 60
    stage = RateLimit(local, 60, lambda: now[0], shared=down, anonymous_total_rpm=1)
    client = Client("198.51.100.4")
    await stage(job, client)
    assert dict(client.headers)["x-ratelimit-remaining-requests"] == "59"
    with pytest.raises(RateLimited, match="every address together"):
        await stage(job, Client("198.51.100.5"))


class _StuckNodes(FakeNodes):
    """Fake nodes that take every inference request and never answer (a slow node)."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = asyncio.Event()

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        if request.url.path.startswith("/v1/"):
            self.taken.set()
            await asyncio.Event().wait()
        return super().handler(request)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_request_cancelled_before_its_answer_gives_its_token_charge_back(
    tmp_path: Path, stream: bool
) -> None:
    """Found 2026-12-03: a keyed request whose client closed its connection (the request
    cancelled) while a node worked on it, before any answer (a non-stream, or a stream not
    open yet), kept its whole token charge: without ``max_tokens`` the rest of the context,
    up to the whole tpm, so one cancelled request held the key off for up to a minute. As a
    node's failure or refusal does (and a stream cut after it opened: what it delivered),
    it is now settled at the tokens the client got: none. Its attempt ends too."""
    nodes = _StuckNodes()
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("a")
        key, key_id = await new_key(h, tpm=1000)
        task = asyncio.create_task(
            h.client.post(CHAT, json=chat(max_tokens=600, stream=stream), headers=bearer(key))
        )
        await asyncio.wait_for(nodes.taken.wait(), 5)
        left = dict(h.runtime.limiter.headers(f"key:{key_id}", Limits(tpm=1000), h.clock()))
        assert left["x-ratelimit-remaining-tokens"] == "378"  # 22 + 600 charged before
        assert h.in_flight("a") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        left = dict(h.runtime.limiter.headers(f"key:{key_id}", Limits(tpm=1000), h.clock()))
        assert left["x-ratelimit-remaining-tokens"] == "1000"  # before: 378 for a minute
        assert h.in_flight("a") == 0


async def test_an_anonymous_wait_the_client_leaves_gives_back_its_place_and_the_total(
    tmp_path: Path,
) -> None:
    """Found 2026-12-03: an anonymous request waiting for a saturated node (anonymous last)
    whose client closed its connection kept the anonymous total's request; its place in the
    waiting counts (this check's and the mesh's demand) was already given back. Both are now;
    a keyed request waiting in the send stage and cancelled leaves no count either."""
    async with running(  # every slot open to anonymous requests, as above
        tmp_path, anonymous_rpm=100, anonymous_total_rpm=1, anonymous_share=1.0
    ) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        routing = h.runtime.routing
        busy = routing.begin("a", MODEL)
        waits = [
            asyncio.create_task(h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": "5"})),
            asyncio.create_task(
                h.client.post(CHAT, json=chat(), headers={"X-Mesh-Wait": "5", **bearer(key)})
            ),
        ]
        await _until(lambda: routing.waiters == 2)
        assert routing.demand.waiting == {MODEL: 2}
        for task in waits:
            task.cancel()
        for task in waits:
            with pytest.raises(asyncio.CancelledError):
                await task
        assert routing.demand.waiting == {} and routing.waiters == 0
        routing.finish(busy, Outcome.SUCCESS)
        assert (await h.client.post(CHAT, json=chat())).status_code == 200  # the total's 1
        assert h.in_flight("a") == 0
