"""Earnings in the real mesh, in process: a sim node serves, is paid, earns uptime, and
its operator sees it all through ``/v1/earnings``, ``llm-mesh earnings``' client call and
the node's own ``/mesh/earnings`` (what ``llm-mesh node info`` shows).

The request's settlement is written as the settlement code writes it (the row and its
entries in one append, ``tests/registry/test_earnings.py``); the uptime comes from the
node's real heartbeats through the registry's heartbeat path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from LLM_Mesh.cli.ledger_commands import StoreSource, audit
from LLM_Mesh.client import MeshClient
from LLM_Mesh.core.ledger_entry import pseudonym
from LLM_Mesh.errors import InvalidCredential
from LLM_Mesh.registry import ledger_accounts
from LLM_Mesh.registry.runtime import Runtime
from tests.inprocess_mesh import ON_THE_MACHINE, REGISTRY_URL, InProcessMesh, node_url
from tests.keyed import operator_account

MODEL = "gemma-3-270m"
# 1000 micro-NetworkTokens per millisecond of uptime: a few real milliseconds pay
RATE = 3_600_000_000


REAL_NEW_KEY = ledger_accounts.new_key  # before the tests' fixed key replaces it


@pytest.fixture
def random_account_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's ledger makes its own random account key, as a real registry does."""
    monkeypatch.setattr(ledger_accounts, "new_key", REAL_NEW_KEY)


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[InProcessMesh]:
    # a sim node serves here: its uptime counts only with reward_simulated
    m = InProcessMesh(tmp_path / "mesh", reward_rate=RATE, reward_simulated=True).start()
    try:
        yield m
    finally:
        m.close()


def _runtime(mesh: InProcessMesh) -> Runtime:
    assert mesh.app is not None
    rt: Runtime = mesh.app.state.runtime
    return rt


async def _serve_and_settle(mesh: InProcessMesh, name: str) -> tuple[str, int, int]:
    """One real request through the gateway (paid by the community pool, anonymous), then
    settled by the gateway's own settlement; (request id, amount, fee) as settled."""
    async with mesh.client() as c:
        r = await c.post(
            REGISTRY_URL + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        )
    assert r.status_code == 200, r.text
    request_id = str(r.json()["mesh"]["request_id"])
    rt = _runtime(mesh)
    assert rt.settlement is not None
    await rt.settlement.flush()
    await rt.settlement.settle_now()
    engine = await rt.ledger.engine()  # type: ignore[union-attr]
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT amount, fee, state FROM settlements WHERE request_id = :r"),
                {"r": request_id},
            )
        ).one()
    assert row.state == "settled" and row.amount > 0, row
    return request_id, int(row.amount), int(row.fee)


