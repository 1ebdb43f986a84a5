"""``mesh_continue``: a chat answer picked up mid-stream by another node (gateway failover)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.node.engines.base import GenerationRequest
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine
from LLM_Mesh.node.engines.sim import SimEngine
from tests.node.conftest import MODEL, asgi_client, sim_engine, started_service
from tests.node.engines.test_llama_cpp import FakeLlama, collect, fake_model
from tests.node.test_app import sse_events

MESSAGES = [{"role": "user", "content": "Say hi"}]


def chat(**kw: object) -> dict[str, object]:
    return {"model": MODEL, "messages": MESSAGES, "max_tokens": 40, **kw}


async def sim_text(engine: SimEngine, req: GenerationRequest) -> str:
    return "".join([d.text async for d in engine.stream(req, threading.Event())])


async def test_sim_continues_its_own_answer_seamlessly() -> None:
    eng = sim_engine(answer_tokens=12)
    whole = await sim_text(eng, GenerationRequest(kind="chat", model=MODEL, messages=MESSAGES))
    words = whole.split(" ")
    head = " ".join(words[:5])
    rest = await sim_text(
        eng, GenerationRequest(kind="chat", model=MODEL, messages=MESSAGES, continue_text=head)
    )
    assert head + rest == whole and rest.startswith(" ")
    # max_tokens bounds the new tokens only; the end is "length" then
    cut = [
        d
        async for d in eng.stream(
            GenerationRequest(
                kind="chat", model=MODEL, messages=MESSAGES, continue_text=head, max_tokens=3
            ),
            threading.Event(),
        )
    ]
    assert cut[-1].finish_reason == "length"
    assert cut[-1].usage is not None and cut[-1].usage.completion_tokens == 3


async def test_sim_continues_foreign_text_deterministically() -> None:
    eng = sim_engine(answer_tokens=6)
    r = GenerationRequest(kind="chat", model=MODEL, messages=MESSAGES, continue_text="Hello the")
    first, second = await sim_text(eng, r), await sim_text(eng, r)
    assert first == second and first.startswith(" ") and len(first.split()) == 6


async def test_llama_renders_the_prompt_then_the_partial_answer(tmp_path: Path) -> None:
    eng = LlamaCppEngine([fake_model(tmp_path)], n_ctx=256, llama_factory=FakeLlama)
    await eng.start()
    r = GenerationRequest(
        kind="chat", model=MODEL, messages=MESSAGES, max_tokens=2, continue_text=" Hi the"
    )
    await collect(eng, r)
    call = FakeLlama.instances[-1].calls[-1]
    assert call["prompt"] == "User: Say hi\nAssistant: Hi the"  # no new turn
    assert all((m.model_extra or {})["continuation"] is True for m in eng.models())
    await eng.close()


def test_continue_text_is_for_chat_only() -> None:
    with pytest.raises(ValueError, match="chat"):
        GenerationRequest(kind="completion", model=MODEL, prompt="p", continue_text="x")


async def test_node_continues_over_http_streamed_and_whole(settings: Settings) -> None:
    svc = await started_service(settings, sim_engine(answer_tokens=10))
    async with asgi_client(svc) as c:
        whole = (await c.post("/v1/chat/completions", json=chat())).json()
        text = whole["choices"][0]["message"]["content"]
        head = " ".join(text.split(" ")[:4])
        r = await c.post("/v1/chat/completions", json=chat(mesh_continue=head))
        assert r.status_code == 200, r.text
        assert head + r.json()["choices"][0]["message"]["content"] == text
        assert r.json()["usage"]["completion_tokens"] == 6
        s = await c.post("/v1/chat/completions", json=chat(mesh_continue=head, stream=True))
        events = sse_events(s.text)
        streamed = "".join(
            e["choices"][0]["delta"].get("content") or ""
            for e in events
            if isinstance(e, dict) and e.get("choices")
        )
        assert head + streamed == text and events[-1] == "[DONE]"
        reg = svc.registration().model_dump(mode="json")
        assert reg["models"][0]["continuation"] is True
    await svc.stop()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/chat/completions", chat(mesh_continue=["x"]), "must be a string"),
        (
            "/v1/completions",
            {"model": MODEL, "prompt": "p", "mesh_continue": "x"},
            "append the generated text",
        ),
    ],
)
async def test_bad_mesh_continue_is_400(
    client: httpx.AsyncClient, path: str, body: dict[str, object], message: str
) -> None:
    r = await client.post(path, json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "mesh_continue" and message in err["message"]


async def test_openai_engine_refuses_mesh_continue(settings: Settings) -> None:
    calls: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    eng = OpenAIUpstreamEngine("http://up.test", http_client=http, models=[MODEL])
    assert (eng.models()[0].model_extra or {})["continuation"] is False
    svc = await started_service(settings, eng)
    async with asgi_client(svc) as c:
        r = await c.post("/v1/chat/completions", json=chat(mesh_continue="Hi"))
    assert r.status_code == 400 and r.json()["error"]["param"] == "mesh_continue"
    assert "openai engine" in r.json()["error"]["message"] and not calls
    await svc.stop()
    await http.aclose()
