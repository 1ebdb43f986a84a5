"""``GET /v1/pricing``: the network's fee and the price rule's parameters, public (found
2026-12-05: no endpoint published the fee; a statement took it from the operator's flag)."""

from __future__ import annotations

from pathlib import Path

from LLM_Mesh.core.pricing import Price, part_costs, split
from LLM_Mesh.registry.pricing_api import PricingView
from tests.registry.helpers import running
from tests.registry.test_send import CHAT, MODEL, chat


async def test_the_fee_and_every_price_are_published_without_a_key(tmp_path: Path) -> None:
    async with running(tmp_path, network_fee_bps=725) as h:
        await h.register("n1", models=[MODEL, "my-custom-7b"])
        r = await h.client.get("/v1/pricing")
        assert r.status_code == 200, r.text
        body = PricingView.model_validate(r.json())
        assert body.network_fee_bps == 725
        assert (body.per_tokens, body.cost_rounding, body.fee_rounding) == (1000, "up", "up")
        listed = (await h.client.get("/v1/models", params={"all": "true"})).json()["data"]
        for m in listed:  # the same prices /v1/models shows, for each model
            assert body.models[m["id"]].model_dump() == m["pricing"], m["id"]
        assert body.models["my-custom-7b"] == body.custom


async def test_a_payment_is_recomputed_from_what_is_published(tmp_path: Path) -> None:
    """A node's share of an answer follows from the published price and fee alone."""
    async with running(tmp_path, network_fee_bps=725) as h:
        await h.register("n1")
        pub = (await h.client.get("/v1/pricing")).json()
        r = await h.client.post(CHAT, json=chat(max_tokens=8))
        assert r.status_code == 200, r.text
        usage, mesh = r.json()["usage"], r.json()["mesh"]
        price = pub["models"][MODEL]
        cost = part_costs(
            Price(price["prompt_per_1k"], price["completion_per_1k"]),
            usage["prompt_tokens"], [usage["completion_tokens"]],
        )[0]  # fmt: skip
        assert mesh["cost"] == cost
        share, fee = split(cost, pub["network_fee_bps"])
        parts = mesh["receipt"]["parts"]
        assert [(p["amount"], p["fee"]) for p in parts] == [(cost, fee)]
        assert mesh["receipt"]["fee_bps"] == pub["network_fee_bps"] and share == cost - fee
