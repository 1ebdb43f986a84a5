"""A node's non-streamed answer within its request's bound (registry/node_answer.py,
core/answer_bound.py), and the ``model`` the client sees (the one it asked for). See
docs/security.md, "Hostile nodes" (found 2026-12-05)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core import strict_json
from LLM_Mesh.core.answer_bound import answer_bound
from tests.core.test_answer_bound import chat_answer as big_chat_answer
from tests.registry.helpers import (
    FakeNode,
    FakeNodes,
    chat_answer,
    rank,
    registration,
    running,
    sse_chunks,
)

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
PAD_BYTES = 16 << 20  # as the audit's: 16 MiB of padding


class _Answers(FakeNodes):
    """Chat answers (bytes) from ``make`` per node; ``asked``: the nodes asked, in order."""

    def __init__(self, make: object) -> None:
        super().__init__()
        self.make = make
        self.asked: list[str] = []
        self.stream_factory = self._stream

    def _stream(self, node: FakeNode, model: str) -> httpx.Response:
        self.asked.append(node.node_id)
        return self.make(node, model)  # type: ignore[no-any-return,operator]

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == CHAT and not json.loads(request.content).get("stream"):
            super().handler(request)  # counted as a call
            return self._stream(self.nodes[f"{request.url.host}:{request.url.port}"], MODEL)
        return super().handler(request)


def _padded(pad: bytes) -> bytes:
    """An honest answer with a field no client reads padded with ``pad``."""
    honest = json.dumps(chat_answer(MODEL, "liar")).encode()
    return honest[:-1] + b', "pad": [' + pad + b"0]}"


async def _liar_then_honest(tmp_path: Path, liar: bytes, ask: dict[str, object]) -> float:
    def answer(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "liar":
            return httpx.Response(200, content=liar)
        return httpx.Response(200, json=chat_answer(model, node.node_id))

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        router = h.runtime.routing.router
        rank(router, ["liar", "honest"], MODEL, h.clock())
        t0 = time.perf_counter()
        r = await h.client.post(CHAT, json=ask)
        took = time.perf_counter() - t0
        # before: the liar's answer, parsed and written again whole (its padding with it)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "honest", r.text[:200]
        assert b"pad" not in r.content and nodes.asked == ["liar", "honest"]
        assert router.outliers.is_ejected("liar")  # the node's failure, as a 500's
    return took


@pytest.mark.parametrize("pad", [b"0,", b"{},"], ids=["zeros", "empty_objects"])
async def test_an_answer_padded_past_the_requests_bound_fails_over(
    tmp_path: Path, pad: bytes
) -> None:
    """Found 2026-12-05: 16 MiB of ``[0,0,...]`` (or ``[{},{},...]``) in a field no client
    reads was parsed and written again on the event loop (1.9 s; ~557 MiB for the objects),
    for every request routed to that node. Now the bound of a 64-token answer (80 KiB) stops
    the read: the node's failure, another node answers."""
    took = await _liar_then_honest(tmp_path, _padded(pad * (PAD_BYTES // len(pad))), ASK)
    assert took < 5.0, took  # (the harness's mock node hands its bytes at once)


async def test_many_empty_containers_within_the_bytes_fail_over(tmp_path: Path) -> None:
    """Containers the bytes allow but no answer to the request holds: 20,000 ``{}`` (60 KB,
    under the 80 KiB of a 64-token answer; 64 + 256 containers allowed)."""
    liar = _padded(b"{}," * 20_000)
    bound = answer_bound(64, ceiling=PAD_BYTES)
    assert len(liar) < bound.bytes and bound.containers < 20_000
    await _liar_then_honest(tmp_path, liar, ASK)


async def test_an_honest_large_answer_with_logprobs_passes(tmp_path: Path) -> None:
    """max_tokens 4096 with top_logprobs 20: ~10 MB, 176,000 containers, as a real server
    writes it (non-ASCII tokens escaped), well within its bound (~43 MiB)."""
    body = big_chat_answer(4096, 20)
    nodes = _Answers(lambda node, model: httpx.Response(200, content=body))
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("honest")
        ask = {**ASK, "max_tokens": 4096, "logprobs": True, "top_logprobs": 20}
        r = await h.client.post(CHAT, json=ask)
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "honest", r.text[:300]
        got = strict_json.loads_object(r.content)
        assert len(got["choices"][0]["logprobs"]["content"]) == 4096


async def test_a_nodes_model_name_never_reaches_the_client(tmp_path: Path) -> None:
    """Found 2026-12-05: the answer's top-level ``model`` (and each stream chunk's) passed
    on as the node wrote it (a path, another model's name), beside the gateway's
    ``X-Mesh-Model`` and ``mesh.model``: it is the model the client asked for."""

    def answer(node: FakeNode, model: str) -> httpx.Response:
        return httpx.Response(200, json=chat_answer("/models/other-7b-q4.gguf", node.node_id))

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("renamer")
        r = await h.client.post(CHAT, json=ASK)
        assert r.status_code == 200
        got = strict_json.loads_object(r.content)
        assert got["model"] == MODEL == r.headers["x-mesh-model"] == got["mesh"]["model"]
        assert b"other-7b" not in r.content


async def test_a_streams_model_name_is_the_requests(tmp_path: Path) -> None:
    def stream(node: FakeNode, model: str) -> httpx.Response:
        events = sse_chunks("/models/other-7b-q4.gguf", node.node_id, ["Hel", "lo"])
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=b"".join(events))  # fmt: skip

    nodes = FakeNodes()
    nodes.stream_factory = stream
    async with running(tmp_path, nodes=nodes) as h:
        await h.register("renamer")
        r = await h.client.post(CHAT, json={**ASK, "stream": True})
        assert r.status_code == 200 and b"other-7b" not in r.content, r.text
        lines = [ln[6:] for ln in r.text.split("\n") if ln.startswith("data: {")]
        chunks = [strict_json.loads_object(ln) for ln in lines]
        assert len(chunks) >= 4 and all(c["model"] == MODEL for c in chunks), chunks
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "Hello"


async def test_without_max_tokens_a_node_is_bounded_by_its_own_context(tmp_path: Path) -> None:
    """Found 2026-12-05: a request without ``max_tokens`` was bounded by the largest
    context any node declares for its model (the job's, what the estimate is priced at),
    whichever node answered: a node declaring 256 tokens of context had 8 MiB for its
    answer (the model's 32,768 tokens). Now each node is held to the bound of its own
    declared context, as a stream is (``Job.limit_on``): 2 MiB of padding from it fails
    over."""

    def answer(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "liar":
            return httpx.Response(200, content=_padded(b"0," * (1 << 20)))
        return httpx.Response(200, json=chat_answer(model, node.node_id))

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        for node_id, context in (("liar", 256), ("honest", None)):
            model: dict[str, object] = {"id": MODEL, "engine": "sim", "simulated": True}
            if context is not None:
                model["context_length"] = context
            await h.register(node_id)
            reg = {**registration(node_id), "models": [model]}
            assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200
        router = h.runtime.routing.router
        rank(router, ["liar", "honest"], MODEL, h.clock())
        ask = {k: v for k, v in ASK.items() if k != "max_tokens"}
        r = await h.client.post(CHAT, json=ask)
        # before: the liar's 2 MiB answer, within the 32,768-token context's 8 MiB
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "honest", r.text[:200]
        assert nodes.asked == ["liar", "honest"]
