"""Request cost in NetworkTokens (core/pricing.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.pricing import request_cost


def test_prompt_plus_completion_per_thousand() -> None:
    assert request_cost(600, 400, 0.01) == 0.01
    assert request_cost(1000, 1000, 0.08) == 0.16
    assert request_cost(10, 22, 0.001) == 0.000032


def test_no_completion_costs_nothing() -> None:
    assert request_cost(5000, 0, 0.08) == 0.0


def test_rounded_half_up_to_micro_tokens() -> None:
    # 1 token at 0.0005/1k = 5e-7 -> 1e-6 (half up); 1 token at 0.0004/1k -> 0
    assert request_cost(0, 1, 0.0005) == 0.000001
    assert request_cost(0, 1, 0.0004) == 0.0
    # float price is taken by its decimal text, not its binary expansion
    assert request_cost(0, 15, 0.1) == 0.0015


def test_returns_float() -> None:
    assert isinstance(request_cost(1, 1, 0.01), float)
    assert isinstance(request_cost(1, 0, 0.01), float)


@pytest.mark.parametrize(("p", "c"), [(-1, 10), (10, -1)])
def test_negative_tokens_rejected(p: int, c: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        request_cost(p, c, 0.01)
