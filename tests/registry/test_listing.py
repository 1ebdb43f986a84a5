"""What the mesh lists: /v1/models (served now; ?all=true the catalog), /mesh/models,
/mesh/nodes, and which of them only simulated nodes serve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.registry.helpers import Harness, running


def reg(node_id: str, *models: dict[str, Any]) -> dict[str, Any]:
    return {"node_id": node_id, "url": f"http://{node_id}:8801", "models": list(models)}


SIM = {"id": "gemma-3-270m", "engine": "sim", "simulated": True}
REAL = {"id": "gemma-3-270m", "engine": "llama-cpp", "simulated": False}


async def add(h: Harness, node_id: str, *models: dict[str, Any]) -> None:
    h.nodes.add(node_id)
    r = await h.client.post("/mesh/nodes", json=reg(node_id, *models))
    assert r.status_code == 200, r.text


async def v1(h: Harness, query: str = "") -> dict[str, dict[str, Any]]:
    r = await h.client.get("/v1/models" + query)
    assert r.status_code == 200, r.text
    return {m["id"]: m for m in r.json()["data"]}


async def test_v1_models_lists_only_models_served_now(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        assert await v1(h) == {}  # no node: nothing an OpenAI client could use
        await add(h, "a", REAL)
        assert list(await v1(h)) == ["gemma-3-270m"]
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # its heartbeats stop
        assert await v1(h) == {}


async def test_v1_models_all_true_lists_the_whole_catalog(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "a", REAL)
        everything = await v1(h, "?all=true")
        assert everything["gemma-3-270m"]["available"] is True
        assert everything["mistral-7b"]["available"] is False
        mesh = (await h.client.get("/mesh/models")).json()["models"]
        assert [m["id"] for m in mesh] == list(everything)
        assert await v1(h, "?all=false") == await v1(h)


async def test_v1_models_refuses_a_malformed_all(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        for bad in ("?all=maybe", "?all="):
            r = await h.client.get("/v1/models" + bad)
            assert r.status_code == 400, bad
            assert r.json()["error"]["param"] == "all"


async def test_model_served_only_by_sim_nodes_says_simulated(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "sim-1", SIM)
        await add(h, "sim-2", SIM)
        m = (await v1(h))["gemma-3-270m"]
        assert m["simulated"] is True and m["nodes_simulated"] == 2 == m["nodes"]
        listed = {x["id"]: x for x in (await h.client.get("/mesh/models")).json()["models"]}
        assert listed["gemma-3-270m"]["simulated"] is True
        assert listed["mistral-7b"]["simulated"] is False  # not served at all
        nodes = (await h.client.get("/mesh/nodes")).json()["nodes"]
        assert [n["simulated"] for n in nodes] == [True, True]


async def test_one_real_node_makes_the_model_not_simulated(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "sim-1", SIM)
        await add(h, "real-1", REAL)
        m = (await v1(h))["gemma-3-270m"]
        assert m["simulated"] is False and m["nodes_simulated"] == 1 and m["nodes"] == 2
        listed = {x["id"]: x for x in (await h.client.get("/mesh/models")).json()["models"]}
        assert listed["gemma-3-270m"]["simulated"] is False
        nodes = {n["node_id"]: n for n in (await h.client.get("/mesh/nodes")).json()["nodes"]}
        assert nodes["sim-1"]["simulated"] is True and nodes["real-1"]["simulated"] is False


def declaring(context: int | None) -> dict[str, Any]:
    return {**REAL, **({} if context is None else {"context_length": context})}


async def mesh(h: Harness) -> dict[str, dict[str, Any]]:
    r = await h.client.get("/mesh/models")
    assert r.status_code == 200, r.text
    return {m["id"]: m for m in r.json()["models"]}


async def test_listings_say_the_context_the_mesh_serves_now(tmp_path: Path) -> None:
    """Found 2026-12-06 (context34): ``llm-mesh models`` and ``/v1/models`` said 32768 (the
    catalog's) for gemma-3-270m while its only node declared 4096 (``n_ctx``) and a request
    past 4096 was refused: ``context_length`` is now the largest context a healthy node
    serving it declares (at most the catalog's), ``catalog_context_length`` the catalog's."""
    async with running(tmp_path) as h:
        await add(h, "small", declaring(4096))
        for listing in (await v1(h), await v1(h, "?all=true"), await mesh(h)):
            gemma = listing["gemma-3-270m"]
            assert gemma["context_length"] == 4096  # before: 32768
            assert gemma["catalog_context_length"] == 32_768
        await add(h, "mid", declaring(8192))
        assert (await v1(h))["gemma-3-270m"]["context_length"] == 8192  # the largest
        assert (await mesh(h))["gemma-3-270m"]["context_length"] == 8192
        await add(h, "huge", declaring(10**9))  # more than the model has: the model's
        assert (await v1(h))["gemma-3-270m"]["context_length"] == 32_768
        h.clock.advance(h.settings.heartbeat_expiry_s + 1)  # none live: the catalog's again
        listed = (await v1(h, "?all=true"))["gemma-3-270m"]
        assert (listed["context_length"], listed["catalog_context_length"]) == (32_768, 32_768)
        assert (await mesh(h))["gemma-3-270m"]["context_length"] == 32_768


async def test_a_node_declaring_no_context_serves_the_models_own(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "small", declaring(4096))
        await add(h, "plain", declaring(None))
        assert (await v1(h))["gemma-3-270m"]["context_length"] == 32_768


async def test_a_custom_models_entry_has_no_catalog_context(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "c", {"id": "tiny-custom", "engine": "llama-cpp", "context_length": 2048})
        for listing in (await v1(h), await mesh(h)):
            entry = listing["tiny-custom"]
            assert (entry["context_length"], entry.get("catalog_context_length", 0)) == (2048, None)


def test_the_parse_stages_cache_follows_the_node_table() -> None:
    """``ServedContexts``: again after a registration (``NodeTable.changes``) at once, and
    after ``ttl_s`` on the table's clock (a node expired, not yet swept)."""
    from LLM_Mesh.core.catalog import get_spec
    from LLM_Mesh.core.schemas import NodeRegistration
    from LLM_Mesh.registry.listing import ServedContexts
    from LLM_Mesh.registry.node_table import NodeTable
    from tests.registry.helpers import ManualClock

    clock, spec, cache = ManualClock(), get_spec("gemma-3-270m"), ServedContexts()
    assert spec is not None
    table = NodeTable(30.0, clock)
    assert cache.get(table, spec) == 32_768  # no node: the catalog's
    table.register(NodeRegistration.model_validate(reg("a", declaring(4096))))
    assert cache.get(table, spec) == 4096  # a registration: at once
    clock.advance(0.5)
    table.register(NodeRegistration.model_validate(reg("b", declaring(8192))))
    assert cache.get(table, spec) == 8192
    clock.advance(31.0)  # both expired, no sweep yet: past ttl_s, read again
    assert cache.get(table, spec) == 32_768
