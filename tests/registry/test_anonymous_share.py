"""Requests without an API key hold at most a share of a model's slots at a gateway process
(``LLM_MESH_ANONYMOUS_SHARE``, core/anonymous_share.py), so a keyed request is served while
anonymous clients of many addresses flood the model (found 2026-12-05: they could hold
every slot; a keyed request, first in line, got 429 ``saturated`` or waited for one of
their streams to end). docs/security.md, "Users and API keys"."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core.anonymous_share import DEFAULT_ANONYMOUS_SHARE, KEYED_RECENT_S, anonymous_cap
from LLM_Mesh.registry.access import AnonymousLast
from tests.registry.helpers import FakeNodes, Harness, running
from tests.registry.test_access import CHAT, MODEL, _until, bearer, chat, new_key
from tests.waiting import SOON_S, scaled


class HoldAnonymous(FakeNodes):
    """Fake nodes (a simulated model) that hold every anonymous request (its content
    starts with ``anon``) until ``gate`` is set: a stream that runs for ever."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.held = 0  # anonymous requests a node holds now
        self.most_held = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        if request.url.path != "/mesh/health":
            content = json.loads(request.content)["messages"][0]["content"]
            if content.startswith("anon"):
                self.held += 1
                self.most_held = max(self.most_held, self.held)
                try:
                    await self.gate.wait()
                finally:
                    self.held -= 1
        return super().handler(request)


def _from(h: Harness, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://mesh", timeout=30)


def _last(h: Harness) -> AnonymousLast:
    found = [c for c in h.app.state.pipeline.admission.checks if isinstance(c, AnonymousLast)]
    assert found, "no anonymous-last check among the admission checks"
    return found[0]


def _age_keyed(h: Harness, seconds: float) -> None:
    """Make the model's last keyed request ``seconds`` older: as this process saw it come,
    and as its node had it (``NodeStats.keyed_at``, which its heartbeats say too)."""
    _last(h).keyed_seen[MODEL] -= seconds
    for node_id in [e.node_id for e in h.table.entries()]:
        st = h.runtime.routing.router.node(node_id)
        if st is not None and st.keyed_at is not None:
            st.keyed_at -= seconds


async def _flood(h: Harness, addresses: int, stop: asyncio.Event, refused: list[int]) -> None:
    """Anonymous streams from ``addresses`` /64s of one /48, each sent again as soon as it
    is refused or ends, until ``stop``."""

    async def one(i: int) -> None:
        async with _from(h, f"2001:db8:7:{i:x}::1") as c:
            while not stop.is_set():
                r = await c.post(CHAT, json=chat(f"anon {i}", stream=True))
                if r.status_code == 429:
                    refused.append(i)
                    # 40 clients sent again every 10 ms held this one loop so busy that a
                    # keyed request's own steps took 5-7 s (a flaky bound); 50 ms still
                    # keeps every slot of the share taken
                    await asyncio.sleep(0.05)

    await asyncio.gather(*(one(i) for i in range(addresses)))


@pytest.mark.parametrize("share", [DEFAULT_ANONYMOUS_SHARE, 1.0])
async def test_an_anonymous_flood_of_many_addresses_leaves_keyed_requests_a_slot(
    tmp_path: Path, share: float
) -> None:
    nodes = HoldAnonymous()
    stop = asyncio.Event()
    refused: list[int] = []
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600, anonymous_share=share) as h:
        for n in ("a", "b"):
            await h.register(n, max_concurrency=2, max_queue=0)  # 4 slots
        key, _ = await new_key(h, name="payer")
        cap = anonymous_cap(4, share)
        flood = asyncio.create_task(_flood(h, 40, stop, refused))
        try:
            await _until(lambda: nodes.held >= cap and len(refused) > 40, 10)
            for i in range(5):  # keyed requests, one after another, amid the flood
                t0 = time.monotonic()
                r = await asyncio.wait_for(
                    h.client.post(CHAT, json=chat(f"keyed {i}"), headers=bearer(key)), 20
                )
                took = time.monotonic() - t0
                if share == 1.0:  # no share kept: the flood holds every slot (the attack)
                    assert r.status_code == 429, r.text
                    assert r.json()["error"]["reason"] == "saturated"
                    continue
                assert r.status_code == 200, r.text  # before: 429 saturated, every slot held
                assert took < 10.0, took  # a bound: before, never (429, or a stream to end)
            assert nodes.most_held == cap  # never more anonymous requests at the nodes
            assert _last(h).running.counts.get(MODEL, 0) == (cap if share < 1 else 0)
        finally:
            stop.set()
            nodes.gate.set()
            await asyncio.wait_for(flood, 30)
        await _until(lambda: _last(h).running.counts == {})
    assert refused  # the flood was refused past the share (429 saturated), not queued


