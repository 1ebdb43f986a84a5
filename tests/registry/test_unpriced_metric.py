"""A request answered but not charged, its charges not in its receipt (money42: a wiring
fault, ``core/receipt_money.price_receipt``), is counted on the replica's ``GET /metrics`` as
``llm_mesh_gateway_unpriced_requests_total{model}`` (found 2026-12-07, small42: only the
registry's ERROR line said it; the nodes that served it unpaid, nobody told). Read back with
prometheus-client's own parser (``tests/metrics_scrape.py``); with ``--workers N`` every
worker's summed, as the other counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from LLM_Mesh.registry import account as account_stage
from tests.registry.helpers import Harness, running
from tests.registry.test_charge import BODY, CHAT, bearer, new_user, register
from tests.registry.test_metrics import scrape
from tests.registry.test_metrics_workers import _as_worker, _shared

UNPRICED = "llm_mesh_gateway_unpriced_requests_total"


@pytest.fixture
def one_charge_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """A charge with no part of the receipt to go with (as money42's test makes it)."""
    real = account_stage.charge_parts

    def one_too_many(job: Any, tally: Any, payment: Any) -> Any:
        charged, found = real(job, tally, payment)  # (found: each priced part's receipt part)
        return [*charged, ("no-such-node", 7, 1)], found

    monkeypatch.setattr(account_stage, "charge_parts", one_too_many)


async def _unpriced_answer(h: Harness, key: str) -> None:
    r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
    assert r.status_code == 200, r.text
    mesh = r.json()["mesh"]
    assert (mesh["cost"], mesh["receipt"]["settled"]) == (0, False), mesh


@pytest.mark.usefixtures("one_charge_too_many")
async def test_a_request_not_charged_for_its_receipt_is_counted(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, _payer = await new_user(h, 1000)
        before = await scrape(h)
        assert before.families[UNPRICED.removesuffix("_total")] == "counter"
        assert before.value(UNPRICED) == 0
        await _unpriced_answer(h, key)
        await _unpriced_answer(h, key)
        after = await scrape(h)
        assert after.value(UNPRICED, model=BODY["model"]) == 2  # before the fix: no family
        assert after.label_values(UNPRICED, "model") == {BODY["model"]}


async def test_a_charged_request_is_not_counted(tmp_path: Path) -> None:
    async with running(tmp_path) as h:
        await register(h, "a", "alice")
        key, _payer = await new_user(h, 1000)
        r = await h.client.post(CHAT, json=BODY, headers=bearer(key))
        assert r.status_code == 200 and r.json()["mesh"]["cost"] > 0, r.text
        assert (await scrape(h)).value(UNPRICED) == 0


@pytest.mark.usefixtures("one_charge_too_many")
async def test_every_workers_unpriced_requests_are_summed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``registry serve --workers N``: each worker's scrape shows every worker's (one ended)."""
    _shared(tmp_path, monkeypatch)
    for pid, want in ((501, 1), (502, 2)):
        _as_worker(monkeypatch, pid)
        async with running(tmp_path / f"w{pid}") as h:
            await register(h, "a", "alice")
            key, _payer = await new_user(h, 1000)
            await _unpriced_answer(h, key)
            assert (await scrape(h)).value(UNPRICED, model=BODY["model"]) == want
