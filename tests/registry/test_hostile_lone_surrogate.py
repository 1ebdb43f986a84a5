"""A node's answer holding a lone UTF-16 surrogate escape (``"\\ud800"`` without its pair:
no Unicode character, nothing can write it as UTF-8) is the node's break, like JSON that is
not JSON: another node answers, the client gets text only (found 2026-12-05, ``stream32``:
a stream's chunk of one raised ``UnicodeEncodeError`` in the gateway's read, at the part's
final chunk (the receipt's hash of its text) or at once when the node named the model
otherwise (the chunk written again): the client's stream ended without an error event or
``[DONE]``, the node was not blamed; docs/security.md, "Hostile nodes")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core import strict_json
from tests.registry.helpers import FakeNode, chat_answer, rank, running, sse_chunks
from tests.registry.test_hostile_choice_index import _said
from tests.registry.test_hostile_node_json import _Answers

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
SSE = {"content-type": "text/event-stream"}
LONE = b"\\ud800"  # the escape as a node's JSON carries it
CASES = {"text": ("a" + "\ud800", MODEL), "low": ("\udc00b", MODEL),
         "renamed": ("a\ud800", "node-own-name")}  # fmt: skip


def _liar_stream(text: str, model: str) -> list[bytes]:
    honest = sse_chunks(MODEL, "liar", ["fine", " so far"])  # its text after the bad chunk
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunk = {**base, "choices": [{"index": 0, "delta": {"content": text}}]}
    bad = b"data: " + json.dumps(chunk).encode()
    assert LONE in bad or b"\\udc00" in bad
    return [*honest[:1], bad + b"\n\n", *honest[1:]]


@pytest.mark.parametrize("case", list(CASES))
async def test_a_stream_chunk_with_a_lone_surrogate_is_the_nodes_break(
    tmp_path: Path, case: str
) -> None:
    text, model = CASES[case]

    def stream(node: FakeNode, model_asked: str) -> httpx.Response:
        if node.node_id == "liar":
            events = _liar_stream(text, model)
        else:
            events = sse_chunks(model_asked, node.node_id, ["lo", "!"])
        return httpx.Response(200, headers=SSE, content=b"".join(events))

    nodes = _Answers(stream)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "stream": True,
        })  # fmt: skip
        assert r.status_code == 200, r.text
        assert LONE not in r.content and b"\\udc00" not in r.content
        said = _said(r.text)  # every event JSON, the last [DONE]
        assert said == "lo!", said
        assert nodes.asked == ["liar", "honest"]
        assert h.in_flight("liar") == 0 and h.in_flight("honest") == 0
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok", rec


async def test_an_answer_with_a_lone_surrogate_fails_over(tmp_path: Path) -> None:
    def answer(node: FakeNode, model: str) -> httpx.Response:
        body: dict[str, Any] = chat_answer(model, node.node_id)
        if node.node_id == "liar":
            body["choices"][0]["message"]["content"] = "a\ud800"
        return httpx.Response(200, content=json.dumps(body).encode(),
                              headers={"content-type": "application/json"})  # fmt: skip

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
        })  # fmt: skip
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "honest", r.text
        assert strict_json.loads_object(r.content)["choices"][0]["message"]["content"] == "Hello!"


def _utf16_liar_stream() -> list[bytes]:
    """A chunk whose data is JSON in UTF-16 (``json.loads`` of bytes reads it, surrogates
    passed through): a raw lone surrogate code unit, no ``\\ud`` escape in its bytes."""
    honest = sse_chunks(MODEL, "liar", ["fine", " so far"])
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    chunk = {**base, "choices": [{"index": 0, "delta": {"content": "a\ud800"}}]}
    payload = json.dumps(chunk, ensure_ascii=False).encode("utf-16-le", "surrogatepass")
    assert b"\n" not in payload and b"\r" not in payload and b"\\ud" not in payload.lower()
    return [*honest[:1], b"data:" + payload + b"\n\n", *honest[1:]]


async def test_a_utf16_stream_chunk_with_a_raw_lone_surrogate_is_the_nodes_break(
    tmp_path: Path,
) -> None:
    """Tried 2026-12-05 (review32), held: the read looks for a surrogate only where the line
    holds a ``\\ud`` escape, and a UTF-16 line would hold it raw (``json.loads`` of bytes
    reads UTF-16, surrogates passed); ``strict_json.loads`` decodes a line as UTF-8 only, so
    it is not JSON, the node's break. Passed before and after."""

    def stream(node: FakeNode, model_asked: str) -> httpx.Response:
        if node.node_id == "liar":
            events = _utf16_liar_stream()
        else:
            events = sse_chunks(model_asked, node.node_id, ["lo", "!"])
        return httpx.Response(200, headers=SSE, content=b"".join(events))

    nodes = _Answers(stream)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
            "stream": True,
        })  # fmt: skip
        assert r.status_code == 200, r.text
        said = _said(r.text)  # every event JSON, the last [DONE]
        assert said == "lo!", said
        assert nodes.asked == ["liar", "honest"]
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok", rec
