"""A node's ``GET /metrics``: parsed with prometheus-client's parser; requests by model and
outcome (ok, error, cancelled, refused, rejected) and the histograms move with traffic; the
admission queue, state and loaded models are read at scrape time; per app; access."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI

from LLM_Mesh.config import Settings
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.service import NodeService
from tests.metrics_scrape import Scrape
from tests.node.conftest import (
    MODEL,
    NODE_URL,
    node_config,
    sim_engine,
    started_service,
    wait_until,
)
from tests.node.test_app import CHAT, Gate, _drive_until_gone, _tiny_sleep

LOOPBACK = ("127.0.0.1", 4321)


def on(app: FastAPI, peer: tuple[str, int] = LOOPBACK) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer)
    return httpx.AsyncClient(transport=transport, base_url=NODE_URL)


async def scrape(app: FastAPI) -> Scrape:
    async with on(app) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200, r.text
    return Scrape.parse(r.text)


async def test_answers_streams_and_refusals_are_counted(settings: Settings) -> None:
    svc = await started_service(settings)
    app = create_node_app(svc)
    async with on(app) as c:
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 200 and r.text.rstrip().endswith("[DONE]")
        r = await c.post("/v1/chat/completions", json={**CHAT, "model": "not-here-model"})
        assert r.status_code == 404
        assert (await c.post("/v1/chat/completions", json={**CHAT, "n": 99})).status_code == 400
        svc.pause()
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 503
        svc.resume()
    s = await scrape(app)
    assert s.value("llm_mesh_node_requests_total", model=MODEL, outcome="ok", code="") == 2
    assert s.value("llm_mesh_node_requests_total", model="", outcome="rejected",
                   code="model_not_found") == 1  # fmt: skip
    assert s.value("llm_mesh_node_requests_total", outcome="rejected", code="limit_exceeded") == 1
    assert s.value("llm_mesh_node_requests_total", model=MODEL, outcome="refused",
                   code="model_unavailable") == 1  # fmt: skip
    assert "not-here-model" not in s.label_values("llm_mesh_node_requests_total", "model")
    assert s.value("llm_mesh_node_request_duration_seconds_count", model=MODEL, outcome="ok") == 2
    assert s.value("llm_mesh_node_ttft_seconds_count", model=MODEL) == 2
    assert s.value("llm_mesh_node_admission_wait_seconds_count", model=MODEL) == 2
    assert s.value("llm_mesh_node_tokens_total", kind="completion") == svc.tokens_generated > 0
    assert s.value("llm_mesh_node_tokens_total", kind="prompt") == svc.prompt_tokens > 0
    assert s.value("llm_mesh_node_state", state="online") == 1
    assert s.value("llm_mesh_node_model_loaded", model=MODEL) == 1
    assert s.value("llm_mesh_node_info", node_id=svc.node_id, engine="sim", simulated="true") == 1
    await svc.stop()


async def test_tokens_per_second_when_generation_takes_time(settings: Settings) -> None:
    svc = await started_service(settings, sim_engine(sleep=_tiny_sleep))
    app = create_node_app(svc)
    async with on(app) as c:
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200
    s = await scrape(app)
    assert s.value("llm_mesh_node_tokens_per_second_count", model=MODEL) == 1
    assert s.value("llm_mesh_node_tokens_per_second_sum", model=MODEL) > 0
    await svc.stop()


async def test_engine_errors_before_and_after_the_first_token(settings: Settings) -> None:
    svc = await started_service(settings, sim_engine(failure_rate=1.0))
    app = create_node_app(svc)
    async with on(app) as c:
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 500
    await svc.stop()
    svc2 = await started_service(settings, sim_engine(failure_rate=1.0, fail_after_tokens=3))
    app2 = create_node_app(svc2)
    async with on(app2) as c:
        r = await c.post("/v1/chat/completions", json={**CHAT, "stream": True})
        assert r.status_code == 200 and '"engine_error"' in r.text
    s = await scrape(app)
    assert s.value("llm_mesh_node_requests_total", outcome="error", code="engine_error") == 1
    s2 = await scrape(app2)
    assert s2.value("llm_mesh_node_requests_total", model=MODEL, outcome="error",
                    code="engine_error") == 1  # fmt: skip
    assert s2.value("llm_mesh_node_request_duration_seconds_count", outcome="error") == 1
    assert s2.value("llm_mesh_node_ttft_seconds_count") == 0  # only answered requests
    await svc2.stop()


async def test_queue_gauges_and_a_full_queue(settings: Settings) -> None:
    gate = Gate()
    svc = await started_service(settings, sim_engine(sleep=gate), max_concurrency=1, max_queue=1)
    app = create_node_app(svc)
    async with on(app) as c:
        first = asyncio.create_task(c.post("/v1/chat/completions", json=CHAT))
        second = asyncio.create_task(c.post("/v1/chat/completions", json=CHAT))
        await wait_until(lambda: (svc.admission.in_flight, svc.admission.queued) == (1, 1))
        s = await scrape(app)
        assert s.value("llm_mesh_node_in_flight") == 1 and s.value("llm_mesh_node_queued") == 1
        assert s.value("llm_mesh_node_max_concurrency") == 1
        assert s.value("llm_mesh_node_max_queue") == 1
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 429
        gate.open.set()
        assert (await first).status_code == 200 and (await second).status_code == 200
    s = await scrape(app)
    assert s.value("llm_mesh_node_requests_total", outcome="refused", code="overloaded") == 1
    assert s.value("llm_mesh_node_requests_total", outcome="ok") == 2
    assert s.value("llm_mesh_node_in_flight") == 0 and s.value("llm_mesh_node_queued") == 0
    assert s.value("llm_mesh_node_service_seconds") > 0  # measured once requests finished
    # the second one waited for the first's slot
    assert s.value("llm_mesh_node_admission_wait_seconds_count") == 2
    await svc.stop()


async def test_a_client_gone_is_cancelled(settings: Settings) -> None:
    engine = sim_engine(answer_tokens=100_000, sleep=_tiny_sleep)
    svc = await started_service(settings, engine)
    app = create_node_app(svc)
    body = {**CHAT, "stream": True, "max_tokens": 30_000}
    await _drive_until_gone(app, "/v1/chat/completions", body, lambda chunks: chunks >= 5)
    await _drive_until_gone(app, "/v1/chat/completions", {**CHAT, "max_tokens": 30_000},
                            lambda _c: engine.tokens_emitted > 20)  # fmt: skip
    await wait_until(lambda: svc.admission.in_flight == 0)
    s = await scrape(app)
    assert s.value("llm_mesh_node_requests_total", model=MODEL, outcome="cancelled") == 2
    assert s.value("llm_mesh_node_requests_total", outcome="ok") == 0
    assert s.value("llm_mesh_node_request_duration_seconds_count", outcome="cancelled") == 2
    await svc.stop()


async def test_unsigned_requests_to_a_registered_node_are_rejected(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", registry_url="http://127.0.0.1:8800")
    svc = NodeService(node_config(register=True), settings, engine=sim_engine())
    await svc.prepare()  # no registration: the key is never pinned, every request is unsigned
    app = create_node_app(svc, manage_lifespan=False)
    async with on(app) as c:
        r = await c.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 401
    s = await scrape(app)
    assert s.value("llm_mesh_node_requests_total", model="", outcome="rejected") == 1
    assert s.label_values("llm_mesh_node_requests_total", "code") <= {
        "invalid_signature", "unauthorized", "stale_message"
    }  # fmt: skip
    await svc.stop()


async def test_each_app_its_own_registry_and_metrics_off(tmp_path: Path) -> None:
    on_settings = Settings(home=tmp_path / "a")
    svc = await started_service(on_settings)
    one, two = create_node_app(svc), create_node_app(svc)
    async with on(one) as c:
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200
    assert (await scrape(one)).value("llm_mesh_node_requests_total") == 1
    assert (await scrape(two)).value("llm_mesh_node_requests_total") == 0
    await svc.stop()
    off = await started_service(Settings(home=tmp_path / "b", metrics=False))
    app = create_node_app(off)
    assert app.state.metrics is None
    async with on(app) as c:
        assert (await c.post("/v1/chat/completions", json=CHAT)).status_code == 200
        assert (await c.get("/metrics")).status_code == 404
    await off.stop()


async def test_access_from_afar_needs_the_token(tmp_path: Path) -> None:
    far = ("198.51.100.4", 5555)
    svc = await started_service(Settings(home=tmp_path / "a", metrics_token="tok"))
    app = create_node_app(svc)
    async with on(app, far) as c:
        assert (await c.get("/metrics")).status_code == 403
        assert (
            await c.get("/metrics", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
        r = await c.get("/metrics", headers={"Authorization": "Bearer tok"})
        assert r.status_code == 200 and "llm_mesh_node_in_flight" in r.text
    await svc.stop()
    svc = await started_service(Settings(home=tmp_path / "b", metrics_public=True))
    async with on(create_node_app(svc), far) as c:
        assert (await c.get("/metrics")).status_code == 200
    await svc.stop()
