"""The node's HTTP app: OpenAI endpoints, SSE, errors, admission, /mesh endpoints."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.health_proof import check_proof, new_challenge
from LLM_Mesh.core.schemas import MeshMeta
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.service import NodeService
from tests.asgi import request_then_wait
from tests.node.conftest import (
    MODEL,
    asgi_client,
    no_sleep,
    node_id_in,
    sim_engine,
    started_service,
    wait_until,
)

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 20}
COMPLETION = {"model": MODEL, "prompt": "def fibonacci(n):", "max_tokens": 12}


def sse_events(text: str) -> list[Any]:
    """``data:`` payloads of an SSE body, JSON-decoded except ``[DONE]``."""
    out: list[Any] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


async def test_models_lists_the_engine_models(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    (m,) = body["data"]
    assert m["id"] == MODEL and m["object"] == "model"
    assert m["mesh"]["simulated"] is True and m["mesh"]["context_length"] == 32768


async def test_chat_answer_has_usage_and_mesh(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    r = await client.post("/v1/chat/completions", json=CHAT, headers={"X-Mesh-Request-Id": "r1"})
    assert r.status_code == 200, r.text
    assert r.headers["x-mesh-node"] == node_id_in(settings)
    body = r.json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert 0 < usage["completion_tokens"] <= 20
    mesh = MeshMeta.model_validate(body["mesh"])
    assert mesh.node_id == node_id_in(settings) and mesh.model == MODEL
    assert mesh.engine == "sim" and mesh.simulated is True
    assert mesh.request_id == "r1"
    assert mesh.completion_tokens == usage["completion_tokens"]
    assert mesh.latency_ms is not None and mesh.ttft_ms is not None


async def test_completion_answer_and_echo(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/completions", json=COMPLETION)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "text_completion"
    text = body["choices"][0]["text"]
    assert text
    r2 = await client.post("/v1/completions", json={**COMPLETION, "echo": True})
    assert r2.json()["choices"][0]["text"] == COMPLETION["prompt"] + text


async def test_chat_stream_matches_the_whole_answer(client: httpx.AsyncClient) -> None:
    whole = (await client.post("/v1/chat/completions", json=CHAT)).json()
    r = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    last = chunks[-1]
    assert last["choices"] == [] and "usage" in last and last["mesh"]["simulated"] is True
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == whole["choices"][0]["finish_reason"]
    assert last["usage"] == whole["usage"]


async def test_completion_stream(client: httpx.AsyncClient, settings: Settings) -> None:
    r = await client.post("/v1/completions", json={**COMPLETION, "stream": True})
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    assert {e["object"] for e in events[:-1]} == {"text_completion"}
    final = events[-2]
    assert final["choices"] == [] and final["usage"]["completion_tokens"] > 0
    assert final["mesh"]["node_id"] == node_id_in(settings)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'"text"', None),
        (json.dumps({"model": MODEL, "messages": []}).encode(), "messages"),
        (json.dumps({"model": MODEL, "messages": "hi"}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
        (json.dumps({**CHAT, "max_tokens": 10**9}).encode(), "max_tokens"),
        (json.dumps({**CHAT, "max_tokens": 0}).encode(), "max_tokens"),
        (json.dumps({**CHAT, "temperature": "hot"}).encode(), "temperature"),
        (json.dumps({**CHAT, "n": 3}).encode(), "n"),
        (json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode(),
         "messages.0.role"),
    ],
)  # fmt: skip
async def test_bad_chat_bodies_are_400_naming_the_problem(
    client: httpx.AsyncClient, body: bytes, param: str | None
) -> None:
    r = await client.post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"]
    if param is not None:
        assert err["param"] == param
        assert param.split(".")[0] in err["message"]


async def test_bad_completion_bodies_are_400(client: httpx.AsyncClient) -> None:
    for body in (
        {"model": MODEL},
        {"model": MODEL, "prompt": ["a", "b"]},
        {"model": MODEL, "prompt": 5},
    ):
        r = await client.post("/v1/completions", json=body)
        assert r.status_code == 400, (body, r.text)


async def test_unknown_model_is_404_listing_models(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json={**CHAT, "model": "mistral-7b"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and err["available"] == [MODEL]
    assert MODEL in err["message"]


async def test_context_too_long_is_400(settings: Settings) -> None:
    svc = await started_service(settings, sim_engine(context_length=64))
    async with asgi_client(svc) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "max_tokens": 100})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "context_length_exceeded"
        long = {"model": MODEL, "prompt": "word " * 400, "max_tokens": 8}
        r = await c.post("/v1/completions", json=long)
        assert r.json()["error"]["code"] == "context_length_exceeded"
    await svc.stop()


async def test_engine_failure_is_500_in_openai_shape(settings: Settings) -> None:
    svc = await started_service(settings, sim_engine(failure_rate=1.0))
    async with asgi_client(svc) as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "engine_error"
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 500  # failed before the first token: a plain error
    assert svc.admission.in_flight == 0 and svc.requests_failed == 2
    await svc.stop()


async def test_failure_mid_stream_ends_with_an_error_event(settings: Settings) -> None:
    svc = await started_service(settings, sim_engine(failure_rate=1.0, fail_after_tokens=3))
    async with asgi_client(svc) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.status_code == 200
    events = sse_events(r.text)
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "engine_error"
    assert svc.admission.in_flight == 0
    await svc.stop()


class Gate:
    """A sim ``sleep`` that blocks until opened."""

    def __init__(self) -> None:
        self.open = asyncio.Event()

    async def __call__(self, _s: float) -> None:
        await self.open.wait()


async def test_full_queue_is_429_with_retry_after(settings: Settings) -> None:
    gate = Gate()
    svc = await started_service(settings, sim_engine(sleep=gate), max_concurrency=1, max_queue=1)
    async with asgi_client(svc) as c:
        first = asyncio.create_task(c.post("/v1/chat/completions", json=CHAT))
        second = asyncio.create_task(c.post("/v1/chat/completions", json=CHAT))
        await wait_until(lambda: (svc.admission.in_flight, svc.admission.queued) == (1, 1))
        health = (await c.get("/mesh/health")).json()
        assert (health["in_flight"], health["queued"]) == (1, 1)
        r = await c.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 429
        # nothing measured yet: 2 ahead at the 1 s prior (the burst test below measures)
        assert r.headers["retry-after"] == "2"
        assert r.json()["error"]["code"] == "overloaded"
        gate.open.set()
        assert (await first).status_code == 200
        assert (await second).status_code == 200
    assert svc.admission.idle
    await svc.stop()


async def test_pause_resume_drain(client: httpx.AsyncClient, service: NodeService) -> None:
    r = await client.post("/mesh/admin/pause")
    assert r.json()["state"] == "paused"
    r = await client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert (await client.post("/mesh/admin/resume")).json()["state"] == "online"
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert (await client.post("/mesh/admin/drain")).json()["state"] == "draining"
    assert (await client.get("/mesh/health")).json()["state"] == "draining"
    assert (await client.post("/v1/completions", json=COMPLETION)).status_code == 503
    assert (await client.post("/mesh/admin/explode")).status_code == 400


async def test_admin_only_from_loopback(service: NodeService) -> None:
    async with asgi_client(service, client=("203.0.113.7", 5555)) as c:
        r = await c.post("/mesh/admin/pause")
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "forbidden"
    assert service.state.value == "online"


async def test_health_and_info(client: httpx.AsyncClient, settings: Settings) -> None:
    await client.post("/v1/chat/completions", json=CHAT)
    health = (await client.get("/mesh/health")).json()
    assert health == {
        "status": "ok",
        "state": "online",
        "in_flight": 0,
        "queued": 0,
        "models": [MODEL],
        "node_id": node_id_in(settings),
    }
    info = (await client.get("/mesh/info")).json()
    assert info["node_id"] == node_id_in(settings) and info["engine"] == "sim" and info["simulated"]
    assert info["hardware"]["cpu_count"] == 4
    assert info["requests_served"] == 1 and info["tokens_generated"] > 0
    assert "uptime_s" in info  # its value: test_service.py, on a clock the test moves


async def test_health_signs_the_registrys_challenge_from_anywhere(
    service: NodeService, settings: Settings
) -> None:
    """The registry's active check reaches the node from another machine: the health
    answer carries the node key's signature of the challenge, which the registry's rule
    accepts; without a challenge, or one for another node, it signs nothing."""
    ch = new_challenge("registry-x", node_id_in(settings), time.time(), secrets.token_bytes)
    async with asgi_client(service, client=("203.0.113.7", 5555)) as c:
        r = await c.get("/mesh/health", headers=ch.headers())
        assert r.status_code == 200 and r.json()["node_id"] == node_id_in(settings)
        assert check_proof(ch, r.headers) is None
        plain = await c.get("/mesh/health")
        assert plain.status_code == 200 and "x-mesh-health-signature" not in plain.headers
        other = {**ch.headers(), "X-Mesh-Health-Node": "node-another"}
        assert "x-mesh-health-signature" not in (await c.get("/mesh/health", headers=other)).headers


async def test_unknown_path_is_openai_shaped(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8801"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1111),
        "server": ("127.0.0.1", 8801),
    }


async def _drive_until_gone(app: Any, path: str, body: dict[str, Any], gone_after: Any) -> int:
    """Call the ASGI app directly; the client disconnects once ``gone_after()`` is true."""
    disconnect = asyncio.Event()
    state = {"chunks": 0}

    receive = request_then_wait(json.dumps(body).encode(), disconnect)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            state["chunks"] += 1

    async def watch() -> None:
        await wait_until(lambda: gone_after(state["chunks"]))
        disconnect.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(app(_scope(path), receive, send), 10)
    watcher.cancel()
    return int(state["chunks"])


async def _tiny_sleep(_s: float) -> None:
    await asyncio.sleep(0.001)


async def test_client_gone_mid_stream_stops_generation(settings: Settings) -> None:
    engine = sim_engine(answer_tokens=100_000, sleep=_tiny_sleep)
    svc = await started_service(settings, engine)
    app = create_node_app(svc)
    body = {**CHAT, "stream": True, "max_tokens": 30_000}
    await _drive_until_gone(app, "/v1/chat/completions", body, lambda chunks: chunks >= 10)
    emitted = engine.tokens_emitted
    await asyncio.sleep(0.05)
    assert engine.tokens_emitted == emitted, "generation went on after the client left"
    assert emitted < 1000
    assert svc.admission.in_flight == 0
    # the client hung up: not the node's failure (`llm-mesh node info` had said "1 failed")
    assert (svc.requests_failed, svc.requests_cancelled) == (0, 1)
    await svc.stop()


async def test_client_gone_during_a_whole_answer_stops_generation(settings: Settings) -> None:
    engine = sim_engine(answer_tokens=100_000, sleep=_tiny_sleep)
    svc = await started_service(settings, engine)
    app = create_node_app(svc)
    body = {**CHAT, "max_tokens": 30_000}
    await _drive_until_gone(app, "/v1/chat/completions", body, lambda _c: engine.tokens_emitted > 5)
    emitted = engine.tokens_emitted
    await asyncio.sleep(0.05)
    assert engine.tokens_emitted == emitted
    assert svc.admission.in_flight == 0
    assert (svc.requests_failed, svc.requests_cancelled) == (0, 1)
    assert svc.info()["requests_cancelled"] == 1
    await svc.stop()


async def test_client_gone_before_the_first_token_is_counted_cancelled(
    settings: Settings,
) -> None:
    # found 2026-12-03 (review of the llama.cpp abort): a client that hangs up while its
    # prompt is evaluated (before the first token: the long-prompt case the engine now
    # aborts) was counted a failed request of the node's, not a cancelled one
    async def slow(_s: float) -> None:
        await asyncio.sleep(5.0)

    engine = sim_engine(ttft_s=5.0, sleep=slow)
    svc = await started_service(settings, engine)
    app = create_node_app(svc)
    for body in ({**CHAT, "stream": True}, CHAT):
        await _drive_until_gone(
            app, "/v1/chat/completions", body, lambda _c: svc.admission.in_flight == 1
        )
    assert svc.admission.in_flight == 0 and engine.tokens_emitted == 0
    assert (svc.requests_failed, svc.requests_cancelled) == (0, 2)
    await svc.stop()


async def test_lifespan_starts_and_stops_the_service(tmp_path: Path) -> None:
    from tests.node.conftest import node_config

    svc = NodeService(node_config(), Settings(home=tmp_path), engine=sim_engine(sleep=no_sleep))
    app = create_node_app(svc)
    async with app.router.lifespan_context(app):
        assert svc.started
    assert not svc.started


async def test_client_gone_while_queued_leaves_the_queue(settings: Settings) -> None:
    """A client that leaves while waiting for a slot frees its place in the queue at once."""
    engine = sim_engine(sleep=_tiny_sleep)
    svc = await started_service(settings, engine, max_concurrency=1, max_queue=1)
    app = create_node_app(svc)
    await svc.admission.acquire()  # the only slot is busy
    body = {**CHAT, "max_tokens": 5}
    call = asyncio.create_task(
        _drive_until_gone(app, "/v1/chat/completions", body, lambda _c: svc.admission.queued == 1)
    )
    await asyncio.wait_for(asyncio.shield(call), 3)  # returns although the slot stays busy
    assert svc.admission.queued == 0
    svc.admission.release()
    assert svc.admission.in_flight == 0
    assert engine.tokens_emitted == 0, "a request whose client left was still generated"
    await svc.stop()


async def test_cancelled_whole_answer_frees_its_slot(settings: Settings) -> None:
    """A request task cancelled mid-generation (e.g. at shutdown) gives its slot back."""
    engine = sim_engine(answer_tokens=100_000, sleep=_tiny_sleep)
    svc = await started_service(settings, engine)
    app = create_node_app(svc)
    body = {**CHAT, "max_tokens": 30_000}
    call = asyncio.create_task(
        _drive_until_gone(app, "/v1/chat/completions", body, lambda _c: False)
    )
    await wait_until(lambda: engine.tokens_emitted > 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    emitted = engine.tokens_emitted
    await asyncio.sleep(0.05)
    assert engine.tokens_emitted == emitted
    assert svc.admission.in_flight == 0
    assert svc.requests_failed == 1
    await svc.stop()


async def test_a_burst_is_told_to_come_back_when_the_queue_has_drained(settings: Settings) -> None:
    """Defect 11: 20 streams at once at a node with 1 slot and 8 places in line.

    Each request holds its slot for 2 s (virtual). The 11 refused must be told
    18 s (1 running + 8 queued at the measured 2 s each), not ``Retry-After: 1``.
    """
    from LLM_Mesh.node.engines.sim import SimEngine
    from tests.node.conftest import node_config

    now = [0.0]
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()
        now[0] += seconds

    engine = SimEngine([MODEL], ttft_s=2.0, tokens_per_s=1000.0, answer_tokens=1, sleep=gated_sleep)
    svc = NodeService(
        node_config(max_concurrency=1, max_queue=8), settings, engine=engine, clock=lambda: now[0]
    )
    await svc.start()
    body = {**CHAT, "stream": True}
    async with asgi_client(svc) as c:
        gate.set()
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 200  # measured
        gate.clear()
        burst = [asyncio.create_task(c.post("/v1/chat/completions", json=body)) for _ in range(20)]
        done: set[asyncio.Task[httpx.Response]] = set()
        pending = set(burst)
        while len(done) < 11:
            finished, pending = await asyncio.wait(
                pending, timeout=10, return_when=asyncio.FIRST_COMPLETED
            )
            assert finished, "the refused requests were not answered"
            done |= finished
        refused = [t.result() for t in done]
        assert [r.status_code for r in refused] == [429] * 11
        assert (svc.admission.in_flight, svc.admission.queued) == (1, 8)
        assert {r.headers["retry-after"] for r in refused} == {"18"}
        assert {r.json()["error"]["wait_s"] for r in refused} == {18.0}
        gate.set()
        served = await asyncio.gather(*pending)
        assert [r.status_code for r in served] == [200] * 9
    await svc.stop()


async def test_earnings_from_the_node_loopback_only_and_only_when_registered(
    service: NodeService,
) -> None:
    async with asgi_client(service, client=("203.0.113.7", 5555)) as c:
        r = await c.get("/mesh/earnings")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    async with asgi_client(service) as c:
        r = await c.get("/mesh/earnings")  # register = false: nothing to ask
        assert r.status_code == 400 and "register" in r.json()["error"]["message"]
        assert (await c.get("/mesh/earnings", params={"days": 0})).status_code == 400


async def test_logprobs_in_both_shapes_and_simulated(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/completions", json={**COMPLETION, "logprobs": 3})
    body = r.json()
    choice = body["choices"][0]
    lp = choice["logprobs"]
    assert body["mesh"]["simulated"] is True
    assert "".join(lp["tokens"]) == choice["text"]
    assert len(lp["token_logprobs"]) == len(lp["tokens"]) == len(lp["top_logprobs"])
    assert all(len(t) <= 3 for t in lp["top_logprobs"])
    assert lp["text_offset"][0] == 0
    again = (await client.post("/v1/completions", json={**COMPLETION, "logprobs": 3})).json()
    assert again["choices"][0]["logprobs"] == lp  # deterministic
    c = await client.post(
        "/v1/chat/completions", json={**CHAT, "logprobs": True, "top_logprobs": 2}
    )
    content = c.json()["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == c.json()["choices"][0]["message"]["content"]
    assert all(len(e["top_logprobs"]) <= 2 and e["bytes"] for e in content)
    plain = await client.post("/v1/completions", json=COMPLETION)
    assert plain.json()["choices"][0]["logprobs"] is None
    no = await client.post("/v1/chat/completions", json={**CHAT, "top_logprobs": 2})
    assert no.status_code == 400  # top_logprobs without logprobs: refused, as OpenAI does
    assert no.json()["error"]["param"] == "top_logprobs"  # (was ignored: found 2026-12-05)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/v1/completions", {"logprobs": 21}),
        ("/v1/completions", {"logprobs": -1}),
        ("/v1/chat/completions", {"logprobs": True, "top_logprobs": 50}),
    ],
)
async def test_bad_logprobs_are_400(
    client: httpx.AsyncClient, path: str, extra: dict[str, Any]
) -> None:
    base = COMPLETION if path == "/v1/completions" else CHAT
    r = await client.post(path, json={**base, **extra})
    assert r.status_code == 400
