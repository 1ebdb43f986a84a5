"""Where a node's ejection is shown, the models it is out of (found 2026-12-05, ``polish31``):
since ``eject31`` a node is ejected from the model pools that can spare it and kept (rested)
in the others, yet ``/mesh/nodes`` (public and admin), the dashboard's node page and the
``nodes_ejected`` gauge said only ``ejected: true``: not that it still serves its own model.
Now each says for which models (``ejected_models``; the gauge by model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.registry.helpers import ADMIN, Harness, running
from tests.registry.test_metrics import scrape
from tests.registry.test_uptime_credit import MODEL, ask

OWN = "my-finetune"


async def listed(h: Harness, headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = await h.client.get("/mesh/nodes", headers=headers or {})
    assert r.status_code == 200, r.text
    return {n["node_id"]: n for n in r.json()["nodes"]}


async def test_a_partly_ejected_node_is_shown_out_of_its_popular_model_only(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, max_attempts=1) as h:
        await h.register("broken", models=[MODEL, OWN], behavior="500")
        for n in ("good1", "good2", "good3"):
            await h.register(n)
        before = await listed(h)
        assert before["broken"]["ejected"] is False and before["broken"]["ejected_models"] == []
        assert await ask(h, "broken") == 502  # a 5xx for the popular model: ejected there
        for view in (await listed(h), await listed(h, ADMIN)):  # public and admin alike
            assert view["broken"]["ejected"] is True
            assert view["broken"]["ejected_models"] == [MODEL]  # still serves OWN
            assert view["good1"]["ejected_models"] == []
        page = (await h.client.get("/dashboard/nodes/broken")).text
        assert f"ejected as an outlier from {MODEL}" in page
        assert f'data-ejected="{MODEL}"' in page and f'data-ejected="{OWN}"' not in page
        s = await scrape(h)
        assert s.value("llm_mesh_gateway_nodes_ejected") == 1
        assert s.value("llm_mesh_gateway_nodes_ejected_by_model", model=MODEL) == 1
        assert s.value("llm_mesh_gateway_nodes_ejected_by_model", model=OWN) == 0
        h.clock.advance(31)  # the ejection is over
        h.runtime.routing.router.tick(h.clock())
        assert (await listed(h))["broken"]["ejected_models"] == []
        assert (await scrape(h)).value("llm_mesh_gateway_nodes_ejected_by_model", model=MODEL) == 0


async def test_the_openapi_document_names_ejected_models(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        doc = (await h.client.get("/openapi.json")).json()
    props = doc["components"]["schemas"]["NodeView"]["properties"]
    shapes = props["ejected_models"]["anyOf"]  # a list of model ids, or null (no view)
    assert {"type": "array", "items": {"type": "string"}} in shapes
    assert {"type": "null"} in shapes
