"""distributed_models as a module and a program: the module functions, the registry URL read
from the environment when first needed, and ``main`` (status, help, its errors)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

import LLM_Mesh.distributed_models as dm
from LLM_Mesh.distributed_models import DistributedModelRegistry, ModelResponse
from LLM_Mesh.errors import (
    InvalidRequest,
    MeshError,
    RegistryUnreachable,
)
from tests.distributed_models_fixtures import sync_fetch_from, up
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh

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
    # one sentence, the error's own words after a colon (failed before: ". no LLM Mesh")
    assert "LLM Mesh: registry unreachable: no LLM Mesh registry answered at" in err
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
