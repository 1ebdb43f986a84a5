"""Every dashboard page labels a simulated node (or a model only simulated nodes serve)
wherever it lists one: the operator's earnings per model and canary verdicts, a model
served by real and simulated nodes alike, the playground's task picks, a node's page.
Found 2026-12-05 (a new user's walk): these read like a real node's figures."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from LLM_Mesh.registry.ledger_accounts import pseudonyms
from tests.inprocess_mesh import InProcessMesh
from tests.registry.dashboard.conftest import MODEL
from tests.registry.dashboard.test_operator import _fragment, _table
from tests.registry.test_earnings import settle

SIM_TAG = '<span class="tag sim"'


def _make_real(mesh: InProcessMesh, name: str) -> None:
    """The node ``name`` as a real engine's (the in-process nodes all run the sim engine)."""
    entry = mesh.app.state.runtime.table.get(mesh.id_of(name))
    for model_id, hosted in entry.models.items():
        entry.models[model_id] = hosted.model_copy(update={"simulated": False, "engine": "x"})


def test_the_operator_view_labels_a_sim_nodes_earnings_and_verdicts(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    rt = inprocess_mesh.app.state.runtime
    me = inprocess_mesh.call(pseudonyms(inprocess_mesh.call(rt.ledger.engine()))).operator(
        "inprocess"
    )
    now = datetime.fromtimestamp(rt.wall_clock(), timezone.utc)
    inprocess_mesh.call(settle(rt.ledger, "r1", node_id=node_id, operator=me, model=MODEL,
                               amount=1_000_000, fee=50_000, at=now))  # fmt: skip
    inprocess_mesh.call(rt.quality.record(node_id, MODEL, ok=False, reason="off"))
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    row = body[body.index(f'data-node="{node_id}"') :]
    assert SIM_TAG in row[: row.index("</tr>")]  # the node's row
    models = _table(body, "earnings-model")
    row = models[models.index(f'data-model="{MODEL}"') :]
    assert SIM_TAG in row[: row.index("</tr>")], row
    totals = body[body.index('data-earnings="totals"') :]
    totals = totals[: totals.index("</p>")]
    assert re.search(r">simulated</span> 0\.950000 of it earned by nodes simulated now", totals), (
        totals
    )
    verdicts = _table(body, "verdicts")
    row = verdicts[verdicts.index(f'data-verdict="{node_id} {MODEL}"') :]
    assert SIM_TAG in row[: row.index("</tr>")], row


def test_the_operator_view_does_not_label_a_real_nodes_earnings(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL)
    _make_real(inprocess_mesh, f"node-{MODEL}")
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    rt = inprocess_mesh.app.state.runtime
    me = inprocess_mesh.call(pseudonyms(inprocess_mesh.call(rt.ledger.engine()))).operator(
        "inprocess"
    )
    now = datetime.fromtimestamp(rt.wall_clock(), timezone.utc)
    inprocess_mesh.call(settle(rt.ledger, "r1", node_id=node_id, operator=me, model=MODEL,
                               amount=1_000_000, fee=50_000, at=now))  # fmt: skip
    body = _fragment(inprocess_mesh, inprocess_mesh.operator_token)
    assert 'data-earnings="totals"' in body and SIM_TAG not in body


def test_a_model_served_by_real_and_sim_nodes_says_how_many_are_simulated(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL, "real")
    inprocess_mesh.add_node(MODEL, "sim")
    _make_real(inprocess_mesh, "real")
    with inprocess_mesh.sync_client() as c:
        body = c.get("/dashboard/fragment/models").text
        nodes = c.get("/dashboard/fragment/nodes").text
    row = body[body.index(f'data-model="{MODEL}"') :]
    cell = row[row.index('data-label="Nodes serving"') :]
    cell = cell[: cell.index("</td>")]
    assert re.search(r">2 <span class=\"tag sim\"[^>]*>1 simulated</span>", cell), cell
    for name, labelled in (("real", False), ("sim", True)):
        row = nodes[nodes.index(f'data-node="{inprocess_mesh.id_of(name)}"') :]
        assert (SIM_TAG in row[: row.index("</tr>")]) is labelled, name


def test_the_playground_labels_a_task_pick_only_sim_nodes_serve(
    inprocess_mesh: InProcessMesh,
) -> None:
    inprocess_mesh.add_node(MODEL)
    with inprocess_mesh.sync_client() as c:
        body = c.get("/dashboard/playground").text
    assert f'data-model="{MODEL}">python → {MODEL} (simulated)</option>' in body


def test_a_sim_nodes_page_says_so_in_its_heading(inprocess_mesh: InProcessMesh) -> None:
    inprocess_mesh.add_node(MODEL)
    node_id = inprocess_mesh.id_of(f"node-{MODEL}")
    with inprocess_mesh.sync_client() as c:
        body = c.get(f"/dashboard/nodes/{node_id}").text
    h1 = body[body.index("<h1") : body.index("</h1>")]
    assert SIM_TAG in h1, h1
