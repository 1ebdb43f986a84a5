"""The real gemma-3-270m engine's ``usage`` passes the canary's count rule (``core/canary_usage.py``).

A node on this project's llama.cpp engine (``NodeService`` and its app, no sockets) is
asked probe bodies of each kind (completion and chat, streamed or not, a short and a long
``max_tokens``, a ``stop`` list, a multi-turn chat; streamed with a ``stop`` list,
``stream_options.include_usage``, ``n: 1``, a limit past the reference's) and the reference's body for each, as
the prober asks a verifier hosting the same file; :func:`~LLM_Mesh.registry.canary.probe_counts`,
what the prober runs, finds every honest count within its bound, and the same answers with
counts at a byte a token out of it. The spread over the whole pool:
``benchmarks/bench_canary_usage.py`` (docs/security.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.canary import answer_from_openai, truncated
from LLM_Mesh.core.canary_shape import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    DEFAULT_MIX,
    Shape,
    reference_shape,
    render,
)
from LLM_Mesh.core.canary_usage import StatedUsage
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.service import NodeService
from LLM_Mesh.registry.canary import probe_counts, stream_answer
from tests.node.engines.test_llama_cpp import HAVE_MODEL

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing"),
]

MODEL = "gemma-3-270m"
SHAPES = [
    Shape(path=COMPLETIONS_PATH, max_tokens=16),
    Shape(path=COMPLETIONS_PATH, stream=True, max_tokens=20),
    Shape(path=COMPLETIONS_PATH, max_tokens=32, sampling=(("stop", ("\n",)),)),
    Shape(path=CHAT_PATH, max_tokens=24),
    Shape(path=CHAT_PATH, stream=True, max_tokens=12),
    Shape(path=CHAT_PATH, max_tokens=32, sampling=(("stop", ("\n\n",)),),
          system="You are a helpful assistant.", history=(("Hi", "Sure, here you go."),)),
    # streamed as the mix draws them too (simusage31): a stop list, include_usage, ``n``,
    # a multi-turn chat, a limit past the reference's (its count then held to the prompt)
    Shape(path=COMPLETIONS_PATH, stream=True, max_tokens=32, sampling=(("stop", ("\n",)),),
          extras=(("stream_options", {"include_usage": True}),)),
    Shape(path=CHAT_PATH, stream=True, max_tokens=32, sampling=(("stop", ("\n\n",)),),
          system="You are a helpful assistant.", history=(("Hi", "Sure, here you go."),),
          extras=(("n", 1), ("stream_options", {"include_usage": True}))),
    Shape(path=COMPLETIONS_PATH, stream=True, max_tokens=64),
]  # fmt: skip
PROMPTS = ["def fibonacci(n):"]  # one: every generation here is the real model on the CPU
#: (the spread over the whole pool: ``benchmarks/bench_canary_usage.py``)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
    from LLM_Mesh.node.model_files import resolve_model

    model = resolve_model(MODEL, Settings(home=Path("/nonexistent-llm-mesh-home")))
    svc = NodeService(
        NodeConfig(engine="llama-cpp", models=[MODEL], register=False),
        Settings(home=tmp_path / "home", registry_url="http://registry.test"),
        engine=LlamaCppEngine([model], n_ctx=1024),
        hardware=Hardware(cpu_count=2, memory_bytes=8 << 30),
    )
    await svc.start()
    transport = httpx.ASGITransport(app=create_node_app(svc), client=("127.0.0.1", 4321))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8801") as c:
            yield c
    finally:
        await svc.stop()


async def _post(c: httpx.AsyncClient, path: str, raw: bytes) -> httpx.Response:
    r = await c.post(path, content=raw, headers={"content-type": "application/json"}, timeout=300)
    assert r.status_code == 200, r.text
    return r


async def test_the_real_engines_counts_pass_and_a_byte_a_token_fails(
    node: httpx.AsyncClient,
) -> None:
    inflated_caught = 0
    for prompt in PROMPTS:
        for shape in SHAPES:
            rs = reference_shape(shape, DEFAULT_MIX)
            whole = answer_from_openai(
                (await _post(node, rs.path, render(rs, MODEL, prompt))).json()
            )
            assert whole.usage is not None and whole.tokens
            cut = truncated(whole, shape.max_tokens)
            r = await _post(node, shape.path, render(shape, MODEL, prompt))
            if shape.stream:
                text, usage = stream_answer(r.content)
                got = None
            else:
                got = answer_from_openai(r.json())
                text, usage = got.text, got.usage
            assert usage is not None
            verdict = probe_counts(got, text, usage, whole, cut, shape)
            assert verdict is None, (prompt, shape, usage, verdict)
            # the same answer at a byte a token (+ 16), its prompt at the estimate's bound
            body = json.loads(render(shape, MODEL, prompt))
            prompt_bytes = len(json.dumps(body.get("messages") or prompt).encode())
            lied = StatedUsage(prompt_bytes + 16, len(text.encode()) + 16)
            if got is not None:
                got = replace(got, usage=lied)
            inflated_caught += probe_counts(got, text, lied, whole, cut, shape) is not None
    assert inflated_caught == len(PROMPTS) * len(SHAPES)
