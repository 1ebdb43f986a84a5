"""docs/security.md, "Privacy": a node's upstream (``--engine openai``: vLLM, llama.cpp's
server, Ollama...) that quotes the prompt in whatever it answers (an error body, a refusal,
an error event mid-stream, a chunk that is not JSON, a body that is not JSON) never puts
it into the node's log, at any level."""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine
from tests.node.conftest import MODEL, asgi_client, started_service


def _said(request: httpx.Request) -> str:
    body = json.loads(request.content)
    return " ".join(str(m.get("content")) for m in body.get("messages", []))


def _sse(*events: Any) -> bytes:
    return b"".join(
        b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n"
        for e in events
    )


def _answer(how: str, request: httpx.Request) -> httpx.Response:
    said = _said(request)
    sse = {"content-type": "text/event-stream"}
    first = {"choices": [{"index": 0, "delta": {"content": "a"}}]}
    if how == "error_event":
        event = {"error": {"message": f"engine crashed on: {said}", "code": "engine_error"}}
        return httpx.Response(200, headers=sse, content=_sse(first, event))
    if how == "chunk_not_json":
        return httpx.Response(200, headers=sse, content=_sse(first, f"{{{said}".encode()))
    if how == "refusal_400":
        err = {"error": {"message": f"too long: {said}", "type": "invalid_request_error",
                         "param": said, "code": "context_length_exceeded"}}  # fmt: skip
        return httpx.Response(400, json=err)
    if how == "text_500":
        return httpx.Response(500, content=f"Traceback: prompt={said}".encode())
    if how == "text_400":
        return httpx.Response(400, content=f"bad request: {said}".encode())
    if how == "not_json_200":
        return httpx.Response(200, content=f"<html>{said}</html>".encode())
    raise AssertionError(how)


HOW = ["error_event", "chunk_not_json", "refusal_400", "text_500", "text_400", "not_json_200"]


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_upstream_quoting_the_prompt_is_never_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture, how: str, stream: bool
) -> None:
    marker = f"PRIVACY-{secrets.token_hex(8)}"
    caplog.set_level(logging.DEBUG)
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: _answer(how, r)))
    engine = OpenAIUpstreamEngine(
        "http://up.test:8080", http_client=client, api_key="k", models=[MODEL]
    )
    svc = await started_service(settings, engine)
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"my secret {marker}"}],
            "max_tokens": 5, "stream": stream}  # fmt: skip
    try:
        async with asgi_client(svc) as c:
            r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code >= 400 or stream or how == "not_json_200", r.text
        leaks = [rec.getMessage() for rec in caplog.records if marker in rec.getMessage()]
        leaks += [repr(rec.args) for rec in caplog.records if marker in repr(rec.args)]
        assert leaks == []
    finally:
        await svc.stop()
