"""What the ``openai`` engine forwards to the operator's upstream of a chat request that the
gateway signed (any client of the mesh chose its messages): the text the node counts, no
content part that makes a media-fetching upstream (vLLM, a llama.cpp server with a
projector) reach an address on the operator's network."""

from __future__ import annotations

import json
import threading

import httpx

from LLM_Mesh.core.schemas import ChatCompletionRequest
from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine

SSE = b'data: {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
LAN = ["http://169.254.169.254/latest/meta-data/", "http://192.168.1.1/admin", "file:///etc/passwd"]


def _request() -> GenerationRequest:
    """As the node's app builds it from the signed body (``node/app.py``)."""
    body = ChatCompletionRequest.model_validate({
        "model": "qwen",
        "messages": [
            {"role": "system", "content": "be brief", "name": "x", "mesh_note": LAN[1]},
            {"role": "user", "content": [
                {"type": "text", "text": "what is in "},
                {"type": "image_url", "image_url": {"url": LAN[0]}},
                {"type": "text", "text": "this?"},
                {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}},
                {"type": "file", "file": {"file_data": "", "filename": LAN[2]}},
                {"type": "video_url", "video_url": {"url": LAN[1]}},
            ]},
        ],
    })  # fmt: skip
    messages = [m.model_dump(mode="json", exclude_none=True) for m in body.messages]
    return GenerationRequest(kind="chat", model="qwen", messages=messages, max_tokens=4)


async def test_only_the_counted_text_of_a_chat_reaches_the_upstream() -> None:
    """Found 2026-12-03: the messages were forwarded as sent: an ``image_url`` part naming the
    metadata address or a LAN host reached the upstream, which fetches it."""
    seen: list[bytes] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, content=SSE, headers={"content-type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    eng = OpenAIUpstreamEngine("http://up.test:8080", http_client=client, models=["qwen"])
    req = _request()
    out = [d async for d in eng.stream(req, threading.Event())]
    assert [d.text for d in out] == ["ok", ""]
    sent = seen[0].decode()
    for address in ("169.254.169.254", "192.168.1.1", "/etc/passwd"):
        assert address not in sent, sent
    assert json.loads(sent)["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is in this?"},
    ]
    assert req.text_for_estimate() == "be brief\nwhat is in this?"  # what the node counted
