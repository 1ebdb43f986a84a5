"""The seed's task router (mesh_manager.py) against a fake registry/gateway."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import LLM_Mesh.mesh_manager as mm
from LLM_Mesh.core.tasks import TASK_SPECIALTIES
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.errors import ModelUnavailable
from LLM_Mesh.mesh_manager import MeshManager, TaskResult
from tests.meshfake import REGISTRY_URL, FakeMesh

CODE = "def f(x): return x +"
ERROR = "SyntaxError: invalid syntax"


def manager(mesh: FakeMesh) -> MeshManager:
    return MeshManager(
        DistributedModelRegistry(registry_url=REGISTRY_URL, http_client=mesh.client())
    )


async def test_handle_task_awaited_in_loop() -> None:
    mesh = FakeMesh(up=["gemma-3-270m", "code-llama-7b"], answer="The + has no right operand.")
    pending = manager(mesh).handle_task("debug", {"code": CODE, "error": ERROR})
    assert inspect.isawaitable(pending)
    result = await pending
    assert isinstance(result, TaskResult)
    assert result.task_type == "debug"
    assert result.model == "code-llama-7b"  # policy: debug specialist
    assert result.node_id == "node-code-llama-7b"
    assert result.specialties == TASK_SPECIALTIES["debug"]
    assert str(result) == result.response == "The + has no right operand."
    assert result.cost == 0.000033
    assert result.latency_ms == 45.5
    assert result.ttft_ms == 5.25
    assert result.tokens_per_s == 488.0
    assert result.prompt_tokens == 11
    assert result.completion_tokens == 22
    assert result.simulated is True
    assert result.fallback_from is None
    assert result.request_id == "req-1"
    assert result.to_dict()["model"] == "code-llama-7b"

    # the registry was asked what is up, then the gateway got the built prompt
    assert mesh.paths() == ["GET /mesh/models", "GET /mesh/nodes", "POST /v1/completions"]
    (sent,) = mesh.completions
    assert sent["model"] == "code-llama-7b"
    assert sent["task_type"] == "debug"
    assert sent["max_tokens"] == 128
    assert CODE in sent["prompt"]
    assert ERROR in sent["prompt"]


async def test_handle_task_only_gemma_up() -> None:
    mesh = FakeMesh(up=["gemma-3-270m", "mistral-7b"])
    result = await manager(mesh).handle_task("python", {"prompt": "def fibonacci(n):"})
    assert result.model == "gemma-3-270m"
    assert mesh.completions[-1]["prompt"] == "def fibonacci(n):"


async def test_handle_task_unknown_task_routes_general() -> None:
    mesh = FakeMesh(up=["gemma-3-270m", "mistral-7b"])
    result = await manager(mesh).handle_task("haiku", "Write a haiku.")
    assert result.model == "mistral-7b"
    assert result.specialties == TASK_SPECIALTIES["general"]


async def test_handle_task_explicit_model_and_options() -> None:
    mesh = FakeMesh(up=["gemma-3-270m", "code-llama-7b"])
    result = await manager(mesh).handle_task(
        "debug",
        {"code": CODE, "error": ERROR},
        model="gemma-3-270m",
        max_tokens=16,
        temperature=0.0,
    )
    assert result.model == "gemma-3-270m"
    assert "GET /mesh/models" not in mesh.paths()  # no need to choose
    assert mesh.completions[-1]["max_tokens"] == 16
    assert mesh.completions[-1]["temperature"] == 0.0


async def test_handle_task_fallback() -> None:
    mesh = FakeMesh(up=["gemma-3-270m"])
    result = await manager(mesh).handle_task(
        "python", {"prompt": "def f():"}, model="code-llama-7b", fallback=True
    )
    assert result.model == "gemma-3-270m"
    assert result.fallback_from == "code-llama-7b"


async def test_handle_task_nothing_up() -> None:
    mesh = FakeMesh(up=[])
    with pytest.raises(ModelUnavailable):
        await manager(mesh).handle_task("debug", {"code": CODE, "error": ERROR})


async def test_bad_payload_raises_before_any_request() -> None:
    mesh = FakeMesh(up=["gemma-3-270m"])
    with pytest.raises(ValueError, match="code"):
        await manager(mesh).handle_task("debug", {"source": CODE})
    assert mesh.requests == []


def test_handle_task_from_sync_code_runs_to_completion() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    mesh = FakeMesh(up=["gemma-3-270m", "code-llama-7b"])
    m = manager(mesh)
    result = m.handle_task("debug", {"code": CODE, "error": ERROR})
    assert isinstance(result, TaskResult)
    assert result.model == "code-llama-7b"
    assert result.cost == 0.000033
    assert CODE in mesh.completions[-1]["prompt"]
    assert ERROR in mesh.completions[-1]["prompt"]
    # and again: each call gets its own event loop
    again = m.handle_task("python", {"prompt": "def g():"})
    assert isinstance(again, TaskResult)
    assert again.model == "code-llama-7b"


def test_handle_task_from_sync_code_raises_mesh_errors() -> None:
    mesh = FakeMesh(up=["mistral-7b"])
    with pytest.raises(ModelUnavailable) as info:
        manager(mesh).handle_task("python", {"prompt": "x"}, model="code-llama-7b")
    assert info.value.available == ["mistral-7b"]


def test_default_manager_uses_module_registry() -> None:
    import LLM_Mesh.distributed_models as dm

    assert mm.mesh_manager.registry is dm.model_registry
    assert MeshManager().registry is dm.model_registry
