"""Gaps of the anonymous share (``access.AnonymousLast``, ``admit.over_share``) left open
on 2026-12-06 and closed by anon34: the failover check read this process's count where
Redis holds every replica's; the check that lets an anonymous request on counted nodes
that may keep prompts as open to it; Redis' take gave an opted-in request the stricter
cap. docs/security.md, "Users and API keys".

The Redis tests need Redis as ``test_redis_limits.py`` does (skipped when it does not
answer)."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registry.helpers import running
from tests.registry.redis_patience import patient_redis
from tests.registry.redis_replicas import prefixed, replicas_sharing_redis
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.registry.test_anonymous_share import HoldAnonymous, _from, _last
from tests.registry.test_attack33_phantom_slots import HoldHonestAnonymous
from tests.registry.test_redis_limits import redis_url  # noqa: F401 (fixture)


async def test_the_failover_check_reads_every_replicas_share_with_a_redis_url(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Replica A holds the share's 3 anonymous streams on the honest nodes (4 slots); one
    more anonymous request at B goes to the phantom node first (B's router finds it the
    least loaded), which refuses it: B's own count (1) is within the cap (3), every
    replica's (4) is not, so it stops with the phantom's 429 instead of taking the fourth
    honest slot."""
    outages = patient_redis(monkeypatch)  # Redis out fails open: not what this tests
    nodes = HoldHonestAnonymous()
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(stack, tmp_path, redis_url, nodes)
        share_a, share_b = prefixed(f"anon34:{uuid.uuid4().hex}:", a, b)
        for n in ("a", "b"):
            await a.register(n, max_concurrency=2, max_queue=0)  # 4 honest slots: 3 anonymous
        z = await a.register("z", max_concurrency=2, max_queue=0, behavior="429")
        await b.app.state.node_sync.poll()
        ca = await stack.enter_async_context(_from(a, "2001:db8:34:1::1"))
        cb = await stack.enter_async_context(_from(b, "2001:db8:34:2::1"))
        held = [
            asyncio.create_task(ca.post(CHAT, json=chat(f"anon {i}", stream=True)))
            for i in range(3)
        ]
        try:
            await _until(lambda: nodes.held == 3, 10)
            assert not outages, outages  # (else A's own count)
            for n in ("a", "b"):  # the honest nodes say they are busy (at B): z looks best
                r = await b.client.post(f"/mesh/nodes/{n}/heartbeat", json={"in_flight": 1})
                assert r.status_code == 200, r.text
            seen = len(z.calls)
            last = asyncio.create_task(cb.post(CHAT, json=chat("anon b", stream=True)))
            await _until(lambda: last.done() or nodes.held > 3, 10)
            assert len(z.calls) == seen + 1  # z refused it first
            assert not outages, outages  # (else B's own count: sent on, the fourth slot held)
            # before the fix: sent on to a or b (B's own count 1 of 3), the fourth slot held
            assert nodes.most_held == 3
            r = await asyncio.wait_for(last, 10)
            assert r.status_code == 429, r.text  # z's refusal
            assert _last(b).running.counts.get(MODEL, 0) == 0
        finally:
            nodes.gate.set()
        for t in held:
            assert (await t).status_code == 200
        await _until(lambda: not share_a.held and not share_b.held)