async def test_an_anonymous_wait_is_served_when_an_anonymous_request_of_the_share_ends(
    tmp_path: Path,
) -> None:
    nodes = HoldAnonymous()
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600) as h:
        await h.register("a", max_concurrency=4, max_queue=0)  # 3 for anonymous requests
        clients = [_from(h, f"198.51.100.{i}") for i in range(4)]
        try:
            held = [asyncio.create_task(c.post(CHAT, json=chat("anon", stream=True)))
                    for c in clients[:3]]  # fmt: skip
            await _until(lambda: nodes.held == 3)
            r = await clients[3].post(CHAT, json=chat("anon now"))
            assert r.status_code == 429, r.text
            err = r.json()["error"]
            assert err["anonymous"] is True and "share" in err["message"]
            waiting = asyncio.create_task(clients[3].post(CHAT, json=chat("late", mesh_wait_s=10)))
            await _until(lambda: _last(h).waiting_all == 1)
            held[0].cancel()  # one of the share ends (its client left): room for the waiter
            r = await asyncio.wait_for(waiting, scaled(SOON_S))
            assert r.status_code == 200, r.text
            nodes.gate.set()
            for t in held[1:]:
                assert (await t).status_code == 200
            await _until(lambda: _last(h).running.counts == {})
        finally:
            nodes.gate.set()
            for c in clients:
                await c.aclose()


async def test_the_slots_are_counted_again_when_the_nodes_change(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        routing = h.runtime.routing
        assert routing.slots(MODEL) == 0
        await h.register("a", max_concurrency=3)
        assert routing.slots(MODEL) == 3
        await h.register("b", max_concurrency=2)
        assert routing.slots(MODEL) == 5
        await h.register("b", max_concurrency=4)  # registered again with other slots
        assert routing.slots(MODEL) == 7
        routing.router.set_routable("a", False)  # draining, offline, heartbeat lost
        assert routing.slots(MODEL) == 4
        routing.remove("b")
        assert routing.slots(MODEL) == 0


async def test_a_one_slot_model_serves_anonymous_requests_until_keyed_ones_come(
    tmp_path: Path,
) -> None:
    """found 2026-12-05: with the share, a model of one slot in all (one gemma-3-270m node)
    answered every anonymous request 429 for ever, with no keyed request anywhere."""
    async with running(tmp_path, anonymous_rpm=600) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        async with _from(h, "198.51.100.7") as c:
            r = await c.post(CHAT, json=chat("anon, nobody with a key about"))
            assert r.status_code == 200, r.text  # before: 429 saturated, share 0 of 1 slot
            key, _ = await new_key(h, name="payer")
            r = await h.client.post(CHAT, json=chat("keyed"), headers=bearer(key))
            assert r.status_code == 200, r.text
            r = await c.post(CHAT, json=chat("anon, a key came a moment ago"))
            assert r.status_code == 429, r.text  # the one slot is kept for keyed requests
            assert "share" in r.json()["error"]["message"]
            last = _last(h)
            _age_keyed(h, KEYED_RECENT_S + 1)  # a minute without keyed requests
            r = await c.post(CHAT, json=chat("anon, no key lately"))
            assert r.status_code == 200, r.text
        await _until(lambda: last.running.counts == {})


async def test_a_one_slot_models_refusal_says_when_anonymous_requests_get_the_slot_back(
    tmp_path: Path,
) -> None:
    """found 2026-12-05 (a new user's try): after a keyed request, the one-slot model's
    anonymous refusals said `Retry-After: 1` and "estimated wait 1.00 s" for the whole
    minute in which no anonymous request could run, however free the node: clients told to
    retry each second, 60 times, and a wait (`X-Mesh-Wait`) spent for nothing."""
    async with running(tmp_path, anonymous_rpm=600) as h:
        await h.register("a", max_concurrency=1, max_queue=0)
        key, _ = await new_key(h, name="payer")
        r = await h.client.post(CHAT, json=chat("keyed"), headers=bearer(key))
        assert r.status_code == 200, r.text
        _age_keyed(h, 20)  # the keyed request came 20 s ago
        async with _from(h, "198.51.100.7") as c:
            r = await c.post(CHAT, json=chat("anon, a key came 20 s ago"))
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert KEYED_RECENT_S - 20 - 2 <= err["wait_s"] <= KEYED_RECENT_S - 20, err
        assert int(r.headers["Retry-After"]) == math.ceil(err["wait_s"]), r.headers
        assert f"estimated wait {err['wait_s']:.2f} s" in err["message"]
