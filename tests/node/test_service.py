"""NodeService: wiring, registration/heartbeat bodies, availability hours, build_engine."""

from __future__ import annotations

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
from LLM_Mesh.node.service import NodeService, build_engine, hardware_basics
from tests.node.conftest import MODEL, node_config, sim_engine, started_service, wait_until


async def test_registration_and_heartbeat_bodies(settings: Settings) -> None:
    svc = await started_service(settings, region="eu-west", max_queue=3)
    reg = svc.registration()
    assert reg.node_id == "node-test" and reg.url == "http://127.0.0.1:8801"
    assert [m.id for m in reg.models] == [MODEL] and reg.models[0].simulated
    assert reg.region == "eu-west" and reg.max_queue == 3
    assert reg.hardware.cpu_count == 4 and reg.state is NodeState.ONLINE
    hb = svc.heartbeat()
    assert (hb.in_flight, hb.queued, hb.loaded_models) == (0, 0, [MODEL])
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
    assert seen[1] == "POST /mesh/nodes/node-test/heartbeat"
    await svc.stop()
    await svc.stop()
    assert seen[-1] == "DELETE /mesh/nodes/node-test"
    assert not client.is_closed  # an injected client belongs to its owner
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
