"""Warm vs cold: nodes are routed for models they host but have not loaded yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from LLM_Mesh.core.balancer import Outcome
from tests.registry.helpers import Harness, running

CHAT = "/v1/chat/completions"
MODEL = "gemma-3-270m"


def body(model: str = MODEL) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


def reg(node_id: str, models: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "node_id": node_id,
        "url": f"http://{node_id}:8801",
        "models": [{"engine": "sim", "simulated": True, **m} for m in models],
        "max_concurrency": 1,
        "max_queue": 0,
        **kw,
    }


async def add(h: Harness, node_id: str, *models: dict[str, Any]) -> None:
    h.nodes.add(node_id)
    r = await h.client.post("/mesh/nodes", json=reg(node_id, list(models)))
    assert r.status_code == 200, r.text


async def test_cold_only_node_is_routed_and_listed_available(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "cold", {"id": MODEL, "loaded": False, "load_time_s": 2.0})
        st = h.runtime.routing.router.node("cold")
        assert st is not None and st.loaded == frozenset()
        assert st.cold_start_for(MODEL) == 2000.0
        models = {m["id"]: m for m in (await h.client.get("/mesh/models")).json()["models"]}
        assert models[MODEL]["available"] and models[MODEL]["nodes"] == 1
        assert models[MODEL]["nodes_loaded"] == 0
        assert not models["mistral-7b"]["available"]
        v1 = {m["id"]: m for m in (await h.client.get("/v1/models")).json()["data"]}
        assert v1[MODEL]["available"]
        r = await h.client.post(CHAT, json=body())
        assert r.status_code == 200, r.text
        assert r.json()["mesh"]["node_id"] == "cold"
        # it answered, so it is loaded now (the view says so before the next heartbeat)
        assert st.loaded == {MODEL}
        view = (await h.client.get("/mesh/nodes")).json()["nodes"][0]
        assert view["models"][0]["loaded"] is True


async def test_warm_preferred_cold_serves_when_warm_is_full(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "warm", {"id": MODEL, "loaded": True, "load_time_s": 0})
        await add(h, "cold", {"id": MODEL, "loaded": False, "load_time_s": 3.0})
        for _ in range(5):
            r = await h.client.post(CHAT, json=body())
            assert r.json()["mesh"]["node_id"] == "warm"
        att = h.runtime.routing.begin("warm", MODEL)  # warm has no room now
        r = await h.client.post(CHAT, json=body())
        assert r.json()["mesh"]["node_id"] == "cold"
        h.runtime.routing.finish(att, Outcome.SUCCESS)


async def test_heartbeat_models_list_updates_loaded_and_load_time(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "a", {"id": MODEL, "loaded": True}, {"id": "mine", "loaded": True})
        hb = {
            "in_flight": 0,
            "queued": 0,
            "loaded_models": [MODEL],
            "models": [
                {"id": MODEL, "engine": "sim", "loaded": True, "load_time_s": 0.0},
                {"id": "mine", "engine": "sim", "loaded": False, "load_time_s": 4.5},
            ],
        }
        r = await h.client.post("/mesh/nodes/a/heartbeat", json=hb)
        assert r.status_code == 200
        st = h.runtime.routing.router.node("a")
        assert st is not None and st.loaded == {MODEL}
        assert st.cold_start_for("mine") == 4500.0
        view = (await h.client.get("/mesh/nodes")).json()["nodes"][0]
        loaded = {m["id"]: (m["loaded"], m.get("load_time_s")) for m in view["models"]}
        assert loaded == {MODEL: (True, 0.0), "mine": (False, 4.5)}
        for key in ("in_flight", "queued", "max_concurrency", "health_score", "latency_ms_ewma",
                    "ttft_ms_ewma", "requests", "failures", "region"):  # fmt: skip
            assert key in view
        # "mine" is unloaded but hosted: still routable and available
        models = {m["id"]: m for m in (await h.client.get("/mesh/models")).json()["models"]}
        assert models["mine"]["available"] and models["mine"]["nodes_loaded"] == 0
        r = await h.client.post(CHAT, json=body("mine"))
        assert r.status_code == 200 and r.json()["mesh"]["node_id"] == "a"


async def test_loaded_models_alone_still_updates(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await add(h, "a", {"id": MODEL}, {"id": "mine"})
        await h.client.post("/mesh/nodes/a/heartbeat", json={"loaded_models": ["mine"]})
        st = h.runtime.routing.router.node("a")
        assert st is not None and st.loaded == {"mine"}
        assert st.cold_start_for(MODEL) == st.cold_start_ms  # the router's default
        up = (await h.client.post(CHAT, json=body())).json()
        assert up["mesh"]["node_id"] == "a"
