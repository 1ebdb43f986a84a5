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
from LLM_Mesh.registry import account as account_stage
from LLM_Mesh.registry.admin import add_operator
from LLM_Mesh.registry.earnings_api import EarningsReport
from LLM_Mesh.registry.store_unpaid import Unpaid, UnpaidCount
from tests.registry.helpers import running
from tests.registry.test_charge import BODY, CHAT, MODEL, bearer, new_user, register
from tests.registry.test_earnings_api import NOW, Mesh, mesh  # noqa: F401 (the fixture)

WHY = "a charge of node no-such-node had no payable part of the receipt"


def _one_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """A charge with no part of the receipt to go with (a wiring fault: ``_priced``)."""
    real = account_stage.charge_parts

    def charged(job: Any, tally: Any, payment: Any) -> Any:
        return [*real(job, tally, payment), ("no-such-node", 7, 1)]

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