async def _uptime_then_close(mesh: InProcessMesh, name: str) -> int:
    """Real heartbeats (the node's agent, the registry's heartbeat path), then the
    current period closed; the reward paid."""
    node = mesh.nodes[name]
    assert node.service.agent is not None
    for _ in range(2):
        await asyncio.sleep(0.02)
        assert await node.service.agent.send_heartbeat()
    rt = _runtime(mesh)
    assert rt.rewards is not None
    period = rt.settings.reward_period_s
    report = await rt.rewards.close(int(time.time()) // period * period)
    assert report.closed == 1 and report.paid == 1
    return report.amount


def test_the_operator_sees_what_its_node_earned(mesh: InProcessMesh) -> None:
    mesh.add_node(MODEL, "n1")
    node_id = mesh.id_of("n1")
    _rid, amount, fee = mesh.call(_serve_and_settle(mesh, "n1"))
    earned = amount - fee
    reward = mesh.call(_uptime_then_close(mesh, "n1"))
    # 40 ms slept before and between the two heartbeats; each is stamped when the registry
    # takes it, so background work (the settler's thread) can shift a stamp by a few ms
    assert reward >= 30 * 1000
    token = mesh.operator_token
    assert token

    async def ask() -> dict[str, object]:
        async with MeshClient(REGISTRY_URL, http_client=mesh.client()) as client:
            return await client.earnings(token)

    report = mesh.call(ask())
    totals = report["totals"]
    assert totals == {
        "requests": 1, "earned": earned, "fees": fee, "rewards": reward, "total": earned + reward,
    }  # fmt: skip
    assert report["nodes"] == [node_id]
    assert [n["node_id"] for n in report["by_node"]] == [node_id]  # type: ignore[union-attr]
    # a sim node: its model's row and the total's share say so (newuser31)
    assert report["by_model"] == [
        {"model": MODEL, "requests": 1, "earned": earned, "fees": fee, "simulated": "all"}
    ]
    assert report["simulated_total"] == earned + reward
    assert report["balance"] == earned + reward

    # the node's own view, asked by the node of its registry with its operator token
    with mesh.sync_client() as c:
        mine = c.get(node_url("n1") + "/mesh/earnings", headers=ON_THE_MACHINE).json()
    assert mine["node"] == node_id and mine["totals"] == totals

    # and the books still check out, rewards and all
    rt = _runtime(mesh)
    assert rt.ledger is not None
    audited = mesh.call(audit(StoreSource(rt.ledger, rt.settings.ledger_origin)))
    assert audited.ok, audited.findings
    assert audited.balances[operator_account("inprocess")] == earned + reward


def test_a_guessed_operator_name_is_not_found_in_the_public_ledger(
    random_account_key: None, mesh: InProcessMesh
) -> None:
    """Found 2026-12-03: an operator's account was an unkeyed hash of its name, and every
    reward entry named its node's unkeyed hash, node ids being public: anyone hashed a
    guessed name (or a listed node id) and read that operator's earnings. Now the accounts
    are keyed by the ledger's secret: after a request settled and an uptime reward, hashing
    the name and the listed node id finds nothing in the public ledger, while the operator
    still sees its own account and balance."""
    mesh.add_node(MODEL, "n1")
    _rid, amount, fee = mesh.call(_serve_and_settle(mesh, "n1"))
    reward = mesh.call(_uptime_then_close(mesh, "n1"))
    with mesh.sync_client() as c:  # what anyone reads, without a key
        listed = [n["node_id"] for n in c.get(REGISTRY_URL + "/mesh/nodes").json()["nodes"]]
        page = c.get(REGISTRY_URL + "/v1/ledger", params={"limit": 1000}).json()
    assert listed == [mesh.id_of("n1")] and not page["has_more"]
    kinds = [e["kind"] for e in page["data"]]
    assert "settle" in kinds and "reward" in kinds
    public = "\n".join(str(e) for e in page["data"])
    guesses = [pseudonym("operator", "inprocess")]
    guesses += [pseudonym(kind, n) for n in listed for kind in ("node", "held", "operator")]
    for guess in guesses:
        assert guess.split(":")[1] not in public, guess
    token = mesh.operator_token
    assert token

    async def ask() -> dict[str, object]:
        async with MeshClient(REGISTRY_URL, http_client=mesh.client()) as client:
            return await client.earnings(token)

    mine = mesh.call(ask())
    assert mine["balance"] == amount - fee + reward
    assert str(mine["account"]) in public  # the operator finds its own entries


def test_node_earnings_when_the_registry_is_unreachable(mesh: InProcessMesh) -> None:
    """The node says the registry did not answer (503), never zeros."""
    mesh.add_node(MODEL, "n1")
    mesh.router.unmount(REGISTRY_URL)
    with mesh.sync_client() as c:
        r = c.get(node_url("n1") + "/mesh/earnings", headers=ON_THE_MACHINE)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "registry_unreachable"
    assert "totals" not in r.text


def test_a_wrong_operator_token_gets_nothing(mesh: InProcessMesh) -> None:
    mesh.add_node(MODEL, "n1")

    async def ask() -> object:
        async with MeshClient(REGISTRY_URL, http_client=mesh.client()) as client:
            return await client.earnings("lmo_guess")

    with pytest.raises(InvalidCredential):
        mesh.call(ask())
