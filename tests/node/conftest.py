"""Fixtures for node tests: a started sim service and an ASGI client (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from LLM_Mesh.config import Settings
from LLM_Mesh.core.schemas import Hardware
from LLM_Mesh.node.app import create_node_app
from LLM_Mesh.node.config import NodeConfig
from LLM_Mesh.node.engines.base import Engine
from LLM_Mesh.node.engines.sim import SimEngine
from LLM_Mesh.node.service import NodeService
from tests.waiting import SOON_S, scaled

MODEL = "gemma-3-270m"
# a loopback Host, as the CLI sends: the node's loopback-only endpoints refuse any other
# name (core/browser_origin.py: DNS rebinding), ASGI clients' "testserver" or "node.test" too
NODE_URL = "http://127.0.0.1:8801"


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


def sim_engine(**kw: Any) -> SimEngine:
    kw.setdefault("ttft_s", 0.0)
    kw.setdefault("tokens_per_s", 1000.0)
    kw.setdefault("sleep", no_sleep)
    return SimEngine(kw.pop("models", [MODEL]), **kw)


def node_config(**kw: Any) -> NodeConfig:
    kw.setdefault("engine", "sim")
    kw.setdefault("models", [MODEL])
    kw.setdefault("register", False)
    return NodeConfig(**kw)


def node_id_in(settings: Settings) -> str:
    """The id of the node whose key is in ``settings.home`` (made there on first use)."""
    from LLM_Mesh.node.service import node_identity

    return node_identity(NodeConfig(engine="sim", models=[MODEL]), settings).node_id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # a registry on another machine over plain http, whose first answer's key these tests'
    # nodes learn: the operator's opt-in (core/first_use.py; tests/node/test_first_use.py)
    return Settings(
        home=tmp_path / "home", registry_url="http://registry.test", allow_http_first_use=True
    )


async def started_service(
    settings: Settings, engine: Engine | None = None, **config: Any
) -> NodeService:
    svc = NodeService(
        node_config(**config),
        settings,
        engine=engine or sim_engine(),
        hardware=Hardware(cpu_count=4, memory_bytes=8 << 30),
    )
    await svc.start()
    return svc


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[NodeService]:
    svc = await started_service(settings)
    yield svc
    await svc.stop()


def asgi_client(
    svc: NodeService, client: tuple[str, int] = ("127.0.0.1", 4321)
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_node_app(svc), client=client)
    return httpx.AsyncClient(transport=transport, base_url=NODE_URL)


@pytest.fixture
async def client(service: NodeService) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(service) as c:
        yield c


async def wait_until(predicate: Callable[[], bool], timeout: float = SOON_S) -> None:
    """Poll ``predicate`` on the loop until it holds (fails the test after ``timeout``,
    scaled: tests/waiting.py; a fixed 5 s before flakes40, short of a loaded box)."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - polling state the code under test owns
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), scaled(timeout))
