"""The seed's model registry (distributed_models.py) against the real registry + gateway.

Every test runs the real registry app with real sim nodes in process (no sockets):
``inprocess_mesh`` from ``tests/conftest.py``, see ``tests/inprocess_mesh.py``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

import LLM_Mesh.distributed_models as dm
from LLM_Mesh.core.catalog import CATALOG, get_spec
from LLM_Mesh.core.pricing import request_cost
from LLM_Mesh.distributed_models import DistributedModelRegistry, ModelResponse
from LLM_Mesh.errors import (
    ModelNotFound,
    ModelUnavailable,
    RegistryUnreachable,
)
from LLM_Mesh.model_response import SIMULATED_MARK
from tests.distributed_models_fixtures import Clock, make, sync_fetch_from, up
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh, node_url


def no_sync_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("get_model_info made a blocking call on a fresh snapshot")

    monkeypatch.setattr(dm, "fetch_json_sync", boom)


def direct(mesh: InProcessMesh, node_id: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """The node's own answer to ``body``, asked without the gateway (the sim is deterministic)."""
    with mesh.sync_client() as c:
        raw, headers = mesh.signed(node_id, path, body)  # as the gateway would
        r = c.post(node_url(node_id) + path, content=raw, headers=headers)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


# --- snapshot ------------------------------------------------------------------------


async def test_initialize_summary(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "code-llama-7b")
    reg = make(mesh)
    summary = await reg.initialize()
    assert summary == {
        "registry_url": REGISTRY_URL,
        "models_available": ["code-llama-7b", "gemma-3-270m"],
        "models_simulated": ["code-llama-7b", "gemma-3-270m"],  # served by sim nodes only
        "models_known": len(CATALOG),
        "nodes_total": 2,
        "nodes_healthy": 2,
    }
    assert mesh.paths() == ["GET /mesh/models", "GET /mesh/nodes"]
    assert reg.available_models() == ["code-llama-7b", "gemma-3-270m"]


async def test_initialize_counts_a_node_that_left(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "code-llama-7b")
    mesh.stop_node("node-code-llama-7b")  # its final OFFLINE
    summary = await make(mesh).initialize()
    assert summary["models_available"] == ["gemma-3-270m"]
    assert summary["nodes_healthy"] == 1


async def test_initialize_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    reg = DistributedModelRegistry(
        registry_url=REGISTRY_URL,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)),
    )
    with pytest.raises(RegistryUnreachable, match="llm-mesh up"):
        await reg.initialize()


