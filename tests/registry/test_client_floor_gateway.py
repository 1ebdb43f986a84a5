"""The client's floor on events without output (``core/client_floor.py``) against the real
gateway: nodes that push each of the gateway's rules to its edge (output events then the
keep-alives they allow; a failover's parts of empty deltas and keep-alives), whose stream
the gateway relays whole, stay within ``honest_most`` for the attempts the gateway was
given, and ``MeshClient.stream`` reads that stream to its end; an honest sim node's stream
through the real mesh passes too (``tests/inprocess_mesh.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from LLM_Mesh.client import MeshClient
from LLM_Mesh.client_stream import _data
from LLM_Mesh.core.client_floor import honest_most, quiet_bound, stream_limit
from LLM_Mesh.core.failover import MAX_ATTEMPTS_TOP
from LLM_Mesh.core.sse_frame import SseFramer
from LLM_Mesh.core.stream_guard import NO_DATA_EVENTS, SLACK_EVENTS, carries_output
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh
from tests.registry.helpers import FakeNode, rank, running
from tests.registry.test_hostile_node_streams import (
    CHAT,
    MODEL,
    Hostile,
    Nodes,
    _body,
    _ev,
    _head,
    _role,
)

PARTS = MAX_ATTEMPTS_TOP  # the gateway's max_attempts here: the top, 16 parts
BODY = _body(CHAT)  # max_tokens 8
DATA = stream_limit(BODY, chat=True) + SLACK_EVENTS  # a part's data events at most


def _think(node: str) -> bytes:  # output the gateway prices (reasoning), not text
    return _ev(
        {**_head(CHAT, node), "choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]}
    )


def _edge(node: str, kind: str) -> Callable[[FakeNode], Hostile]:  # (a node's id)
    """A part at the gateway's edge (``kind``): ``output``: all its data events with output,
    then every keep-alive they allow; ``empty``: a role chunk, empty deltas and the
    keep-alives allowed without output; both then break (the body ends without
    ``[DONE]``): failed over. ``last``: as ``empty``, ending with its usage chunk and
    ``[DONE]`` (an answer without text, which the gateway finishes)."""
    empty = _ev({**_head(CHAT, node), "choices": [{"index": 0, "delta": {}}]})
    usage = {"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}

    def events() -> list[bytes]:
        if kind == "output":
            return [_think(node)] * DATA + [b": ka\n\n"] * (NO_DATA_EVENTS + 2 * DATA)
        if kind == "empty":
            return [_role(node), *[empty] * (DATA - 1), *[b": ka\n\n"] * NO_DATA_EVENTS]
        final = _ev({**_head(CHAT, node), "choices": [], "usage": usage})
        return [_role(node), *[empty] * (DATA - 2), final, *[b": ka\n\n"] * NO_DATA_EVENTS,
                b"data: [DONE]\n\n"]  # fmt: skip

    return lambda _node: Hostile(events)


def _quiet(body: bytes, choices: int = 1) -> tuple[int, int]:
    """The events without output in a stream the gateway sent: in the longest row, in all."""
    framer, run, longest, total = SseFramer(), 0, 0, 0
    for event in [*framer.feed(body), *framer.end()]:
        items = _data(event, "gw")
        if items and items[-1] is None:
            continue
        if any(carries_output(c, choices) for c in items if c is not None):
            run = 0
            continue
        run, total = run + 1, total + 1
        longest = max(longest, run)
    return longest, total


async def test_the_real_gateway_at_its_edge_stays_within_the_bound_and_the_client_reads_it(
    tmp_path: Path,
) -> None:
    nodes, names, opened = Nodes(), [f"n{i}" for i in range(PARTS)], []

    def part(node: FakeNode) -> Hostile:
        """The parts in this order whatever node the router picks (best of 4, at random)."""
        kind = "output" if not opened else "last" if len(opened) == PARTS - 1 else "empty"
        opened.append(node.node_id)
        return _edge(node.node_id, kind)(node)

    for name in names:
        nodes.streams[name] = part
    async with running(tmp_path, nodes=nodes, max_attempts=PARTS) as h:
        for name in names:
            await h.register(name, continuation=True)
        rank(h.runtime.routing.router, names, MODEL, h.clock())
        r = await h.client.post(CHAT, json=BODY)
        assert r.status_code == 200
        body = r.content
    assert len(opened) == PARTS
    assert all(s.pulled == len(s.events()) for s in nodes.made.values())  # each read whole
    assert body.endswith(b"data: [DONE]\n\n") and b'"error"' not in body
    assert body.count(b"reasoning_content") == DATA
    run, total = _quiet(body)
    most = honest_most(stream_limit(BODY, chat=True), parts=PARTS)
    # the gateway relayed the edge parts whole: within the bound, and close to its worst
    # case (the bound's slack: the continuing parts' role chunks, which the gateway drops,
    # and its own two events at a cut at the limit, which this stream has not)
    assert run <= most.run and total <= most.events
    assert run == most.run - (PARTS - 1) - 2
    # ... and the client reads that stream to its end (its bound: twice that)
    assert quiet_bound(BODY, chat=True) == most.times(2)

    async def replay() -> AsyncIterator[bytes]:
        yield body

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=replay())

    async with MeshClient("http://gw.test", http_client=httpx.AsyncClient(
        transport=httpx.MockTransport(answer))) as client:  # fmt: skip
        chunks = [c async for c in client.stream(CHAT, BODY)]
    assert chunks[-1]["mesh"]["failover_from"] == opened[:-1]  # 15 parts failed over


async def test_a_sim_nodes_stream_through_the_real_mesh_passes(
    inprocess_mesh: InProcessMesh,
) -> None:
    mesh = inprocess_mesh
    mesh.add_node("gemma-3-270m", "sim")
    body: dict[str, Any] = {"model": "gemma-3-270m", "max_tokens": 24,
                            "messages": [{"role": "user", "content": "hello there"}],
                            "stream_options": {"include_usage": True}}  # fmt: skip
    async with MeshClient(REGISTRY_URL, http_client=mesh.client()) as client:
        chunks = [c async for c in client.stream(CHAT, body)]
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[1:] if c["choices"]
    )
    assert text and chunks[-1]["usage"]["completion_tokens"] >= 1
