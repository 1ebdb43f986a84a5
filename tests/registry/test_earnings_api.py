"""``GET /v1/earnings``: only for the operator, with its token; the attacks on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from LLM_Mesh.core.ledger_entry import MINT, Transfer
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.api_keys import create_api_key
from LLM_Mesh.registry.app import create_registry_app
from LLM_Mesh.registry.earnings_api import EarningsReport
from LLM_Mesh.registry.ledger_accounts import pseudonyms
from LLM_Mesh.registry.memory_store import MemoryStore
from LLM_Mesh.registry.runtime import Runtime
from tests.registry.helpers import ADMIN_KEY, make_settings
from tests.registry.test_earnings import USER, reward_row, settle

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)


@dataclass
class Mesh:
    client: httpx.AsyncClient
    runtime: Runtime
    store: MemoryStore
    alice: str  # tokens
    bob: str
    account: str  # alice's ledger account

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    store = MemoryStore()
    app = create_registry_app(
        make_settings(tmp_path), store=store, wall_clock=lambda: NOW.timestamp(),
        announce=lambda _key: None,
    )  # fmt: skip
    async with app.router.lifespan_context(app):
        rt: Runtime = app.state.runtime
        alice, bob = await add_operator(store, "alice"), await add_operator(store, "bob")
        assert alice and bob
        for node_id, op in (("a1", "alice"), ("a2", "alice"), ("b1", "bob")):
            await store.claim_node_key(node_id, f"key-{node_id}", op, 1, NOW)
        assert rt.ledger is not None
        keyed = await pseudonyms(await rt.ledger.engine())
        ALICE, BOB = keyed.operator("alice"), keyed.operator("bob")
        await rt.ledger.append([Transfer("grant", MINT, USER, 1_000_000)])
        for i, (node_id, op) in enumerate((("a1", ALICE), ("a2", ALICE), ("b1", BOB))):
            await settle(
                rt.ledger, f"r{i}", node_id=node_id, operator=op, model="m",
                amount=1000 * (i + 1), fee=10, at=NOW,
            )  # fmt: skip
        await reward_row(rt.ledger, "b1", BOB, NOW.replace(minute=0), 5_000)
        t = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=t, base_url="http://mesh") as client:
            yield Mesh(client, rt, store, alice, bob, ALICE)


async def test_an_operator_sees_its_own_earnings(mesh: Mesh) -> None:
    r = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))
    assert r.status_code == 200, r.text
    body = EarningsReport.model_validate(r.json())
    assert body.operator == "alice" and body.account == mesh.account
    assert body.nodes == ["a1", "a2"]
    assert body.totals.earned == 990 + 1990 and body.totals.requests == 2
    assert body.balance == 990 + 1990
    assert [n.node_id for n in body.by_node] == ["a1", "a2"]  # bob's b1 is not shown
    bob = (await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.bob))).json()
    assert bob["totals"]["total"] == 2990 + 5000 and [n["node_id"] for n in bob["by_node"]] == [
        "b1"
    ]


async def test_one_node_of_ones_own(mesh: Mesh) -> None:
    r = await mesh.client.get("/v1/earnings", params={"node": "a2"}, headers=mesh.auth(mesh.alice))
    assert r.status_code == 200 and r.json()["totals"]["earned"] == 1990


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic YWxpY2U6eA=="},
        {"Authorization": "Bearer lmo_not-a-token"},
    ],
)
async def test_no_or_a_wrong_token_is_401(mesh: Mesh, headers: dict[str, str]) -> None:
    r = await mesh.client.get("/v1/earnings", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_credential"
    assert "earned" not in r.text


async def test_an_unknown_token_is_told_what_to_do(mesh: Mesh) -> None:
    """As registration says it (failed before: the bare "unknown operator token")."""
    r = await mesh.client.get("/v1/earnings", headers=mesh.auth("lmo_not-a-token"))
    said = r.json()["error"]["message"]
    assert r.status_code == 401 and said.startswith("unknown operator token: not one"), said
    assert "`llm-mesh registry operators add NAME`" in said


async def test_an_admin_key_or_api_key_is_no_operator_token(mesh: Mesh) -> None:
    made = await create_api_key(mesh.store, name="client")
    assert made is not None
    key = made[0]
    for token in (ADMIN_KEY, key):
        r = await mesh.client.get("/v1/earnings", headers=mesh.auth(token))
        assert r.status_code == 401


async def test_another_operators_node_is_403(mesh: Mesh) -> None:
    for node in ("b1", "no-such-node"):
        r = await mesh.client.get(
            "/v1/earnings", params={"node": node}, headers=mesh.auth(mesh.alice)
        )
        assert r.status_code == 403, node
        assert r.json()["error"]["code"] == "forbidden" and r.json()["error"]["param"] == "node"
        assert "1990" not in r.text and "2990" not in r.text


async def test_the_403_says_what_makes_a_node_ones_own(mesh: Mesh) -> None:
    """Found 2026-12-06 (a new user's second node, refused at registration: loopback): its
    ``llm-mesh node info`` said ``earnings unavailable: node '...' is not one of operator
    second's nodes`` and nothing of why or what to do. The words now say that a node is the
    operator's once registered under its token; the same for another operator's node and
    for none (which of the two is not told)."""
    said = {}
    for node in ("b1", "no-such-node"):
        r = await mesh.client.get(
            "/v1/earnings", params={"node": node}, headers=mesh.auth(mesh.alice)
        )
        said[node] = r.json()["error"]["message"].replace(repr(node), "NODE")
    assert said["b1"] == said["no-such-node"], said
    assert "registered with this registry under the operator's token" in said["b1"], said
    assert "llm-mesh node info" in said["b1"], said


async def test_a_revoked_operator_is_401(mesh: Mesh) -> None:
    await mesh.store.revoke_operator("alice", NOW + timedelta(seconds=1))
    r = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))
    said = r.json()["error"]["message"]
    assert r.status_code == 401 and said.startswith("operator alice is revoked"), said
    # what it can still do (found 2026-12-07, user41b: the bare error left it no way to see
    # what it was paid before), and no account told to the revoked token
    assert "llm-mesh ledger statement --account operator:..." in said, said
    assert "registry's admin" in said, said
    # bob is not affected
    assert (await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.bob))).status_code == 200


@pytest.mark.parametrize("params", [{"days": "0"}, {"days": "367"}, {"days": "x"}])
async def test_bad_parameters_are_400(mesh: Mesh, params: dict[str, str]) -> None:
    r = await mesh.client.get("/v1/earnings", params=params, headers=mesh.auth(mesh.alice))
    assert r.status_code == 400


async def test_the_route_is_in_the_openapi_document(mesh: Mesh) -> None:
    doc = (await mesh.client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/earnings"]["get"]
    assert {"200", "400", "401", "403"} <= set(op["responses"])


async def test_no_old_account_is_named_where_it_has_no_history(mesh: Mesh) -> None:
    """An operator that never had an account of before keyed accounts (migration 0018; a
    fresh store): ``old_account`` is null, so ``llm-mesh earnings`` and ``node info`` do
    not name one (found 2026-12-04: every answer named the unkeyed account, and the
    summary said "and operator:..., its account before keyed accounts" on a fresh store)."""
    from LLM_Mesh.cli.earnings_render import summary_line

    r = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))
    assert r.status_code == 200, r.text
    assert r.json()["old_account"] is None
    assert "before keyed accounts" not in summary_line(r.json())
    assert r.json()["balance"] == 990 + 1990


async def test_a_revoked_nodes_row_says_revoked(mesh: Mesh) -> None:
    """Found 2026-12-07 (newuser44): ``llm-mesh earnings`` listed a revoked node as any
    other; each ``by_node`` row now says ``revoked`` (its node key's), ``?node=`` too."""
    await mesh.store.revoke_node("a2", NOW)
    r = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))
    assert r.status_code == 200, r.text
    body = EarningsReport.model_validate(r.json())
    assert [(n.node_id, n.revoked) for n in body.by_node] == [("a1", False), ("a2", True)]
    one = await mesh.client.get("/v1/earnings?node=a2", headers=mesh.auth(mesh.alice))
    assert [(n["node_id"], n["revoked"]) for n in one.json()["by_node"]] == [("a2", True)]
    bob = await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.bob))
    assert [n["revoked"] for n in bob.json()["by_node"]] == [False]
