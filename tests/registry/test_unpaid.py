"""A request served and not charged, its receipt unable to carry the charges, is told to
the operators of the nodes that served it (found 2026-12-07, money43: money42 stopped
charging such a request, and small42 counted it on ``/metrics``, but its nodes' operators
were told nothing): the gateway counts it per node (``registry/unpaid.py``, migration
0035) and ``GET /v1/earnings`` answers the operator's nodes' counts (``unpaid``), which
``llm-mesh earnings`` says."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.cli.earnings_render import node_earnings_view, unpaid_lines
from LLM_Mesh.core.receipt_money import OTHERS_FAULT, OWN_FAULT
from LLM_Mesh.registry import account as account_stage
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.earnings_api import EarningsReport
from LLM_Mesh.registry.store_unpaid import Unpaid, UnpaidCount
from tests.registry.helpers import running
from tests.registry.test_charge import BODY, CHAT, MODEL, bearer, new_user, register
from tests.registry.test_earnings_api import NOW, Mesh, mesh  # noqa: F401 (the fixture)

# what a node is told whose request another node's charge left uncharged (since money44:
# never that node's id; before, "a charge of node no-such-node had no payable part ...")
WHY = OTHERS_FAULT


def _one_too_many(monkeypatch: pytest.MonkeyPatch, node: Any = "no-such-node") -> None:
    """A charge of ``node`` (or ``node(served)``, the node that served) with no part of the
    receipt to go with (a wiring fault: ``core/receipt_money.price_receipt``)."""
    real = account_stage.charge_parts

    def charged(job: Any, tally: Any, payment: Any) -> Any:
        parts, found = real(job, tally, payment)  # (found: each priced part's receipt part)
        return [*parts, (node(parts[0][0]) if callable(node) else node, 7, 1)], found

    monkeypatch.setattr(account_stage, "charge_parts", charged)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_nodes_of_a_request_not_charged_are_counted_for_their_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """Before: nothing stored, ``GET /v1/earnings`` had no ``unpaid``."""
    _one_too_many(monkeypatch)
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        token = await add_operator(h.store, "alice")
        assert token
        await h.store.claim_node_key("a", "key-a", "alice", 1, datetime.now(timezone.utc))
        key, _ = await new_user(h, 1000)
        for _ in range(2):
            r = await h.client.post(CHAT, json={**BODY, "stream": stream}, headers=bearer(key))
            assert r.status_code == 200, r.text
        writer = h.runtime.unpaid
        assert writer is not None
        await writer.flush()
        today = datetime.fromtimestamp(h.runtime.wall_clock(), timezone.utc).date()
        assert await h.store.unpaid_served(["a"], today) == [
            UnpaidCount("a", MODEL, WHY, 2)  # (no-such-node is nobody's: "a" alone is told)
        ]
        r = await h.client.get("/v1/earnings", headers=bearer(token))
        assert r.status_code == 200, r.text
        report = EarningsReport.model_validate(r.json())
        assert report.unpaid_requests == 2 and report.totals.requests == 0
        assert [(u.node_id, u.model, u.reason, u.requests) for u in report.unpaid] == [
            ("a", MODEL, WHY, 2)
        ]
        assert "no-such-node" not in r.text  # the node at fault is not named to a's operator


async def test_each_operator_is_told_its_own_nodes_reason_never_another_nodes_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request not charged because of node A's charge (a wiring fault), served by B: B's
    operator reads that another node's charge was at fault, never A's id; A's operator that
    it was A's own (found 2026-12-07, money44: both rows said "a charge of node A ...")."""
    a, b = "node-alpha", "node-beta"
    _one_too_many(monkeypatch, node=lambda served: a if served == b else b)
    async with running(tmp_path) as h:
        tokens: dict[str, str] = {}
        for node, operator in ((a, "alice"), (b, "bob")):
            await register(h, node, operator)
            token = await add_operator(h.store, operator)
            assert token
            tokens[node] = token
            await h.store.claim_node_key(node, f"key-{node}", operator, 1,
                                         datetime.now(timezone.utc))  # fmt: skip
        key, _ = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200 and r.json()["mesh"]["cost"] == 0, r.text
        served = r.json()["mesh"]["node_id"]
        fault = a if served == b else b
        assert h.runtime.unpaid is not None
        await h.runtime.unpaid.flush()
        said = {}
        for node in (a, b):
            r = await h.client.get("/v1/earnings", headers=bearer(tokens[node]))
            assert r.status_code == 200, r.text
            said[node] = r.json()["unpaid"]
            if node == served:  # the other node's id nowhere in its operator's answer
                assert fault not in r.text
        assert said[served] == [{"node_id": served, "model": MODEL, "reason": OTHERS_FAULT,
                                 "requests": 1}]  # fmt: skip
        assert said[fault] == [{"node_id": fault, "model": MODEL, "reason": OWN_FAULT,
                                "requests": 1}]  # fmt: skip


async def test_a_request_charged_is_not_counted(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, _ = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200 and r.json()["mesh"]["cost"] > 0, r.text
        assert h.runtime.unpaid is not None
        await h.runtime.unpaid.flush()
        assert await h.store.unpaid_served(["a"], date(2000, 1, 1)) == []


async def test_earnings_answer_only_the_operators_own_nodes_in_the_window(
    mesh: Mesh,  # noqa: F811
) -> None:
    day = NOW.date().isoformat()
    await mesh.store.record_unpaid([
        Unpaid("r1", "a1", "m", WHY, day), Unpaid("r2", "a1", "m", WHY, day),
        Unpaid("r3", "b1", "m", WHY, day), Unpaid("r4", "a2", "m", WHY, "2025-01-01"),
    ])  # fmt: skip
    alice = (await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.alice))).json()
    assert alice["unpaid"] == [{"node_id": "a1", "model": "m", "reason": WHY, "requests": 2}]
    assert alice["unpaid_requests"] == 2
    bob = (await mesh.client.get("/v1/earnings", headers=mesh.auth(mesh.bob))).json()
    assert [(u["node_id"], u["requests"]) for u in bob["unpaid"]] == [("b1", 1)]
    one = await mesh.client.get("/v1/earnings?node=a2", headers=mesh.auth(mesh.alice))
    assert one.json()["unpaid"] == [] and one.json()["unpaid_requests"] == 0


def test_earnings_say_the_requests_served_unpaid_and_why() -> None:
    report = {"unpaid": [
        {"node_id": "a1", "model": "m", "reason": WHY, "requests": 3},
        {"node_id": "a2", "model": "\x1b[31mx", "reason": "r", "requests": 1},
        "not a row", {"node_id": "a3", "requests": 0},
    ]}  # fmt: skip
    lines = unpaid_lines(report)
    assert len(lines) == 2
    assert "3 requests served unpaid" in lines[0] and "node a1 (model m)" in lines[0]
    assert WHY in lines[0] and "nobody was charged" in lines[0]
    assert "1 request served unpaid" in lines[1] and "\x1b" not in lines[1]
    assert unpaid_lines({}) == [] and unpaid_lines({"unpaid": "x"}) == []
    view = node_earnings_view({"registry": "r"}, {**report, "totals": {}}, None)
    assert any(isinstance(p, str) and "served unpaid" in p for p in view)
