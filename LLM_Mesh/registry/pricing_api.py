"""``GET /v1/pricing``: what a verifier needs to recompute a payment, public.

The network's fee (``LLM_MESH_NETWORK_FEE_BPS``, basis points of each paid part) and the
price rule's parameters (``core/pricing.py``): per model, µNT per 1,000 prompt and per
1,000 completion tokens (every catalog model and every custom model a node hosts now),
the custom models' price, the rounding (each part's cost up to a whole µNT, its fee up:
``fee_rounding`` ``up`` since 2026-12-06, ``money34``; ``down`` before, when a part under
10000 / ``network_fee_bps`` µNT paid no fee).
``llm-mesh ledger statement --operator --served FILE`` takes the fee and the prices from
here (``cli/ledger_statement.py``; ``--fee-bps`` overrides). Until 2026-12-05 no endpoint
published the fee: the statement took it from the operator's flag (found 2026-12-05).

The fee may change (a restart with another value): it is what applies *now*. What a
settled request was cut at is in its own entries (a ``settle`` and the ``fee`` after it)
and its countersigned receipt (``fee_bps``, each part's ``amount`` and ``fee``), which is
what a statement judges an older payment by (``core/served_check.py``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from LLM_Mesh.core.catalog import CUSTOM_COMPLETION_PRICE_PER_1K, CUSTOM_PROMPT_PRICE_PER_1K
from LLM_Mesh.core.pricing import MAX_FEE_BPS, UNIT, Price
from LLM_Mesh.registry.errors import JSONAnswer
from LLM_Mesh.registry.listing import openai_models
from LLM_Mesh.registry.runtime import get_runtime
from LLM_Mesh.registry.strict_query import STRICT

__all__ = ["PricingView", "pricing_body", "router"]

router = APIRouter(tags=["Pricing"])

RULE = (
    "each part's cost = ceil((prompt_tokens × prompt_per_1k + completion_tokens × "
    "completion_per_1k) / 1000) µNT (the prompt with the last part that delivered a token; "
    "a part without a completion token costs 0; all parts at most the request's estimate); "
    "its fee = ceil(cost × network_fee_bps / 10000); the node's operator is paid cost - fee"
)


class PartPrice(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt_per_1k: int = Field(description="µNT per 1,000 prompt tokens")
    completion_per_1k: int = Field(description="µNT per 1,000 completion tokens")
    unit: Literal["micro-NetworkToken"]


class PricingView(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: Literal["pricing"]
    unit: Literal["micro-NetworkToken"]
    network_fee_bps: int = Field(
        ge=0, le=MAX_FEE_BPS, description="the network's fee now, basis points of each paid part"
    )
    settlement: bool = Field(description="whether this registry charges and pays requests")
    per_tokens: Literal[1000]
    cost_rounding: Literal["up"]
    fee_rounding: Literal["up"]
    rule: str
    custom: PartPrice = Field(description="the price of a model outside the catalog")
    models: dict[str, PartPrice] = Field(
        description="model id -> its price: the catalog's and the custom models hosted now"
    )


def pricing_body(fee_bps: int, settlement: bool, models: dict[str, Any]) -> dict[str, Any]:
    """The answer's body (pure)."""
    return {
        "object": "pricing",
        "unit": UNIT,
        "network_fee_bps": fee_bps,
        "settlement": settlement,
        "per_tokens": 1000,
        "cost_rounding": "up",
        "fee_rounding": "up",
        "rule": RULE,
        "custom": Price(CUSTOM_PROMPT_PRICE_PER_1K, CUSTOM_COMPLETION_PRICE_PER_1K).to_json(),
        "models": models,
    }


@router.get("/v1/pricing", **STRICT, responses={200: {"model": PricingView}}, response_model=None)
async def get_pricing(request: Request) -> JSONAnswer:
    """The network's fee and every model's price: what a payment is recomputed from."""
    rt = get_runtime(request)
    models = {m["id"]: m["pricing"] for m in openai_models(rt.table, include_all=True)["data"]}
    # the fee settlement cuts each part at (its own copy of network_fee_bps)
    fee = rt.settlement.fee_bps if rt.settlement is not None else rt.settings.network_fee_bps
    return JSONAnswer(pricing_body(fee, rt.settlement is not None, models))
