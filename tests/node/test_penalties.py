"""``presence_penalty`` / ``frequency_penalty`` at the node (found 2026-12-05: accepted and
ignored everywhere): validated in OpenAI's range (400 naming the field), passed to the
engine, forwarded by the openai engine, and on the sim engine a simulated effect."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine
from tests.node.conftest import MODEL, sim_engine

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 40}
COMPLETION = {"model": MODEL, "prompt": "def fibonacci(n):", "max_tokens": 40}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
@pytest.mark.parametrize("field", ["presence_penalty", "frequency_penalty"])
@pytest.mark.parametrize("value", [2.5, -3, "high"])
async def test_a_penalty_out_of_range_is_400_naming_it(
    client: httpx.AsyncClient, path: str, field: str, value: Any
) -> None:
    body = CHAT if "chat" in path else COMPLETION
    r = await client.post(path, json={**body, field: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == field


def _text(path: str, answer: dict[str, Any]) -> str:
    choice = answer["choices"][0]
    return str(choice["message"]["content"] if "chat" in path else choice["text"])


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_a_penalty_reaches_the_engine(client: httpx.AsyncClient, path: str) -> None:
    """The sim engine's simulated penalty: another answer, no word repeated."""
    body = CHAT if "chat" in path else COMPLETION
    plain = _text(path, (await client.post(path, json=body)).json())
    zero = {**body, "presence_penalty": 0, "frequency_penalty": 0.0}
    assert _text(path, (await client.post(path, json=zero)).json()) == plain
    for field in ("presence_penalty", "frequency_penalty"):
        r = await client.post(path, json={**body, field: 1.5})
        assert r.status_code == 200, r.text
        penalised = _text(path, r.json())
        assert penalised != plain
        words = penalised.split()[:31]  # the sim's vocabulary: 31 words
        assert len(set(words)) == len(words)
        assert r.json()["mesh"]["simulated"] is True


async def test_the_sim_engine_repeats_words_unpenalised() -> None:
    """What the penalised answer above is compared with: the plain one does repeat."""
    r = GenerationRequest(kind="completion", model=MODEL, prompt="p", max_tokens=40)
    eng = sim_engine(answer_tokens=40)
    words = "".join([d.text async for d in eng.stream(r, threading.Event())]).split()
    assert len(set(words)) < len(words)


async def test_the_openai_engine_forwards_the_penalties() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        chunk = {"choices": [{"text": "x", "finish_reason": "stop"}]}
        return httpx.Response(200, content=b"data: " + json.dumps(chunk).encode() + b"\n\n",
                              headers={"content-type": "text/event-stream"})  # fmt: skip

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    eng = OpenAIUpstreamEngine("http://up.test:8080", http_client=client, models=["qwen"])
    r = GenerationRequest(kind="completion", model="qwen", prompt="p",
                          presence_penalty=0.5, frequency_penalty=-1.0)  # fmt: skip
    [d async for d in eng.stream(r, threading.Event())]
    assert seen[0]["presence_penalty"] == 0.5 and seen[0]["frequency_penalty"] == -1.0
    await client.aclose()
