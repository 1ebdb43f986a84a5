"""What a request costs, in NetworkTokens.

Users pay only for what they use: ``(prompt_tokens + completion_tokens) / 1000
* price_per_1k_tokens`` of the model, rounded to 1e-6 NetworkTokens. Nothing is
charged for a request that produced no completion.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

QUANTUM = Decimal("0.000001")


def request_cost(prompt_tokens: int, completion_tokens: int, price_per_1k_tokens: float) -> float:
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts cannot be negative")
    if completion_tokens == 0:
        return 0.0
    tokens = Decimal(prompt_tokens + completion_tokens)
    cost = tokens / Decimal(1000) * Decimal(str(price_per_1k_tokens))
    return float(cost.quantize(QUANTUM, rounding=ROUND_HALF_UP))
