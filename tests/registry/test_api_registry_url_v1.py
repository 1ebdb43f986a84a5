"""The Python API's ``registry_url`` is read as the setting is (``core/registry_urls.py``):
found 2026-12-05 (polish32): ``DistributedModelRegistry(registry_url=".../v1")`` — the
gateway's OpenAI base URL, what ``llm-mesh up`` prints first — was taken as it, and its
requests went to ``/v1/mesh/...`` and ``/v1/v1/...``: ``Not Found``."""

from __future__ import annotations

import pytest

from LLM_Mesh.distributed_models import DistributedModelRegistry
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh


def _made(mesh: InProcessMesh, url: str) -> DistributedModelRegistry:
    return DistributedModelRegistry(mesh.settings, registry_url=url, http_client=mesh.client())


@pytest.mark.parametrize("tail", ["/v1", "/v1/"])
async def test_a_v1_registry_url_reaches_the_registry(
    inprocess_mesh: InProcessMesh, tail: str
) -> None:
    inprocess_mesh.add_nodes("gemma-3-270m")
    reg = _made(inprocess_mesh, REGISTRY_URL + tail)
    assert reg.registry_url == REGISTRY_URL
    summary = await reg.initialize()
    assert summary["registry_url"] == REGISTRY_URL
    answer = await reg.get_response("gemma-3-270m", "def f():", "python")
    assert answer.node_id


async def test_replicas_given_with_v1_each_lose_it(inprocess_mesh: InProcessMesh) -> None:
    reg = _made(inprocess_mesh, f"{REGISTRY_URL}/v1, http://127.0.0.2:9/v1/")
    assert reg.registry_url == f"{REGISTRY_URL},http://127.0.0.2:9"


def test_a_url_without_its_scheme_is_refused_naming_it() -> None:
    reg = DistributedModelRegistry(registry_url="127.0.0.1:8800")
    with pytest.raises(ValueError, match=r"registry_url: '127\.0\.0\.1:8800' has no scheme"):
        _ = reg.registry_url
