"""A mesh registry for the ``distributed_models`` tests (``test_distributed_models*.py``,
``cli/test_ask_stream.py``): a clock, models up, a ModelRegistry over a stand-in network, a
fetch that answers or is not called, and a first replica that is down."""

from __future__ import annotations

from typing import Any

import httpx

from LLM_Mesh.bounded_http import Read, answer_object
from LLM_Mesh.distributed_models import DistributedModelRegistry
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh


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


def sync_fetch_from(mesh: InProcessMesh, calls: list[tuple[str, str]]) -> Any:
    def fetch(
        base_url: str, path: str, timeout: float = 5.0, ca_file: str | None = None,
        read: Read = answer_object, **_where: Any,
    ) -> Any:  # fmt: skip
        calls.append((base_url, path))
        return mesh.fetch_json_sync(base_url, path, timeout, read)

    return fetch


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
