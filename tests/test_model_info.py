"""``model_registry.get_model_info()`` says which models and hosts are simulated.

Against the real registry app in process (ASGI), nodes registered as sim or real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LLM_Mesh.distributed_models import DistributedModelRegistry
from tests.registry.helpers import Harness, running


async def add(h: Harness, node_id: str, engine: str) -> None:
    model = {"id": "gemma-3-270m", "engine": engine, "simulated": engine == "sim"}
    reg: dict[str, Any] = {"node_id": node_id, "url": f"http://{node_id}:8801", "models": [model]}
    assert (await h.client.post("/mesh/nodes", json=reg)).status_code == 200


async def info(h: Harness) -> dict[str, Any]:
    registry = DistributedModelRegistry(registry_url="http://mesh", http_client=h.client)
    await registry.initialize()
    return registry.get_model_info()


async def test_model_served_only_by_sim_nodes_is_simulated(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "sim-1", "sim")
        everything = await info(h)
        assert everything["models_simulated"] == ["gemma-3-270m"]
        gemma = everything["models"]["gemma-3-270m"]
        assert gemma["simulated"] is True
        assert [(x["node_id"], x["simulated"]) for x in gemma["hosts"]] == [("sim-1", True)]
        assert everything["models"]["mistral-7b"]["simulated"] is False


async def test_a_real_host_makes_it_real(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "sim-1", "sim")
        await add(h, "real-1", "llama-cpp")
        everything = await info(h)
        assert everything["models_simulated"] == []
        gemma = everything["models"]["gemma-3-270m"]
        assert gemma["simulated"] is False
        hosts = {x["node_id"]: x["simulated"] for x in gemma["hosts"]}
        assert hosts == {"sim-1": True, "real-1": False}
