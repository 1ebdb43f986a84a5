"""``GET /v1/earnings`` labels a simulated node (``registry/earnings_api.py``), as every
listing does: found 2026-12-05 (a new user's ``llm-mesh earnings`` in the home of a node
``./setup-node-operator.sh --engine sim`` set up), its per-node row read like a real
node's, earnings for made-up answers unlabelled. The real registry, settlement and a sim
node (``tests/inprocess_mesh.py``): SIMULATED."""

from __future__ import annotations

from typing import Any

from LLM_Mesh.registry.runtime import Runtime
from tests.inprocess_mesh import InProcessMesh

BODY = {"model": "gemma-3-270m", "prompt": "def f():", "max_tokens": 8}


def test_a_sim_nodes_earnings_say_simulated(inprocess_mesh: InProcessMesh) -> None:
    mesh = inprocess_mesh
    mesh.add_node("gemma-3-270m", node_id="node-sim")
    with mesh.sync_client() as c:
        assert c.post("/v1/completions", json=BODY).status_code == 200
        assert mesh.app is not None
        rt: Runtime = mesh.app.state.runtime
        assert rt.settlement is not None
        mesh.call(rt.settlement.flush())
        r = c.get("/v1/earnings", headers={"Authorization": f"Bearer {mesh.operator_token}"})
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["by_node"]
    assert [(n["node_id"], n["requests"], n["simulated"]) for n in rows] == [
        (mesh.id_of("node-sim"), 1, True)
    ]


def test_a_sim_nodes_earnings_per_model_and_total_say_simulated(
    inprocess_mesh: InProcessMesh,
) -> None:
    """Found 2026-12-05 (newuser31): ``llm-mesh earnings`` labelled the sim node's row but
    not its model's row nor the total (the dashboard's operator view labels both):
    ``GET /v1/earnings`` now gives each ``by_model`` row's ``simulated`` ("all", "some" or
    null) and ``simulated_total``, as the dashboard computes them."""
    mesh = inprocess_mesh
    mesh.add_node("gemma-3-270m", node_id="node-sim")
    with mesh.sync_client() as c:
        assert c.post("/v1/completions", json=BODY).status_code == 200
        assert mesh.app is not None
        rt: Runtime = mesh.app.state.runtime
        assert rt.settlement is not None
        mesh.call(rt.settlement.flush())
        r = c.get("/v1/earnings", headers={"Authorization": f"Bearer {mesh.operator_token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(m["model"], m["simulated"]) for m in body["by_model"]] == [("gemma-3-270m", "all")]
    assert body["simulated_total"] == body["totals"]["total"] > 0