async def test_get_model_info_uses_fresh_snapshot(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m")
    clock = Clock()
    reg = make(mesh, clock)
    await reg.refresh()
    no_sync_fetch(monkeypatch)
    clock.t += reg.SNAPSHOT_TTL_S - 0.5

    info = reg.get_model_info()
    assert info["models_available"] == ["gemma-3-270m"]
    assert set(info["models"]) == {
        "gemma-3-270m",
        "mistral-7b",
        "code-llama-7b",
        "starcoder-15b",
        "deepseek-llm-67b-chat",
        "llama-2-70b-chat",
        "qwen1.5-72b-chat",
    }
    assert info["models"]["mistral-7b"]["hosts"] == []

    one = reg.get_model_info("gemma-3-270m")
    assert one["id"] == "gemma-3-270m"
    assert one["available"] is True
    assert one["specialties"] == ["general", "code"]
    (host,) = one["hosts"]
    expected = {
        "node_id": mesh.id_of("node-gemma-3-270m"),
        "region": "eu",
        "healthy": True,
        "simulated": True,
        "state": "online",
        "in_flight": 0,
        "latency_ms_ewma": None,  # no request has been served yet
    }
    assert {k: host.get(k) for k in expected} == expected  # more keys may say more
    assert host.get("url") is None and host.get("hardware") is None  # public: no address
    assert 0.0 < host["health_score"] <= 1.0
    down = reg.get_model_info("code-llama-7b")
    assert down["available"] is False
    assert down["hosts"] == []


async def test_get_model_info_unknown_model(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = make(up(inprocess_mesh, "gemma-3-270m"))
    await reg.refresh()
    no_sync_fetch(monkeypatch)
    with pytest.raises(ModelNotFound, match="gpt-17") as info:
        reg.get_model_info("gpt-17")
    assert "gemma-3-270m" in info.value.message  # names the known models


def test_get_model_info_stale_snapshot_fetches_sync(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = up(inprocess_mesh, "mistral-7b")
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(dm, "fetch_json_sync", sync_fetch_from(mesh, calls))
    clock = Clock()
    reg = DistributedModelRegistry(registry_url=REGISTRY_URL, clock=clock)

    # no snapshot yet -> one blocking fetch of models and nodes
    assert reg.get_model_info("mistral-7b")["available"] is True
    assert calls == [(REGISTRY_URL, "/mesh/models"), (REGISTRY_URL, "/mesh/nodes")]

    # fresh -> no fetch
    clock.t += 1
    reg.get_model_info()
    assert len(calls) == 2

    # stale -> fetched again, and sees the change
    mesh.add_node("gemma-3-270m")
    clock.t += reg.SNAPSHOT_TTL_S + 0.1
    assert reg.get_model_info()["models_available"] == ["gemma-3-270m", "mistral-7b"]
    assert len(calls) == 4


def test_get_model_info_stale_and_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fetch(base_url: str, path: str, timeout: float = 5.0, **kw: Any) -> Any:
        raise RegistryUnreachable(f"no LLM Mesh registry answered at {base_url}")

    monkeypatch.setattr(dm, "fetch_json_sync", fetch)
    with pytest.raises(RegistryUnreachable):
        DistributedModelRegistry(registry_url=REGISTRY_URL).get_model_info()


async def test_health_check_all_hosts_refreshes(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m")
    reg = make(mesh)
    results = await reg.health_check_all_hosts()
    (result,) = results
    assert result == {
        "node_id": mesh.id_of("node-gemma-3-270m"),
        "url": "http://node-gemma-3-270m.nodes.test:8801",
        "ok": True,
        "latency_ms": result["latency_ms"],
        "error": None,
    }
    assert result["latency_ms"] >= 0.0
    # the registry proves it holds its key before the home's admin key goes (admin_proof.py)
    assert mesh.paths() == [
        "GET /mesh/identity", "POST /mesh/health-check", "GET /mesh/models", "GET /mesh/nodes"
    ]  # fmt: skip
    assert reg.available_models() == ["gemma-3-270m"]


async def test_health_check_reports_a_node_gone_silent(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "mistral-7b")
    mesh.stop_node("node-mistral-7b", deregister=False)  # crashed: no final OFFLINE
    reg = make(mesh)
    results = {r["node_id"]: r for r in await reg.health_check_all_hosts()}
    assert results[mesh.id_of("node-gemma-3-270m")]["ok"] is True
    assert results[mesh.id_of("node-mistral-7b")]["ok"] is False
    assert results[mesh.id_of("node-mistral-7b")]["error"]
    assert reg.available_models() == ["gemma-3-270m"]


# --- answers ---------------------------------------------------------------------------


async def test_get_response_maps_mesh_metrics(inprocess_mesh: InProcessMesh) -> None:
    mesh = inprocess_mesh
    mesh.add_node("gemma-3-270m", answer_tokens=40)  # longer than max_tokens: cut at 32
    reg = make(mesh)
    r = await reg.get_response(
        "gemma-3-270m",
        "def fibonacci(n):",
        "python",
        max_tokens=32,
        temperature=0.2,
        stop=["\n\n"],
        request_id="abc",
    )
    (sent,) = mesh.completions
    assert sent == {
        "model": "gemma-3-270m",
        "max_tokens": 32,
        "temperature": 0.2,
        "stop": ["\n\n"],
        "task_type": "python",
        "prompt": "def fibonacci(n):",
        "stream": False,
    }
    assert mesh.requests[-1].headers["X-Request-Id"] == "abc"
    (forwarded,) = mesh.router.forwarded  # what the gateway sent the node
    assert forwarded.host == "node-gemma-3-270m.nodes.test:8801"
    assert forwarded.body["prompt"] == "def fibonacci(n):"

    node_answer = direct(mesh, "node-gemma-3-270m", "/v1/completions", sent)
    assert isinstance(r, ModelResponse)
    assert r.text == node_answer["choices"][0]["text"]
    assert str(r) == SIMULATED_MARK + r.text  # a sim node made it up
    assert len(r.text.split()) == 32
    assert r.model == "gemma-3-270m"
    assert r.requested_model == "gemma-3-270m"
    assert r.fallback_from is None
    assert r.node_id == mesh.id_of("node-gemma-3-270m")
    assert r.engine == "sim"
    assert r.simulated is True
    assert r.task_type == "python"
    assert r.finish_reason == "length"
    assert r.prompt_tokens == 5  # the sim's estimate: 17 characters / 4, rounded up
    assert r.completion_tokens == 32
    assert r.latency_ms is not None and r.latency_ms > 0
    assert r.ttft_ms is not None and 0 < r.ttft_ms <= r.latency_ms
    assert r.tokens_per_s is not None and r.tokens_per_s > 0
    spec = get_spec("gemma-3-270m")
    assert spec is not None
    assert r.cost == request_cost(spec.price, 5, 32) > 0 and type(r.cost) is int
    assert r.currency == "micro-NetworkToken"
    assert r.request_id == "abc"  # the client's X-Request-Id names the request
    assert r.to_dict()["node_id"] == mesh.id_of("node-gemma-3-270m")


async def test_get_response_chat_sends_user_message(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "mistral-7b")
    r = await make(mesh).get_response("mistral-7b", "Say hi", chat=True)
    assert mesh.requests[-1].path == "/v1/chat/completions"
    assert mesh.completions[-1]["messages"] == [{"role": "user", "content": "Say hi"}]
    assert "prompt" not in mesh.completions[-1]
    node_answer = direct(mesh, "node-mistral-7b", "/v1/chat/completions", mesh.completions[-1])
    assert r.text == node_answer["choices"][0]["message"]["content"] != ""
    assert r.finish_reason == "stop"  # the sim's answer is shorter than max_tokens=128


async def test_unavailable_model_raises_naming_available(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "mistral-7b")
    with pytest.raises(ModelUnavailable) as info:
        await make(mesh).get_response("code-llama-7b", "def f():", "python")
    exc = info.value
    assert exc.available == ["gemma-3-270m", "mistral-7b"]
    assert "code-llama-7b" in exc.message
    # the seed's example (Code Llama, on a mesh without it) says how to get an answer anyway
    assert exc.message.endswith("; with fallback=True gemma-3-270m answers (same specialty)")
    assert len(mesh.completions) == 1  # no fallback unless asked
    assert mesh.router.forwarded == []  # no node was called


async def test_unavailable_model_names_no_fallback_when_none_fits(
    inprocess_mesh: InProcessMesh,
) -> None:
    mesh = up(inprocess_mesh, "mistral-7b")
    with pytest.raises(ModelUnavailable) as info:
        await make(mesh).get_response("code-llama-7b", "def f():", "python")
    assert "fallback" not in info.value.message
    assert info.value.available == ["mistral-7b"]


async def test_unknown_model_raises_model_not_found_even_with_fallback(
    inprocess_mesh: InProcessMesh,
) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m")
    with pytest.raises(ModelNotFound):
        await make(mesh).get_response("gpt-17", "x", fallback=True)


async def test_fallback_picks_same_specialty_model(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "mistral-7b", "gemma-3-270m")
    r = await make(mesh).get_response("code-llama-7b", "def fibonacci(n):", "python", fallback=True)
    assert r.model == "gemma-3-270m"  # shares "code"; mistral shares nothing
    assert r.fallback_from == "code-llama-7b"
    assert r.requested_model == "code-llama-7b"
    assert r.node_id == mesh.id_of("node-gemma-3-270m")
    assert [c["model"] for c in mesh.completions] == ["code-llama-7b", "gemma-3-270m"]
    assert mesh.completions[1]["prompt"] == "def fibonacci(n):"


async def test_fallback_without_task_type_uses_model_specialties(
    inprocess_mesh: InProcessMesh,
) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "qwen1.5-72b-chat")
    r = await make(mesh).get_response("mistral-7b", "Why is the sky blue?", fallback=True)
    # both share "general" with mistral; qwen also shares chat/reasoning and is bigger
    assert r.model == "qwen1.5-72b-chat"
    assert r.node_id == mesh.id_of("node-qwen1.5-72b-chat")
    assert r.fallback_from == "mistral-7b"


async def test_fallback_prefers_task_fit(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "code-llama-7b")
    r = await make(mesh).get_response("starcoder-15b", "def f():", "debug", fallback=True)
    assert r.model == "code-llama-7b"
    assert r.fallback_from == "starcoder-15b"


async def test_fallback_with_no_same_specialty_model_raises(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "mistral-7b")
    with pytest.raises(ModelUnavailable) as info:
        await make(mesh).get_response("code-llama-7b", "def f():", "python", fallback=True)
    exc = info.value
    assert "same specialty" in exc.message
    assert exc.available == ["mistral-7b"]
    assert exc.model == "code-llama-7b"
    assert isinstance(exc.__cause__, ModelUnavailable)
    assert [c["model"] for c in mesh.completions] == ["code-llama-7b"]


async def test_fallback_with_nothing_up_raises(inprocess_mesh: InProcessMesh) -> None:
    with pytest.raises(ModelUnavailable):
        await make(inprocess_mesh).get_response(
            "code-llama-7b", "def f():", "python", fallback=True
        )


async def test_best_model_for_task(inprocess_mesh: InProcessMesh) -> None:
    reg = make(up(inprocess_mesh, "gemma-3-270m", "code-llama-7b", "mistral-7b"))
    await reg.refresh()
    assert reg.best_model_for_task("debug") == "code-llama-7b"
    assert reg.best_model_for_task("python") == "code-llama-7b"
    assert reg.best_model_for_task("chat") == "mistral-7b"
    assert reg.best_model_for_task("no-such-task") == "mistral-7b"  # routes as general


async def test_best_model_for_task_only_gemma(inprocess_mesh: InProcessMesh) -> None:
    reg = make(up(inprocess_mesh, "gemma-3-270m"))
    await reg.refresh()
    assert reg.best_model_for_task("debug") == "gemma-3-270m"
    assert reg.best_model_for_task("python") == "gemma-3-270m"


async def test_best_model_for_task_nothing_up(inprocess_mesh: InProcessMesh) -> None:
    reg = make(inprocess_mesh)
    await reg.refresh()
    with pytest.raises(ModelUnavailable, match="no model is up"):
        reg.best_model_for_task("python")


async def test_task_routing_says_the_paused_node(inprocess_mesh: InProcessMesh) -> None:
    """Found 2026-12-06 (newuser35): after ``llm-mesh node pause`` on ``up``'s node,
    ``llm-mesh ask`` without ``--model`` (task routing; ``handle_task`` too) said only
    ``no model is up on the network right now``; with ``--model`` the gateway said that a
    node hosting it is paused and comes back. Now both say so."""
    node = inprocess_mesh.add_node("gemma-3-270m")

    async def pause() -> None:
        node.service.pause()

    inprocess_mesh.call(pause())
    reg = make(inprocess_mesh)
    for _ in range(200):  # the pause's heartbeat reaches the registry
        await reg.refresh()
        if not reg.available_models():
            break
        await asyncio.sleep(0.02)
    with pytest.raises(ModelUnavailable) as caught:
        await reg.get_response(None, "def f(:", "debug")
    said = str(caught.value)
    assert "no model is up on the network right now" in said, said
    assert (
        "1 node hosting gemma-3-270m is paused or draining: out of routing until its "
        "operator runs `llm-mesh node resume`" in said
    ), said
    # found 2026-12-06 (newuser35b): with the model named, two retries (20 s) before the
    # same refusal; now at once, and in the same words
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable) as named:
        await reg.get_response("gemma-3-270m", "def f(:", "debug")
    assert time.monotonic() - t0 < 5.0, time.monotonic() - t0
    said = str(named.value)
    assert (
        "1 node hosting it is paused or draining: out of routing until its operator runs "
        "`llm-mesh node resume`" in said
    ), said


async def test_task_routing_says_no_resting_node_when_none(inprocess_mesh: InProcessMesh) -> None:
    reg = make(inprocess_mesh)
    await reg.refresh()
    with pytest.raises(ModelUnavailable) as caught:
        reg.best_model_for_task("python")
    assert "paused" not in str(caught.value), caught.value


async def test_get_response_without_model_routes_by_task(inprocess_mesh: InProcessMesh) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m", "code-llama-7b")
    r = await make(mesh).get_response(None, "def f(:", "debug")
    assert r.model == "code-llama-7b"
    assert r.node_id == mesh.id_of("node-code-llama-7b")
    assert mesh.completions[-1]["model"] == "code-llama-7b"
    assert mesh.completions[-1]["task_type"] == "debug"
