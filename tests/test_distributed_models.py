"""The seed's model registry (distributed_models.py) against the real registry + gateway.

Every test runs the real registry app with real sim nodes in process (no sockets):
``inprocess_mesh`` from ``tests/conftest.py``, see ``tests/inprocess_mesh.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import importlib
import json
import time
from typing import Any

import httpx
import pytest

import LLM_Mesh.client as client
import LLM_Mesh.distributed_models as dm
from LLM_Mesh.bounded_http import Read, answer_object
from LLM_Mesh.core.catalog import CATALOG, get_spec
from LLM_Mesh.core.pricing import request_cost
from LLM_Mesh.distributed_models import DistributedModelRegistry, ModelResponse
from LLM_Mesh.errors import (
    InvalidRequest,
    MeshError,
    ModelNotFound,
    ModelUnavailable,
    RegistryUnreachable,
)
from LLM_Mesh.model_response import SIMULATED_MARK
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh, node_url


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def up(mesh: InProcessMesh, *models: str) -> InProcessMesh:
    """One sim node per model, ``node-<model>``, registered with the real registry."""
    mesh.add_nodes(*models)
    return mesh


def make(mesh: InProcessMesh, clock: Clock | None = None) -> DistributedModelRegistry:
    # the mesh's settings: its home holds the admin key the registry made (health checks)
    return DistributedModelRegistry(
        mesh.settings,
        registry_url=REGISTRY_URL + "/",
        http_client=mesh.client(),
        clock=clock or Clock(),
    )


def no_sync_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("get_model_info made a blocking call on a fresh snapshot")

    monkeypatch.setattr(dm, "fetch_json_sync", boom)


def sync_fetch_from(mesh: InProcessMesh, calls: list[tuple[str, str]]) -> Any:
    def fetch(
        base_url: str, path: str, timeout: float = 5.0, ca_file: str | None = None,
        read: Read = answer_object, **_where: Any,
    ) -> Any:  # fmt: skip
        calls.append((base_url, path))
        return mesh.fetch_json_sync(base_url, path, timeout, read)

    return fetch


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
    assert "1 node hosting gemma-3-270m is paused or draining: out of routing until its " \
        "operator runs `llm-mesh node resume`" in said, said
    # found 2026-12-06 (newuser35b): with the model named, two retries (20 s) before the
    # same refusal; now at once, and in the same words
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailable) as named:
        await reg.get_response("gemma-3-270m", "def f(:", "debug")
    assert time.monotonic() - t0 < 5.0, time.monotonic() - t0
    said = str(named.value)
    assert "1 node hosting it is paused or draining: out of routing until its operator runs " \
        "`llm-mesh node resume`" in said, said


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


class FirstReplicaDown(httpx.AsyncBaseTransport):
    """Two replicas: ``DOWN`` answers 503 to everything, the other is the mesh."""

    DOWN = "http://down.mesh.test"

    def __init__(self, mesh: InProcessMesh) -> None:
        self.mesh = mesh.transport()
        self.asked_down: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == httpx.URL(self.DOWN).host:
            self.asked_down.append(request.url.path)
            return httpx.Response(503, json={"error": {"message": "down", "code": "down"}})
        return await self.mesh.handle_async_request(request)


async def test_calls_begin_at_the_replica_that_answered_last(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05: each call made a new client that began at the first URL, so with
    that replica hung every call waited ~9 s on it again (handle_task, two calls: ~19 s)."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    admin_key = (mesh.settings.home / "admin.key").read_text().strip()  # replicas share it
    reg = DistributedModelRegistry(
        dataclasses.replace(mesh.settings, admin_key=admin_key),
        registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}",
        http_client=httpx.AsyncClient(transport=replicas),
    )
    await reg.refresh()
    assert replicas.asked_down == ["/mesh/models"]  # left once, then the other replica
    r = await reg.get_response(None, "def f():", "python")
    assert r.model == "gemma-3-270m" and replicas.asked_down == ["/mesh/models"]
    await reg.health_check_all_hosts()  # (a POST: on the replica left it would fail)
    assert replicas.asked_down == ["/mesh/models"]


async def test_a_new_registrys_health_check_leaves_a_replica_answering_503(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05: on a registry object that had made no call yet, the admin health
    check (a POST without a request id) ended at the first replica's 503; a pass only checks
    the nodes again, so it is moved to the next replica, as a read is."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    admin_key = (mesh.settings.home / "admin.key").read_text().strip()  # replicas share it
    reg = DistributedModelRegistry(
        dataclasses.replace(mesh.settings, admin_key=admin_key),
        registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}",
        http_client=httpx.AsyncClient(transport=replicas),
    )
    results = await reg.health_check_all_hosts()
    assert len(results) == 1 and results[0]["ok"] is True  # the one node, checked
    assert replicas.asked_down == ["/mesh/health-check"]  # then the refresh: the other one


async def test_fallback_when_the_replica_left_answers_after_the_one_that_says_not_up(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05: once calls began at the replica that answered last, a model not up
    there was asked of the 503 replica next, its bare 503 raised, and ``fallback=True`` found
    no model up. The replica's "model not up" (with the models up) is the call's error."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    reg = DistributedModelRegistry(
        mesh.settings, registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}",
        http_client=httpx.AsyncClient(transport=replicas),
    )  # fmt: skip
    await reg.refresh()  # the DOWN one left: the next call begins at the other
    r = await reg.get_response("code-llama-7b", "def f():", "python", fallback=True)
    assert r.model == "gemma-3-270m" and r.fallback_from == "code-llama-7b"
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("code-llama-7b", "def f():", "python")
    assert info.value.available == ["gemma-3-270m"] and info.value.model == "code-llama-7b"


def test_get_model_info_begins_at_the_replica_that_answered_last(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found 2026-12-05: ``get_model_info()``'s blocking fetches began at the first URL each
    time (a hung one: ~5 s a fetch, two a refresh), unlike the async calls."""
    mesh = up(inprocess_mesh, "gemma-3-270m")
    replicas = FirstReplicaDown(mesh)
    sync = functools.partial(client.fetch_json_sync, transport=replicas)
    monkeypatch.setattr(dm, "fetch_json_sync", sync)
    clock = Clock()
    reg = DistributedModelRegistry(
        registry_url=f"{FirstReplicaDown.DOWN},{REGISTRY_URL}", clock=clock
    )
    assert reg.get_model_info()["models_available"] == ["gemma-3-270m"]
    clock.t += reg.SNAPSHOT_TTL_S + 0.1  # stale: fetched again
    assert reg.get_model_info("gemma-3-270m")["available"] is True
    assert replicas.asked_down == ["/mesh/models"]  # left once, the nodes and the rest not


