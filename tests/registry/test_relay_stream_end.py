"""Where the relay puts the final chunk's ``usage`` and ``mesh`` (found 2026-12-05).

Without ``stream_options.include_usage`` they ride on the last chunk with choices (no
``"choices": []`` chunk, which broke the naive openai SDK loop); with it, the stream's
shape is OpenAI's: the empty-choices chunk last. Completions and chat alike; a continuing
node's chunks, a stream that ends in an error, and a finish chunk that is not the last.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from LLM_Mesh.registry.relay import SseRelay, asks_usage
from LLM_Mesh.registry.stream_part import DATA, DONE, FAIL, Event

MESH = {"request_id": "req-1", "receipt": {"v": 3}}
USAGE = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def _ev(obj: dict[str, Any], *, parsed: bool = False, continued: bool = False) -> Event:
    raw = b"data: " + json.dumps(obj).encode()
    return Event(DATA, raw, obj if parsed or continued else None, continued)


def _text(piece: str, finish: str | None = None, ident: str = "cmpl-1") -> dict[str, Any]:
    return {"id": ident, "object": "text_completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "text": piece, "finish_reason": finish}]}  # fmt: skip


def _final(ident: str = "cmpl-1") -> dict[str, Any]:
    return {"id": ident, "object": "text_completion", "created": 1, "model": "m",
            "choices": [], "usage": dict(USAGE)}  # fmt: skip


async def _run(events: list[Event], *, usage_chunk: bool) -> list[Any]:
    async def source() -> AsyncGenerator[list[Event], None]:
        for ev in events:
            yield [ev]

    def finalize(obj: dict[str, Any], continued: bool) -> None:
        obj["mesh"] = dict(MESH)

    def on_error(body: dict[str, Any]) -> None:
        body["mesh"] = dict(MESH)

    relay = SseRelay(source(), finalize, on_error=on_error, usage_chunk=usage_chunk)
    sse = b"".join([chunk async for chunk in relay.events()]).decode()
    data = [ln[6:] for ln in sse.split("\n") if ln.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def _plain_stream() -> list[Event]:
    return [_ev(_text("de")), _ev(_text("f")), _ev(_text("", "stop")),
            _ev(_final(), parsed=True), Event(DONE)]  # fmt: skip


async def test_unasked_the_finish_chunk_carries_usage_and_mesh() -> None:
    chunks = await _run(_plain_stream(), usage_chunk=False)
    assert [c["choices"][0]["text"] for c in chunks] == ["de", "f", ""]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == USAGE and chunks[-1]["mesh"] == MESH
    assert all("mesh" not in c and "usage" not in c for c in chunks[:-1])


async def test_asked_the_empty_choices_chunk_stays_last() -> None:
    chunks = await _run(_plain_stream(), usage_chunk=True)
    assert chunks[-1]["choices"] == [] and chunks[-1]["mesh"] == MESH
    assert "usage" not in chunks[-2] and chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_a_finish_chunk_followed_by_more_choices_goes_out_in_order() -> None:
    events = [_ev(_text("a", "stop")), _ev(_text("b")), _ev(_final(), parsed=True), Event(DONE)]
    chunks = await _run(events, usage_chunk=False)
    assert [c["choices"][0]["text"] for c in chunks[:2]] == ["a", "b"]
    assert "mesh" not in chunks[0]
    assert chunks[-1]["choices"] == [] and chunks[-1]["mesh"] == MESH  # nothing to carry it


async def test_a_comment_between_the_finish_chunk_and_the_final_one_passes_it() -> None:
    events = [_ev(_text("a", "stop")), Event(DATA, b": keep-alive"),
              _ev(_final(), parsed=True), Event(DONE)]  # fmt: skip
    chunks = await _run(events, usage_chunk=False)
    assert len(chunks) == 1 and chunks[0]["mesh"] == MESH and chunks[0]["usage"] == USAGE


async def test_a_continuing_nodes_finish_chunk_carries_them_under_the_first_id() -> None:
    events = [_ev(_text("a"), parsed=True), _ev(_text("b", ident="x")),
              _ev(_text("c", "stop", ident="x"), continued=True),
              _ev(_final("x"), continued=True), Event(DONE)]  # fmt: skip
    chunks = await _run(events, usage_chunk=False)
    assert chunks[-1]["id"] == "cmpl-1" and chunks[-1]["choices"][0]["text"] == "c"
    assert chunks[-1]["mesh"] == MESH and chunks[-1]["usage"] == USAGE
    assert len(chunks) == 3


async def test_a_held_chunk_goes_out_before_an_error_and_before_done() -> None:
    error = {"error": {"message": "cut", "type": "api_error"}}
    events = [_ev(_text("a", "length")), Event(FAIL, error=error)]
    chunks = await _run(events, usage_chunk=False)
    assert chunks[0]["choices"][0]["text"] == "a" and chunks[1]["mesh"] == MESH
    chunks = await _run([_ev(_text("a", "stop")), Event(DONE)], usage_chunk=False)
    assert chunks[0]["choices"][0]["text"] == "a"


def test_asks_usage() -> None:
    assert asks_usage({"stream_options": {"include_usage": True}})
    assert not asks_usage({"stream_options": {"include_usage": False}})
    assert not asks_usage({"stream_options": None}) and not asks_usage({})
