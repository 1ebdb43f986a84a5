"""A request that avoids a region never reaches a node in it: not on its first pick, nor
on a failover after a node's error, a second opinion after a node's refusal, or a stream
continued on another node after one broke mid-answer (docs/security.md, "Access")."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.registry.memory_store import MemoryStore
from tests.registry.helpers import FakeNode, FakeNodes, running, sse_chunks
from tests.registry.test_midstream import Dies, completion_chunks

MODEL = "gemma-3-270m"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("behavior", ["500", "connect_error", "timeout", "400", "503"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_failover_never_goes_to_an_avoided_region(
    tmp_path: Path, behavior: str, stream: bool
) -> None:
    async with running(tmp_path, max_attempts=5) as h:
        bad = await h.register("bad", region="eu", behavior=behavior)
        avoided = [await h.register(f"us{i}", region=" US ") for i in range(3)]
        for _ in range(3):
            body = {**CHAT, "stream": stream, "avoid_regions": ["us"]}
            r = await h.client.post("/v1/chat/completions", json=body)
            assert r.status_code >= 400 or stream, r.text
        assert bad.calls
        assert [n.calls for n in avoided] == [[], [], []]
        # the same with a node left outside the region: the failover reaches it only
        ok = await h.register("ok", region="ca")
        for _ in range(3):
            body = {**CHAT, "stream": stream, "avoid_regions": ["us"]}
            await h.client.post("/v1/chat/completions", json=body)
        assert ok.calls
        assert [n.calls for n in avoided] == [[], [], []]


async def test_a_stream_continued_after_a_break_never_goes_to_an_avoided_region(
    tmp_path: Path,
) -> None:
    nodes = FakeNodes()

    def factory(node: FakeNode, model: str) -> httpx.Response:
        sse = {"content-type": "text/event-stream"}
        if node.node_id == "first":  # breaks mid-answer: another node continues it
            head = completion_chunks("first", model, ["Once", " upon"])[:2]
            return httpx.Response(200, headers=sse, stream=Dies(head))
        return httpx.Response(
            200, headers=sse, content=b"".join(sse_chunks(model, node.node_id, [" a", " time"]))
        )

    nodes.stream_factory = factory
    async with running(tmp_path, nodes=nodes, max_attempts=5) as h:
        first = await h.register("first", region="eu")
        avoided = [await h.register(f"us{i}", region="us") for i in range(3)]
        body = {"model": MODEL, "prompt": "hi", "max_tokens": 8, "stream": True,
                "avoid_regions": ["us"]}  # fmt: skip
        for _ in range(3):
            await h.client.post("/v1/completions", json=body)
        assert first.calls
        assert [n.calls for n in avoided] == [[], [], []]
        later = await h.register("later", region="ca")
        for _ in range(3):
            await h.client.post("/v1/completions", json=body)
        assert [n.calls for n in avoided] == [[], [], []]
        assert later.calls  # the continuations went there


async def test_a_replica_that_learnt_a_node_from_the_store_avoids_its_region(
    tmp_path: Path,
) -> None:
    """A node registered with one replica is routed by another, which knows it from the
    shared store only (``node_sync``): its region came with it."""
    store, nodes = MemoryStore(), FakeNodes()
    async with AsyncExitStack() as stack:
        a, b = [
            await stack.enter_async_context(running(tmp_path / n, store=store, nodes=nodes))
            for n in ("a", "b")
        ]
        avoided = await a.register("us1", region="us")
        ok = await a.register("ca1", region="ca")
        await b.app.state.node_sync.poll()
        for _ in range(6):
            body = {**CHAT, "avoid_regions": ["us"]}
            r = await b.client.post("/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
        assert avoided.calls == [] and len(ok.calls) == 6


async def test_avoiding_a_region_avoids_the_regions_within_it(tmp_path: Path) -> None:
    """Found 2026-12-05: ``avoid_regions: ["eu"]`` (a request's, or a key's ``--avoid-regions
    eu,us`` as the README shows) still routed to the README's ``region = "eu-west"`` node."""
    async with running(tmp_path) as h:
        west = await h.register("west", region="eu-west")
        central = await h.register("central", region="EU-Central-1")
        ok = await h.register("ok", region="europe-west1")
        for _ in range(12):
            r = await h.client.post("/v1/chat/completions", json={**CHAT, "avoid_regions": ["eu"]})
            assert r.status_code == 200, r.text
        assert (west.calls, central.calls) == ([], []) and len(ok.calls) == 12