async def test_an_opted_in_request_takes_the_shared_share_at_the_cap_of_the_slots_it_may_use(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With Redis, an anonymous request that opted in to nodes that may keep prompts and
    was not taken ahead with the rate limit (its own node constraint: the check asks the
    router first) took its place at the cap of the other nodes' slots: n1's 2 slots, cap
    1, where n1 and k's 6 slots give it 4 (the local count's check and the take ahead
    gave it 4). Two replicas, 2 held through each: the fifth, at ``b`` (its own count 2),
    is refused by Redis' take of every replica's 4 (strength38: through one replica its
    own count refused it first, so a take that let one more through passed)."""
    outages = patient_redis(monkeypatch)  # Redis out fails open: not what this tests
    nodes = HoldAnonymous()
    async with AsyncExitStack() as stack:
        a, b = await replicas_sharing_redis(stack, tmp_path, redis_url, nodes)
        share_a, share_b = prefixed(f"anon34:{uuid.uuid4().hex}:", a, b)
        for h in (a, b):  # no views shared: each counts the declared slots (none answered)
            assert h.runtime.shared_shown is not None
            await h.runtime.shared_shown.aclose()
        await a.register("n1", max_concurrency=2, max_queue=0)
        await a.register("k", max_concurrency=4, max_queue=0, keeps_no_prompts=False)
        await b.app.state.node_sync.poll()
        for h in (a, b):
            routing = h.runtime.routing
            assert (routing.slots(MODEL), routing.slots(MODEL, True)) == (2, 6)
        body = chat("anon", stream=True, allow_prompt_keeping=True, deny_nodes=["elsewhere"])
        clients = [
            await stack.enter_async_context(_from(h, f"2001:db8:34:{i:x}::1"))
            for i, h in enumerate((a, a, b, b, b))
        ]
        held = [asyncio.create_task(c.post(CHAT, json=body)) for c in clients[:4]]
        try:
            await _until(lambda: nodes.held == 4 or any(t.done() for t in held))
            done = [t.result().status_code for t in held if t.done()]
            assert done == [], done  # before the fix: 429 for 3 of them, over a cap of 1
            assert nodes.held == 4
            assert _last(b).running.counts.get(MODEL, 0) == 2  # b's own: under its cap of 4
            fifth = asyncio.create_task(clients[4].post(CHAT, json=body))
            await _until(lambda: fifth.done() or nodes.held > 4)
            assert fifth.done() and nodes.held == 4, "the fifth sent on, over the share"
            r = fifth.result()
            assert r.status_code == 429, r.text  # the share of 6 slots: 4, every replica's
            assert "hold their share of the slots" in r.json()["error"]["message"]
            assert not outages, outages  # (else b's own count: the fifth sent on)
        finally:
            nodes.gate.set()
        for t in held:
            assert (await t).status_code == 200
        await _until(lambda: not share_a.held and not share_b.held)


class HoldKeyed(HoldAnonymous):
    """As :class:`HoldAnonymous`, and requests whose content starts with ``hold`` are held
    until ``keyed_gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.keyed_gate = asyncio.Event()
        self.keyed_held = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        path, content = request.url.path, request.content
        if path != "/mesh/health" and json.loads(content)["messages"][0]["content"][:4] == "hold":
            self.keyed_held += 1
            await self.keyed_gate.wait()
        return await super().handler(request)


async def test_an_open_node_that_may_keep_prompts_does_not_let_an_anonymous_request_on(
    tmp_path: Path,
) -> None:
    """n1 (2 slots) is full of keyed requests, k (may keep prompts) is open: an anonymous
    request that did not opt in may use n1 only, so with ``X-Mesh-Wait`` it waits at the
    gateway and is served once a keyed request ends. Before the fix the check counted k
    open and let it on without its wait: the send stage found no node it may use and
    answered 429 ``saturated`` at once."""
    nodes = HoldKeyed()
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        await h.register("n1", max_concurrency=2, max_queue=0)
        k = await h.register("k", max_concurrency=4, max_queue=0, keeps_no_prompts=False)
        key, _ = await new_key(h, name="payer")
        keyed = [
            asyncio.create_task(h.client.post(CHAT, json=chat("hold"), headers=bearer(key)))
            for _ in range(2)
        ]
        try:
            await _until(lambda: nodes.keyed_held == 2, 10)
            async with _from(h, "2001:db8:34:9::1") as c:
                anon = asyncio.create_task(
                    c.post(CHAT, json=chat("hi"), headers={"X-Mesh-Wait": "20"})
                )
                await _until(lambda: anon.done() or _last(h).waiting_all == 1, 10)
                assert not anon.done(), anon.result().text  # before: 429 saturated at once
                nodes.keyed_gate.set()
                r = await asyncio.wait_for(anon, 20)
            assert r.status_code == 200, r.text
            assert r.headers["x-mesh-node"] == "n1"
            assert not k.calls
        finally:
            nodes.keyed_gate.set()
            nodes.gate.set()
        for t in keyed:
            assert (await t).status_code == 200


async def test_an_anonymous_admission_reads_the_counts_not_a_pick_where_nodes_keep_prompts(
    tmp_path: Path,
) -> None:
    """Found 2026-12-06 (review34): anon34 had every anonymous request that did not opt in,
    for a model some node that may keep prompts serves, ask the router for a pick at its
    admission (``AnonymousLast._clear``): the deny set of every such node, then one scan of
    the open set where they are most of it (1.6 ms a request with 10,000 of them beside 10,
    measured), and no take of the shared share ahead with the rate limit (one Redis round
    trip more). The pools count those nodes open and shut (``Router.pool_counts(model,
    held_out=True)``): the admission reads them, the send stage alone picks."""
    async with running(tmp_path, anonymous_rpm=600) as h:
        await h.register("n1", max_concurrency=2, max_queue=0)
        await h.register("k", max_concurrency=4, max_queue=0, keeps_no_prompts=False)
        routing = _last(h).routing
        assert routing.router.pool_counts(MODEL, held_out=True) == (1, 0, 0)
        callers: list[str] = []
        pick = routing.pick

        def counted(req: Any) -> Any:
            callers.append(sys._getframe(1).f_code.co_name)
            return pick(req)

        routing.pick = counted  # type: ignore[method-assign]
        async with _from(h, "2001:db8:34:a::1") as c:
            r = await c.post(CHAT, json=chat("hi"))
        assert r.status_code == 200, r.text
        assert r.headers["x-mesh-node"] == "n1"
        assert "_clear" not in callers, callers  # before: the admission's pick
