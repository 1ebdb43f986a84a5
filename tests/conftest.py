"""Shared fixtures: every test runs with a clean mesh environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

_MESH_ENV = (
    "LLM_MESH_HOME",
    "LLM_MESH_REGISTRY_URL",
    "LLM_MESH_DATABASE_URL",
    "LLM_MESH_HEARTBEAT_S",
    "LLM_MESH_MISSED_HEARTBEATS",
    "LLM_MESH_HEALTH_CHECK_S",
    "LLM_MESH_REQUEST_TIMEOUT_S",
)


@pytest.fixture(autouse=True)
def clean_mesh_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's ~/.llm-mesh or registry URL."""
    for key in _MESH_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LLM_MESH_HOME", str(tmp_path / "mesh-home"))
    yield
