"""Settlement through the real mesh in process: a keyed user pays, the node's operator
earns, the network takes its fee, and the books check out (``tests/inprocess_mesh.py``:
the real registry and real sim nodes that sign their registrations with an operator's
token, operator ``inprocess``)."""

from __future__ import annotations

import json
from dataclasses import replace

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.core.catalog import get_spec
from LLM_Mesh.core.delivered import SLACK_PER_CHOICE
from LLM_Mesh.core.ledger_entry import MINT, NETWORK, POOL, Transfer
from LLM_Mesh.core.pricing import request_cost, split
from LLM_Mesh.distributed_models import DistributedModelRegistry
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.runtime import Runtime
from LLM_Mesh.registry.settlement import Settlement, user_account
from tests.inprocess_mesh import REGISTRY_URL, InProcessMesh
from tests.keyed import operator_account

MODEL = "code-llama-7b"


async def test_a_keyed_user_pays_and_the_operator_earns(inprocess_mesh: InProcessMesh) -> None:
    mesh = inprocess_mesh
    mesh.add_node(MODEL)
    assert mesh.app is not None
    rt: Runtime = mesh.app.state.runtime
    assert rt.ledger is not None and rt.settlement is not None
    made = mesh.call(create_api_key(mesh.store, name="dana"))
    assert made is not None
    key, user = made[0], user_account(made[1].key_id)
    mesh.call(rt.ledger.append_one(Transfer("grant", MINT, user, 1_000_000)))

    # the seed API with the key: the answer says what it cost
    settings = replace(mesh.settings, api_key=key)
    reg = DistributedModelRegistry(settings, registry_url=REGISTRY_URL, http_client=mesh.client())
    res = await reg.get_response(MODEL, "def fib(n):", max_tokens=16)
    spec = get_spec(MODEL)
    assert spec is not None
    cost = request_cost(spec.price, res.prompt_tokens, res.completion_tokens)
    assert res.cost == cost > 0 and res.currency == "micro-NetworkToken"

    mesh.call(rt.settlement.flush())
    # the gateway's lease on the user's balance (reserved until it goes back, idle) handed back
    assert mesh.call(_give_back(rt.settlement)) == 1
    mesh.call(rt.settlement.flush())
    operator, fee = split(cost, mesh.settings.network_fee_bps)
    balances = mesh.call(rt.ledger.balances())
    assert balances[user] == 1_000_000 - cost
    assert balances[operator_account("inprocess")] == operator
    assert balances.get(NETWORK, 0) == fee
    async with mesh.client() as http:
        mine = (await http.get("/v1/balance", headers={"Authorization": f"Bearer {key}"})).json()
    assert (mine["balance"], mine["reserved"]) == (1_000_000 - cost, 0)

    # an anonymous request is paid by the pool; then everything adds up
    async with mesh.client() as http:
        body = {"model": MODEL, "prompt": "x", "max_tokens": 4}
        r = await http.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
    mesh.call(rt.settlement.flush())

    pool = mesh.call(rt.ledger.balances())[POOL]
    assert pool == mesh.settings.pool_daily_budget - r.json()["mesh"]["cost"]
    report = mesh.call(audit(StoreSource(rt.ledger, mesh.settings.ledger_origin)))
    assert report.ok, report.findings


async def _give_back(s: Settlement) -> int:
    """Hand back every idle lease, on the mesh's event loop."""
    return s.give_back(float("inf"))


async def test_a_sim_nodes_answers_are_priced_at_its_own_usage(
    inprocess_mesh: InProcessMesh,
) -> None:
    """An honest (simulated) node's count is within the bytes it delivers plus the slack
    (``core/delivered.py``): the gateway prices it as the node said, whole or streamed, and
    the books balance."""
    mesh = inprocess_mesh
    mesh.add_node(MODEL)
    assert mesh.app is not None
    rt: Runtime = mesh.app.state.runtime
    assert rt.ledger is not None and rt.settlement is not None
    spec = get_spec(MODEL)
    assert spec is not None
    async with mesh.client() as http:
        for stream in (False, True):
            body = {"model": MODEL, "prompt": "def fib(n):", "max_tokens": 64, "stream": stream}
            r = await http.post("/v1/completions", json=body)
            assert r.status_code == 200, r.text
            answer = (
                [json.loads(e[6:]) for e in r.text.split("\n\n") if e.startswith("data: {")][-1]
                if stream
                else r.json()
            )
            usage, meta = answer["usage"], answer["mesh"]
            assert meta["simulated"] is True and usage["completion_tokens"] > SLACK_PER_CHOICE
            assert meta["completion_tokens"] == usage["completion_tokens"]
            assert meta["cost"] == request_cost(
                spec.price, usage["prompt_tokens"], usage["completion_tokens"]
            )
    mesh.call(rt.settlement.flush())
    report = mesh.call(audit(StoreSource(rt.ledger, mesh.settings.ledger_origin)))
    assert report.ok, report.findings