# --- module-level seed API ------------------------------------------------------------


async def test_module_functions_use_model_registry(
    inprocess_mesh: InProcessMesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m")
    reg = DistributedModelRegistry(http_client=mesh.client())
    monkeypatch.setattr(dm, "model_registry", reg)
    summary = await dm.initialize_distributed_models(REGISTRY_URL)
    assert summary["models_available"] == ["gemma-3-270m"]
    assert reg.registry_url == REGISTRY_URL
    r = await dm.get_model_response(model_name="gemma-3-270m", prompt="def f():", task_type="code")
    assert r.model == "gemma-3-270m"
    assert r.node_id == mesh.id_of("node-gemma-3-270m")


async def test_get_model_response_needs_prompt() -> None:
    with pytest.raises(InvalidRequest, match="non-empty prompt"):
        await dm.get_model_response(model_name="gemma-3-270m", prompt="")


def test_registry_url_read_from_env_when_first_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    reg = DistributedModelRegistry()
    assert reg._settings is None
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://late.example:9/")
    assert reg.registry_url == "http://late.example:9"


def test_import_reads_no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Env that would make Settings.from_env() fail: importing must not call it.
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://import-time.invalid:1")
    monkeypatch.setenv("LLM_MESH_HEARTBEAT_S", "not-a-number")
    saved = dict(dm.__dict__)
    try:
        fresh = importlib.reload(dm)
        assert fresh.model_registry._settings is None
        monkeypatch.delenv("LLM_MESH_HEARTBEAT_S")
        monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://call-time.example:2")
        assert fresh.model_registry.registry_url == "http://call-time.example:2"
    finally:
        dm.__dict__.clear()
        dm.__dict__.update(saved)


# --- python -m LLM_Mesh.distributed_models ---------------------------------------------


def test_main_unreachable_returns_1_with_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []

    def fetch(base_url: str, path: str, timeout: float = 5.0, **kw: Any) -> Any:
        seen.append(base_url)
        raise RegistryUnreachable(
            f"no LLM Mesh registry answered at {base_url}. Start one with `llm-mesh up`."
        )

    monkeypatch.setattr(dm, "fetch_json_sync", fetch)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://set-after-import.test:8800")
    assert dm.main([]) == 1
    _out, err = capsys.readouterr()
    assert "unreachable" in err
    assert "http://set-after-import.test:8800" in err
    assert "llm-mesh up" in err
    assert "Traceback" not in err
    assert seen == ["http://set-after-import.test:8800"]  # env read when main ran


def test_main_other_mesh_error_returns_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fetch(base_url: str, path: str, timeout: float = 5.0, **kw: Any) -> Any:
        raise MeshError("request failed: boom")

    monkeypatch.setattr(dm, "fetch_json_sync", fetch)
    assert dm.main([]) == 1
    assert "boom" in capsys.readouterr().err


def test_main_bad_env_returns_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_MESH_HEARTBEAT_S", "often")
    assert dm.main([]) == 1
    assert "LLM_MESH_HEARTBEAT_S" in capsys.readouterr().err


def test_main_prints_status_and_returns_0(
    inprocess_mesh: InProcessMesh,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mesh = up(inprocess_mesh, "gemma-3-270m")
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(dm, "fetch_json_sync", sync_fetch_from(mesh, calls))
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", REGISTRY_URL)
    assert dm.main([]) == 0
    out = capsys.readouterr().out
    assert "gemma-3-270m" in out
    assert "1/1 nodes healthy" in out
    assert calls == [(REGISTRY_URL, "/mesh/models"), (REGISTRY_URL, "/mesh/nodes")]


def test_model_response_from_chat_body_without_mesh() -> None:
    body = {"model": "m", "choices": [{"message": {"content": "hey"}, "finish_reason": "stop"}]}
    r = ModelResponse.from_openai(body, task_type=None, requested="m")
    assert r.text == "hey"
    assert r.model == "m"
    assert r.node_id is None
    assert r.cost == 0
    assert r.prompt_tokens == 0
    assert json.dumps(r.to_dict())


def test_main_help_prints_a_usage_and_asks_no_registry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found 2026-12-04: ``python -m LLM_Mesh.distributed_models --help`` (the seed's
    migration guide runs the module) ignored ``--help`` and asked the registry."""

    def fetch(*_a: Any, **_kw: Any) -> Any:
        raise AssertionError("--help asked the registry")

    monkeypatch.setattr(dm, "fetch_json_sync", fetch)
    assert dm.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: python -m LLM_Mesh.distributed_models" in out
    assert "llm-mesh status" in out and "get_model_response" in out
    assert dm.main(["--bogus"]) == 2


async def test_get_response_and_handle_task_avoid_regions(inprocess_mesh: InProcessMesh) -> None:
    """Found 2026-12-05 (a new user): the migration guide says users can ask to avoid
    regions, and the gateway takes ``avoid_regions`` in the body, but its Python API had no
    way to send it: ``get_model_response(..., avoid_regions=["eu"])`` was a TypeError."""
    from LLM_Mesh.mesh_manager import MeshManager

    mesh = inprocess_mesh
    for name, region in (("eu", "eu-west"), ("us", "us-east"), ("nowhere", None)):
        mesh.add_node(["mistral-7b"], node_id=f"node-{name}", region=region)
    eu, us, nowhere = (mesh.id_of(f"node-{n}") for n in ("eu", "us", "nowhere"))
    reg = make(mesh)
    for _ in range(6):
        r = await reg.get_response("mistral-7b", "hi", avoid_regions=["EU"], max_tokens=4)
        assert r.node_id in (us, nowhere)
    r = await reg.get_response("mistral-7b", "hi", avoid_regions="eu", strict_regions=True)
    assert r.node_id == us
    t = await MeshManager(reg).handle_task_async(
        "general", "hi", model="mistral-7b", avoid_regions=["us", "eu"]
    )
    assert t.node_id == nowhere
    assert eu not in {r.node_id, t.node_id}


async def test_get_response_allow_prompt_keeping(inprocess_mesh: InProcessMesh) -> None:
    """A node that may keep prompts is held out unless the seed API's
    ``allow_prompt_keeping=True`` opts in (found 2026-12-06, attack33)."""
    mesh = inprocess_mesh
    mesh.add_node(["mistral-7b"], node_id="node-keeper", keeps_no_prompts=False)
    reg = make(mesh)
    with pytest.raises(ModelUnavailable, match="allow_prompt_keeping: true"):
        await reg.get_response("mistral-7b", "hi", max_tokens=4)
    r = await reg.get_response("mistral-7b", "hi", max_tokens=4, allow_prompt_keeping=True)
    assert r.node_id == mesh.id_of("node-keeper")


async def test_the_fallback_hint_names_only_a_model_that_answers_under_the_regions(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Under ``avoid_regions``, "with fallback=True X answers" named a model whose only node
    is in an avoided region too (found 2026-12-05): the 503 names the models up within the
    request's constraints, and the hint only one of them."""
    mesh = inprocess_mesh
    mesh.add_node("gemma-3-270m", node_id="node-gemma-eu", region="eu-west")
    mesh.add_node("mistral-7b", node_id="node-mistral-us", region="us-east")
    reg = make(mesh)
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("code-llama-7b", "def f():", "python", avoid_regions=["eu"])
    assert "fallback" not in info.value.message
    assert info.value.available == ["mistral-7b"]
    with pytest.raises(ModelUnavailable) as info:  # not tried on gemma: it would not answer
        await reg.get_response(
            "code-llama-7b", "def f():", "python", avoid_regions=["eu"], fallback=True
        )
    assert "no model of the same specialty is up for fallback" in info.value.message
    assert [c["model"] for c in mesh.completions] == ["code-llama-7b"] * 2
    # a gemma node outside the avoided region: now it answers, and the hint names it
    mesh.add_node("gemma-3-270m", node_id="node-gemma-us", region="us-east")
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("code-llama-7b", "def f():", "python", avoid_regions=["eu"])
    assert info.value.message.endswith("; with fallback=True gemma-3-270m answers (same specialty)")


async def test_a_task_routed_request_takes_the_tasks_best_within_the_regions(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05 (a new user's ``llm-mesh ask "hi" --task chat --avoid eu``): with no
    model named, task routing picked the best model up anywhere, ``mistral-7b``, whose only
    node was in ``eu-west``, and the request failed ("with --fallback gemma-3-270m answers")
    though gemma-3-270m, a general model for chat, served outside eu. No model was asked for:
    the task's best among the models up within the request's constraints answers (the
    gateway's 503 names them: the key's own regions count too)."""
    from LLM_Mesh.mesh_manager import MeshManager

    mesh = inprocess_mesh
    mesh.add_node("mistral-7b", node_id="node-mistral-eu", region="eu-west")
    mesh.add_node("gemma-3-270m", node_id="node-gemma-us", region="us-east")
    reg = make(mesh)
    r = await reg.get_response(None, "hi", "chat", avoid_regions=["eu"], max_tokens=4)
    assert r.model == "gemma-3-270m" and r.fallback_from is None
    assert r.node_id == mesh.id_of("node-gemma-us") and r.simulated
    t = await MeshManager(reg).handle_task_async("chat", "hi", avoid_regions=["eu"])
    assert t.model == "gemma-3-270m"
    r = await reg.get_response(None, "hi", "chat", max_tokens=4)  # no constraint: the best
    assert r.model == "mistral-7b"
    # a model asked for by name is still that model, or the 503 and its hint
    with pytest.raises(ModelUnavailable) as info:
        await reg.get_response("mistral-7b", "hi", "chat", avoid_regions=["eu"])
    assert "with fallback=True gemma-3-270m answers" in info.value.message
    with pytest.raises(ModelUnavailable):  # nothing up outside eu and us: the 503 itself
        await reg.get_response(None, "hi", "chat", avoid_regions=["eu", "us"])
