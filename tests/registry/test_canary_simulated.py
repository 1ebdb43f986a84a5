"""``POST /mesh/canary/run`` says which probed node runs a simulated engine."""

from __future__ import annotations

from tests.registry.canary_mesh import MODEL, SHA, canned, mesh, nodes_view, register, run_round
from tests.registry.helpers import Harness

__all__ = ["mesh"]  # the fixture


async def test_a_sim_nodes_verdicts_say_simulated(mesh: Harness) -> None:
    """``POST /mesh/canary/run`` says which probed node runs a simulated engine (the
    registration's ``simulated``, as ``GET /mesh/nodes`` shows it), so ``canary run`` can
    label it (found 2026-12-04: the answer had no such field, the table no label)."""
    await register(mesh, "real", canned)
    r = await mesh.client.post(
        "/mesh/nodes",
        json={
            "node_id": "sim-1",
            "url": "http://sim-1:8801",
            "models": [{"id": MODEL, "engine": "sim", "simulated": True, "sha256": SHA}],
            "max_concurrency": 2,
        },
    )
    assert r.status_code == 200, r.text
    mesh.nodes.add("sim-1")
    results = {r["node_id"]: r for r in await run_round(mesh)}
    assert results["sim-1"]["simulated"] is True
    assert results["real"]["simulated"] is False
    assert (await nodes_view(mesh))["sim-1"]["simulated"] is True
