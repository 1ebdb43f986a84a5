"""An anonymous address's requests in flight at one gateway process: at most
``anonymous_in_flight`` (found 2026-12-05: only their starts were bounded, 60 a minute per
/64, each a stream up to the model's context, so a few /64s held every slot of a small
mesh's model). docs/security.md, "Users and API keys"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.core.anonymous_inflight import DEFAULT_ANONYMOUS_IN_FLIGHT
from LLM_Mesh.registry.access import InFlightBound
from tests.registry.helpers import FakeNodes, Harness, running, sse_chunks
from tests.registry.test_access import CHAT, _until, chat


class Gated(FakeNodes):
    """Fake nodes that hold each request until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.asked = 0  # requests that reached a node

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        if request.url.path != "/mesh/health":
            self.asked += 1
            await self.gate.wait()
        return super().handler(request)


def _from(h: Harness, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=h.app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://mesh")


def _bound(h: Harness) -> InFlightBound:
    found = [c for c in h.app.state.pipeline.admission.checks if isinstance(c, InFlightBound)]
    assert found, "no in-flight bound among the admission checks"
    return found[0]


async def test_an_address_past_its_in_flight_bound_is_refused(tmp_path: Path) -> None:
    nodes = Gated()
    gate = nodes.gate
    async with running(tmp_path, nodes=nodes, anonymous_rpm=60) as h:
        await h.register("a", max_concurrency=32)
        cap = DEFAULT_ANONYMOUS_IN_FLIGHT
        async with _from(h, "2001:db8:1:2::1") as one, _from(h, "2001:db8:1:2::99") as same64, \
                _from(h, "203.0.113.9") as other:  # fmt: skip
            held = [asyncio.create_task(one.post(CHAT, json=chat(stream=True, max_tokens=8)))
                    for _ in range(cap)]  # fmt: skip
            try:
                await _until(lambda: nodes.asked == cap)
                r = await asyncio.wait_for(same64.post(CHAT, json=chat()), 10)  # its /64
                assert r.status_code == 429, r.text  # before: admitted, held by the node too
                assert r.headers["Retry-After"] == "1"
                err = r.json()["error"]
                assert err["type"] == "rate_limit_error"
                assert err["code"] == "rate_limit_exceeded"
                assert "in flight" in err["message"]
                assert nodes.asked == cap
                others = [asyncio.create_task(c.post(CHAT, json=chat()))
                          for c in (other, h.client)]  # another address; loopback  # fmt: skip
                await _until(lambda: nodes.asked == cap + 2)
                gate.set()
                for r in await asyncio.gather(*held, *others):
                    assert r.status_code == 200, r.text
                assert _bound(h).counts.counts == {}
            finally:
                gate.set()
                for t in held:
                    t.cancel()


def _cut(node: Any, model: str) -> httpx.Response:
    first = next(iter(sse_chunks(model, node.node_id, node.words)))

    async def body() -> AsyncIterator[bytes]:
        yield first
        raise httpx.ReadError("connection reset")

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


async def test_each_end_of_a_request_gives_its_place_back(tmp_path: Path) -> None:
    nodes = Gated()
    gate = nodes.gate
    gate.set()
    async with running(tmp_path, nodes=nodes, anonymous_rpm=600, anonymous_in_flight=1) as h:
        node = await h.register("a", max_concurrency=32)
        counts = _bound(h).counts.counts
        async with _from(h, "198.51.100.4") as c:
            for stream in (False, True):
                assert (await c.post(CHAT, json=chat(stream=stream))).status_code == 200
                assert counts == {}
                node.behavior = "500"  # failed
                assert (await c.post(CHAT, json=chat(stream=stream))).status_code >= 500
                assert counts == {}
                node.behavior = "ok"
                gate.clear()  # the client leaves while the node holds its request
                task = asyncio.create_task(c.post(CHAT, json=chat(stream=stream)))
                await _until(lambda: counts == {"198.51.100.4": 1})
                refused = await c.post(CHAT, json=chat(stream=stream))
                assert refused.status_code == 429, refused.text
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                gate.set()
                await _until(lambda: counts == {})
            nodes.stream_factory = _cut  # the stream cut after its first chunk
            r = await c.post(CHAT, json=chat(stream=True))
            assert r.status_code == 200 and b"[DONE]" in r.content
            assert counts == {}
            nodes.stream_factory = None
            assert (await c.post(CHAT, json=chat(stream=True))).status_code == 200
