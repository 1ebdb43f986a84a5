"""The node's measured speed per model (``core/measured_speed.py``) in ``/mesh/info``: what
its own answers measured since it started, on a clock the simulated engine's sleeps move
(so the figures are exact); simulated ones say so."""

from __future__ import annotations

import json
from typing import Any

import httpx

from LLM_Mesh.config import Settings
from LLM_Mesh.core.measured_speed import MIN_MEASURED_TOKENS
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.service import NodeService
from tests.node.conftest import MODEL, asgi_client, node_config, sim_engine


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _chat(max_tokens: int, stream: bool = False) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Tell me a long story about a cat"}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


async def _measured(c: httpx.AsyncClient) -> Any:
    info = (await c.get("/mesh/info")).json()
    (model,) = info["models"]
    assert model["id"] == MODEL
    return model["measured"]


async def test_info_carries_what_the_answers_measured(settings: Settings) -> None:
    clock = Clock()
    engine = sim_engine(ttft_s=0.25, tokens_per_s=40.0, sleep=clock.sleep)
    svc = NodeService(
        node_config(), settings, engine=engine, clock=clock, hardware=Hardware(cpu_count=2)
    )
    await svc.start()
    try:
        async with asgi_client(svc) as c:
            assert await _measured(c) is None  # before any answer
            # too few tokens to measure: answered, counted served, not measured
            short = await c.post("/v1/chat/completions", json=_chat(MIN_MEASURED_TOKENS - 1))
            assert short.status_code == 200
            assert short.json()["usage"]["completion_tokens"] < MIN_MEASURED_TOKENS
            assert await _measured(c) is None
            r = await c.post("/v1/chat/completions", json=_chat(32))
            mesh = r.json()["mesh"]
            assert r.json()["usage"]["completion_tokens"] >= MIN_MEASURED_TOKENS
            measured = await _measured(c)
            assert measured == {
                "answers": 1,
                "tokens_per_s": mesh["tokens_per_s"],
                "ttft_ms": mesh["ttft_ms"],
                "latest_tokens_per_s": mesh["tokens_per_s"],
                "latest_ttft_ms": mesh["ttft_ms"],
                "simulated": True,
            }
            # the engine sleeps 0.25 s, then 1/40 s a token (the first token is not decode time)
            assert measured["ttft_ms"] >= 250.0 and 38.0 < measured["tokens_per_s"] < 45.0
            streamed = await c.post("/v1/chat/completions", json=_chat(32, stream=True))
            assert streamed.status_code == 200 and "[DONE]" in streamed.text
            again = await _measured(c)
            assert again["answers"] == 2
            info = (await c.get("/mesh/info")).json()
            assert info["requests_served"] == 3
    finally:
        await svc.stop()


class Ticking(Clock):
    """A clock that moves a microsecond each time it is read, as a real one does."""

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now


async def test_a_one_token_answer_states_no_speed(settings: Settings) -> None:
    """Found 2026-12-07 (money41): ``llm-mesh ask "hi" --max-tokens 1`` printed
    ``19914.8 tok/s · 1 token``: one token over the microseconds between its own arrival and
    the end. A single token has no decode time (the docstring of core/measured_speed.py):
    its ``mesh.tokens_per_s`` is None, as for an answer with no decode time at all."""
    clock = Ticking()
    engine = sim_engine(ttft_s=0.05, tokens_per_s=40.0, sleep=clock.sleep)
    svc = NodeService(
        node_config(), settings, engine=engine, clock=clock, hardware=Hardware(cpu_count=2)
    )
    await svc.start()
    try:
        async with asgi_client(svc) as c:
            for stream in (False, True):
                r = await c.post("/v1/chat/completions", json=_chat(1, stream=stream))
                assert r.status_code == 200, r.text
                last = r.json() if not stream else _last_mesh(r.text)
                assert last["usage"]["completion_tokens"] == 1, last
                assert last["mesh"]["tokens_per_s"] is None, last["mesh"]
    finally:
        await svc.stop()


def _last_mesh(sse: str) -> Any:
    datas = [ln[6:] for ln in sse.splitlines() if ln.startswith("data: {")]
    return next(d for d in map(json.loads, reversed(datas)) if d.get("mesh"))
