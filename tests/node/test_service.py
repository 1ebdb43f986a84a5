"""NodeService: wiring, registration/heartbeat bodies, availability hours, build_engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware, NodeState
from LLM_Mesh.node.engines.llama_cpp import LlamaCppEngine
from LLM_Mesh.node.engines.openai_upstream import OpenAIUpstreamEngine
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.model_files import ModelFileError
from LLM_Mesh.node.service import NodeService, build_engine, hardware_basics, memory_budget
from tests.node.conftest import (
    MODEL,
    asgi_client,
    node_config,
    node_id_in,
    sim_engine,
    started_service,
    wait_until,
)


async def test_registration_and_heartbeat_bodies(settings: Settings) -> None:
    svc = await started_service(settings, region="eu-west", max_queue=3)
    reg = svc.registration()
    assert reg.node_id == svc.node_id == node_id_in(settings) and reg.url == "http://127.0.0.1:8801"
    assert [m.id for m in reg.models] == [MODEL] and reg.models[0].simulated
    assert reg.region == "eu-west" and reg.max_queue == 3
    assert reg.hardware.cpu_count == 4 and reg.state is NodeState.ONLINE
    hb = svc.heartbeat()
    assert (hb.in_flight, hb.queued, hb.loaded_models) == (0, 0, [MODEL])
    assert hb.keyed_age_s is None  # no keyed request yet: no places kept
    svc.admission.release(await svc.admission.acquire(keyed=True))
    age = svc.heartbeat().keyed_age_s  # every replica counts the kept places from it
    assert age is not None and 0.0 <= age < 5.0
    svc.drain()
    assert svc.heartbeat().state is NodeState.DRAINING
    await svc.stop()
    assert svc.state is NodeState.JOINING


async def test_service_registers_heartbeats_and_deregisters(settings: Settings) -> None:
    seen: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/mesh/nodes":
            body = json.loads(request.content)
            return httpx.Response(
                200, json={"node_id": body["node_id"], "heartbeat_interval_s": 10}
            )
        return httpx.Response(200 if request.method == "POST" else 204, json={})

    client = httpx.AsyncClient(transport=httpx.MockTransport(registry))
    svc = NodeService(
        node_config(register=True),
        settings,
        engine=sim_engine(),
        http_client=client,
        hardware=Hardware(),
    )
    await svc.start()
    await svc.start()  # idempotent
    assert svc.agent is not None
    agent = svc.agent
    await wait_until(lambda: agent.registered)
    assert seen[0] == "POST /mesh/nodes"
    svc.pause()  # wakes the agent: the new state goes out early
    await wait_until(lambda: len(seen) > 1)
    assert seen[1] == f"POST /mesh/nodes/{svc.node_id}/heartbeat"
    await svc.stop()
    await svc.stop()
    assert seen[-1] == f"DELETE /mesh/nodes/{svc.node_id}"
    assert not client.is_closed  # an injected client belongs to its owner
    await client.aclose()


def _goodbyes_time_out(seen: list[tuple[str, float]], now: list[float]) -> httpx.AsyncClient:
    """A registry that registers the node, then lets every goodbye time out: each DELETE
    moves ``now`` by the timeout it was given, and ``seen`` notes (method, timeout)."""

    def registry(request: httpx.Request) -> httpx.Response:
        timeout = float(request.extensions["timeout"]["read"])
        seen.append((request.method, timeout))
        if request.method == "DELETE":
            now[0] += timeout
            raise httpx.ReadTimeout("timed out", request=request)
        if request.url.path == "/mesh/nodes":
            body = json.loads(request.content)
            return httpx.Response(
                200, json={"node_id": body["node_id"], "heartbeat_interval_s": 60}
            )
        return httpx.Response(200, json={})

    return httpx.AsyncClient(transport=httpx.MockTransport(registry))


async def test_the_goodbye_ends_by_the_shutdowns_deadline_counted_from_the_signal(
    settings: Settings,
) -> None:
    """The drain took most of the 12 s (in-flight work): the goodbye gets what is left
    until 11 s after the signal (1 s kept for closing), not its own 6 s."""
    now = [1000.0]
    seen: list[tuple[str, float]] = []
    client = _goodbyes_time_out(seen, now)
    svc = NodeService(
        node_config(register=True), settings, engine=sim_engine(), http_client=client,
        hardware=Hardware(), clock=lambda: now[0],
    )  # fmt: skip
    await svc.start()
    assert svc.agent is not None
    agent = svc.agent
    await wait_until(lambda: agent.registered)
    svc.begin_shutdown()  # SIGTERM at 1000
    svc.begin_shutdown()  # a second signal does not move it
    now[0] = 1008.6  # the drain: 8.6 s
    await svc.stop()
    goodbyes = [t for m, t in seen if m == "DELETE"]
    assert goodbyes == [2.0, pytest.approx(0.4)]  # 2 s, then what is left to 1011
    assert now[0] == pytest.approx(1011.0)
    await client.aclose()


async def test_a_stop_without_a_signal_gives_the_goodbye_its_own_budget(
    settings: Settings,
) -> None:
    now = [1000.0]
    seen: list[tuple[str, float]] = []
    client = _goodbyes_time_out(seen, now)
    svc = NodeService(
        node_config(register=True), settings, engine=sim_engine(), http_client=client,
        hardware=Hardware(), clock=lambda: now[0],
    )  # fmt: skip
    await svc.start()
    assert svc.agent is not None
    agent = svc.agent
    await wait_until(lambda: agent.registered)
    await svc.stop()
    assert [t for m, t in seen if m == "DELETE"] == [2.0, 2.0, 2.0]  # 3 tries in 6 s
    await client.aclose()


async def test_availability_hours_pause_and_resume(settings: Settings) -> None:
    minute = [12 * 60]
    svc = NodeService(
        node_config(availability_hours="22:00-06:00"),
        settings,
        engine=sim_engine(),
        minute_of_day=lambda: minute[0],
        hardware=Hardware(),
    )
    await svc.start()
    svc.refresh_availability()
    assert svc.state is NodeState.PAUSED
    minute[0] = 23 * 60
    assert svc.heartbeat().state is NodeState.ONLINE
    svc.pause()  # an operator's pause is not undone by the hours
    svc.refresh_availability()
    assert svc.state is NodeState.PAUSED
    await svc.stop()


async def test_service_owns_its_client_when_none_is_given(settings: Settings) -> None:
    svc = NodeService(node_config(), settings, engine=sim_engine(), hardware=Hardware())
    with pytest.raises(RuntimeError):
        _ = svc.http_client
    await svc.start()
    client = svc.http_client
    await svc.stop()
    assert client.is_closed


async def test_service_builds_its_engine_from_config(settings: Settings) -> None:
    svc = NodeService(
        node_config(models=["a", "b=/x/y.gguf"], sim_ttft_s=0, sim_tokens_per_s=500),
        settings,
        hardware=Hardware(),
    )
    await svc.start()
    assert isinstance(svc.engine, SimEngine)
    assert [m.id for m in svc.models()] == ["a", "b"]
    assert svc.info()["engine"] == "sim"
    await svc.stop()


def test_build_engine_kinds(settings: Settings, tmp_path: Path) -> None:
    client = httpx.AsyncClient()
    cfg = node_config(engine="openai", upstream_url="http://127.0.0.1:9/v1", models=["qwen"])
    eng = build_engine(cfg, settings, client)
    assert isinstance(eng, OpenAIUpstreamEngine) and eng.model_ids() == ["qwen"]
    with pytest.raises(ValueError, match="http_client"):
        build_engine(cfg, settings, None)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 16)
    llama = build_engine(
        node_config(engine="llama-cpp", models=[str(gguf)], n_ctx=2048), settings, client
    )
    assert isinstance(llama, LlamaCppEngine) and llama.n_ctx == 2048
    assert llama.models()[0].loaded is False and llama.models()[0].custom
    with pytest.raises(ModelFileError, match="llm-mesh node models add mistral-7b"):
        build_engine(node_config(engine="llama-cpp", models=["mistral-7b"]), settings, client)


def test_hardware_basics(tmp_path: Path) -> None:
    hw = hardware_basics(tmp_path)
    assert hw.cpu_count >= 1 and hw.disk_free_bytes > 0


def test_memory_budget_defaults_to_80_percent_of_available_ram() -> None:
    hw = Hardware.model_validate({"memory_bytes": 16_000, "memory_available_bytes": 10_000})
    assert memory_budget(node_config(), hw) == 8_000
    assert memory_budget(node_config(), Hardware(memory_bytes=5_000)) == 4_000
    assert memory_budget(node_config(memory_budget_bytes=123), hw) == 123
    assert memory_budget(node_config(), Hardware()) is None
    assert memory_budget(node_config(), None) is None
    with pytest.raises(ValueError, match="memory_budget_bytes"):
        node_config(memory_budget_bytes=0)


def test_build_engine_passes_the_budget_to_llama(settings: Settings, tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 16)
    cfg = node_config(engine="llama-cpp", models=[str(gguf)])
    eng = build_engine(cfg, settings, None, Hardware(memory_bytes=10_000))
    assert isinstance(eng, LlamaCppEngine) and eng.memory_budget_bytes == 8_000
    (m,) = eng.models()
    assert m.loaded is False and (m.model_extra or {})["load_time_s"] > 0


async def test_heartbeat_reports_every_model_with_loaded_and_load_time(
    settings: Settings,
) -> None:
    svc = await started_service(settings, sim_engine(models=[MODEL, "mistral-7b"]))
    body = svc.heartbeat().model_dump(mode="json")
    assert body["loaded_models"] == [MODEL, "mistral-7b"]
    assert [
        (m["id"], m["loaded"], m["load_time_s"], m["continuation"]) for m in body["models"]
    ] == [
        (MODEL, True, 0.0, True),
        ("mistral-7b", True, 0.0, True),
    ]
    await svc.stop()


async def test_info_counts_requests_tokens_and_uptime(settings: Settings) -> None:
    now = [1000.0]
    svc = NodeService(
        node_config(),
        settings,
        engine=sim_engine(answer_tokens=5),
        hardware=Hardware(cpu_count=2),
        clock=lambda: now[0],
    )
    assert svc.info()["uptime_s"] == 0.0
    await svc.start()
    now[0] += 42.5
    async with asgi_client(svc) as c:
        for _ in range(3):
            r = await c.post("/v1/completions", json={"model": MODEL, "prompt": "abcdefgh"})
            assert r.status_code == 200
    info = svc.info()
    assert info["uptime_s"] == 42.5 and info["started_at"] is not None
    assert (info["requests_served"], info["tokens_generated"]) == (3, 15)
    assert info["prompt_tokens"] == 6 and info["requests_failed"] == 0
    await svc.stop()


async def test_max_concurrency_runs_that_many_and_queues_the_rest(settings: Settings) -> None:
    gate = asyncio.Event()

    async def held(_s: float) -> None:
        await gate.wait()

    svc = await started_service(settings, sim_engine(sleep=held), max_concurrency=2, max_queue=1)
    body = {"model": MODEL, "prompt": "x", "max_tokens": 3}
    async with asgi_client(svc) as c:
        tasks = [asyncio.create_task(c.post("/v1/completions", json=body)) for _ in range(3)]
        await wait_until(lambda: (svc.admission.in_flight, svc.admission.queued) == (2, 1))
        assert (await c.post("/v1/completions", json=body)).status_code == 429
        gate.set()
        assert [(await t).status_code for t in tasks] == [200, 200, 200]
    assert svc.requests_served == 3
    await svc.stop()


async def test_outside_availability_hours_requests_get_503(settings: Settings) -> None:
    minute = [3 * 60]
    svc = NodeService(
        node_config(availability_hours="08:00-18:00"),
        settings,
        engine=sim_engine(),
        minute_of_day=lambda: minute[0],
        hardware=Hardware(),
    )
    await svc.start()
    body = {"model": MODEL, "prompt": "x", "max_tokens": 3}
    async with asgi_client(svc) as c:
        r = await c.post("/v1/completions", json=body)
        assert r.status_code == 503 and r.json()["error"]["node_state"] == "paused"
        assert svc.registration().state is NodeState.PAUSED
        minute[0] = 9 * 60
        assert (await c.post("/v1/completions", json=body)).status_code == 200
        assert (await c.get("/mesh/health")).json()["state"] == "online"
    await svc.stop()


async def test_a_node_on_the_sim_engine_says_so_when_it_starts(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """found 2026-12-04 (``llm-mesh node start --engine sim``): the node's log named its
    port and its registration, nowhere that its answers are made up."""
    caplog.set_level("INFO", logger="LLM_Mesh.node")
    svc = await started_service(settings)
    await svc.stop()
    said = [r for r in caplog.records if "SIMULATED" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "INFO", caplog.text  # not a fault
    assert MODEL in said[0].getMessage() and svc.node_id in said[0].getMessage()


def test_build_engine_gives_llama_the_stream_interval(settings: Settings, tmp_path: Path) -> None:
    """node.toml's ``stream_interval_s``, else LLM_MESH_STREAM_INTERVAL_S, else the default."""
    from dataclasses import replace

    from LLM_Mesh.node.config import DEFAULT_STREAM_INTERVAL_S

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 16)
    cfg = node_config(engine="llama-cpp", models=[str(gguf)])
    env = replace(settings, stream_interval_s=0.07)
    got = [
        build_engine(c, s, None)
        for c, s in ((cfg, settings), (cfg, env), (replace(cfg, stream_interval_s=0), env))
    ]
    assert all(isinstance(e, LlamaCppEngine) for e in got)
    assert [e.stream_interval_s for e in got] == [DEFAULT_STREAM_INTERVAL_S, 0.07, 0]  # type: ignore[attr-defined]


@pytest.mark.parametrize("declared", [None, True, False])
async def test_the_heartbeat_repeats_the_registrations_declaration(
    settings: Settings, declared: bool | None
) -> None:
    """A registry holding another (a row an older replica wrote tells none) answers it 404,
    so the node registers again with it (found 2026-12-06, keepers34: tests/registry/
    test_prompt_keeping_upgrade.py)."""
    svc = await started_service(settings, keeps_no_prompts=declared)
    try:
        expected = True if declared is None else declared  # sim: keeps nothing by default
        assert svc.registration().keeps_no_prompts is expected
        assert svc.heartbeat().keeps_no_prompts is expected
    finally:
        await svc.stop()
