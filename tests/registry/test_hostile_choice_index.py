"""A node answering in choice indexes the request did not ask for (outside ``[0, n)``, not
an integer, or twice the same index) breaks the protocol: its part breaks as other
malformed output does (``core/answer_text.choice_fault``), its text is never relayed,
counted, priced or hashed, and another node answers. See docs/security.md, "Hostile
nodes: values a node chooses" (found 2026-12-05, ``choiceidx31``: a stream of ``index: 1``
chunks to a request of ``n`` 1 passed the stream floor, reached the client and the
receipt's output hash, and was paid its 16 tokens of slack a choice, while the client's
choice 0 got nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.core import strict_json
from tests.registry.helpers import FakeNode, chat_answer, rank, running, sse_chunks
from tests.registry.test_hostile_node_json import _Answers

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"
SSE = {"content-type": "text/event-stream"}
SECRET = "SECRETWORD"

BAD_INDEXES: dict[str, Any] = {
    "one": 1, "negative": -1, "huge": 2**70, "string": "0", "float": 0.0, "bool": False,
    "null": None,
}  # fmt: skip


def _ev(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _liar_stream(choices: list[dict[str, Any]]) -> list[bytes]:
    """A whole stream whose content chunks carry ``choices`` (role, finish, usage: index 0)."""
    honest = sse_chunks(MODEL, "liar", [])
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    tokens = [_ev({**base, "choices": choices}) for _ in range(6)]
    return honest[:1] + tokens + honest[1:]


def _chunk_choices(case: str) -> list[dict[str, Any]]:
    if case == "duplicate":
        return [{"index": 0, "delta": {"content": SECRET}}] * 2
    return [{"index": BAD_INDEXES[case], "delta": {"content": SECRET}}]


def _said(text: str) -> str:
    lines = [ln[5:].strip() for ln in text.split("\n") if ln.startswith("data:")]
    assert lines[-1] == "[DONE]", text[-300:]
    chunks = [strict_json.loads_object(ln) for ln in lines[:-1]]
    return "".join(
        (c["choices"][0].get("delta") or {}).get("content") or ""
        for c in chunks
        if c.get("choices")
    )


@pytest.mark.parametrize("case", [*BAD_INDEXES, "duplicate"])
async def test_a_stream_in_another_choice_index_is_the_nodes_break(
    tmp_path: Path, case: str
) -> None:
    def stream(node: FakeNode, model: str) -> httpx.Response:
        if node.node_id == "liar":
            events = _liar_stream(_chunk_choices(case))
        else:
            events = sse_chunks(model, node.node_id, ["lo", "!"])
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
        # before: the liar's 6 chunks of index 1 reached the client, its part passed the
        # floor (output) and was paid (16 tokens of slack), the receipt hashed that text
        assert SECRET not in r.text
        assert nodes.asked == ["liar", "honest"]
        assert _said(r.text) == "lo!"
        assert h.in_flight("liar") == 0
        await h.runtime.writer.flush()
        (rec,) = h.store.requests
        assert rec.outcome == "ok" and rec.completion_tokens == 2


def _answer_choices(case: str) -> list[dict[str, Any]]:
    def choice(index: Any, text: str = SECRET) -> dict[str, Any]:
        return {"index": index, "message": {"role": "assistant", "content": text},
                "finish_reason": "stop"}  # fmt: skip

    if case == "duplicate":
        return [choice(0), choice(0)]
    if case == "n_plus_one":  # choice 0 and one more the request did not ask for
        return [choice(0, "fine"), choice(1)]
    if case == "not_an_object":
        return ["x"]  # type: ignore[list-item]
    return [choice(BAD_INDEXES[case])]


@pytest.mark.parametrize("case", [*BAD_INDEXES, "duplicate", "n_plus_one", "not_an_object"])
async def test_an_answer_in_another_choice_index_fails_over(tmp_path: Path, case: str) -> None:
    def answer(node: FakeNode, model: str) -> httpx.Response:
        body = chat_answer(model, node.node_id)
        if node.node_id == "liar":
            body["choices"] = _answer_choices(case)
        return httpx.Response(200, json=body)

    nodes = _Answers(answer)
    async with running(tmp_path, nodes=nodes, max_attempts=3) as h:
        await h.register("liar")
        await h.register("honest")
        rank(h.runtime.routing.router, ["liar", "honest"], MODEL, h.clock())
        r = await h.client.post(CHAT, json={
            "model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
        })  # fmt: skip
        # before: the liar's answer went out (its receipt over choice 1's text), priced
        assert r.status_code == 200 and r.headers["x-mesh-node"] == "honest", r.text
        assert SECRET not in r.text and nodes.asked == ["liar", "honest"]
        assert strict_json.loads_object(r.content)["choices"][0]["message"]["content"] == "Hello!"
