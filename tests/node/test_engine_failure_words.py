"""What a node's answer says of an engine failure: never the operator's internals.

A node's 5xx message goes to the gateway, which passes it on to the client when no node
answers (``registry/send.py``): an upstream's address (a LAN host, credentials in its
URL), a model file's path (the operator's user name) or an upstream's own error body
must stay in the node's log, the operator's, and out of the answer.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import HostedModel
from LLM_Mesh.node.engines.base import CancelFlag, Delta, Engine, GenerationRequest
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine
from tests.node.conftest import MODEL, asgi_client, started_service

SECRET = "s3cret-pw"
HOST = "10.9.8.7"
UPSTREAM = f"http://op:{SECRET}@{HOST}:8000"
FILE = "/home/alice-operator/.llm-mesh/models/gemma.gguf"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 5}
INTERNALS = (SECRET, HOST, "alice-operator", "Traceback", "stack-of-the-upstream")


def upstream(handler: Callable[[httpx.Request], httpx.Response]) -> OpenAIUpstreamEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIUpstreamEngine(UPSTREAM, http_client=client, models=[MODEL])


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(f"[Errno 111] Connection refused to {HOST}", request=request)


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def server_error(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, text="Traceback: stack-of-the-upstream at /srv/vllm/engine.py")


def mid_stream(_request: httpx.Request) -> httpx.Response:
    body = b'data: {"choices": [{"delta": {"content": "a"}}]}\n\ndata: not json stack-of-the-upstream\n\n'
    return httpx.Response(200, content=body)


class _FileEngine(Engine):
    """An engine whose model file fails to load on demand, as llama-cpp-python says it."""

    name = "llama-cpp"

    def models(self) -> list[HostedModel]:
        return [HostedModel(id=MODEL, engine=self.name, context_length=4096)]

    async def stream(self, req: GenerationRequest, cancel: CancelFlag) -> AsyncIterator[Delta]:
        raise ValueError(f"Failed to load model from file: {FILE}")
        yield Delta("")  # pragma: no cover - an async generator


def _said(r: httpx.Response) -> str:
    return r.text


@pytest.mark.parametrize(
    "make",
    [
        lambda: upstream(refused),
        lambda: upstream(timed_out),
        lambda: upstream(server_error),
        lambda: upstream(mid_stream),
        _FileEngine,
    ],
    ids=["unreachable", "timeout", "http_500", "bad_chunk", "model_file"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_engine_failure_names_no_address_path_or_upstream_body(
    settings: Settings, caplog: pytest.LogCaptureFixture, make: Callable[[], Engine], stream: bool
) -> None:
    caplog.set_level(logging.INFO)
    svc = await started_service(settings, make())
    try:
        async with asgi_client(svc) as c:
            r = await c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
        assert r.status_code >= 500 or (stream and r.status_code == 200), r.text
        if r.status_code == 200:  # failed after the first token: the error event
            last = [e for e in r.text.split("\n\n") if e.startswith("data: ")][-1]
            error = json.loads(last[6:])["error"]
        else:
            error = r.json()["error"]
        assert error["code"] in ("engine_error", "upstream_error", "upstream_timeout")
        for word in INTERNALS:
            assert word not in _said(r), (word, r.text)
        # the operator still learns what failed, from the node's log (printable, no secret)
        logged = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("LLM_Mesh"))
        assert HOST in logged or "alice-operator" in logged
        assert SECRET not in logged
        assert svc.admission.in_flight == 0
    finally:
        await svc.stop()


async def test_an_upstream_refusal_is_still_passed_on() -> None:
    """(no attack) a 4xx the upstream gives (a bad request) keeps its words."""
    from LLM_Mesh.errors import InvalidRequest

    eng = upstream(lambda r: httpx.Response(400, json={"error": {"message": "bad temperature"}}))
    req = GenerationRequest(kind="chat", model=MODEL, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(InvalidRequest, match="bad temperature"):
        async for _ in eng.stream(req, threading.Event()):
            pass
