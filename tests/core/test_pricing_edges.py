"""Pricing at its edges and its refusals in words (core/pricing.py): each test here killed a
mutant ``tests/core/test_pricing.py`` let live (2026-12-05)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from LLM_Mesh.core.pricing import (
    Price,
    completion_bound,
    estimate,
    estimate_prompt_tokens,
    network_fee,
    network_fee_down,
    part_costs,
    request_cost,
    usual_completion_tokens,
    usual_prompt_tokens,
)

GEMMA = Price(500, 1_000)


def test_a_prompt_outside_ascii_is_counted_by_its_utf8_bytes() -> None:
    """The bound is bytes, not characters: "é" is 2 bytes, "日本" 6, "🙂" 4 (each may be a
    token a byte under a byte-fallback vocabulary)."""
    assert estimate_prompt_tokens("é") == 2 + 16
    assert estimate_prompt_tokens("日本", 1) == 6 + 8 + 16
    assert estimate_prompt_tokens("a🙂") == 5 + 16
    assert estimate(GEMMA, "日本", 10, 4096) == request_cost(GEMMA, 6 + 16, 10)


def test_a_max_tokens_of_one_is_one_token() -> None:
    """``max_tokens`` 1 is a limit like any other (only 0 means none given)."""
    assert completion_bound(20, 1, 4096) == 1
    assert estimate(GEMMA, "x" * 10, 1, 4096) == request_cost(GEMMA, 26, 1) == 14
    assert completion_bound(20, 0, 4096) == 4076


def test_the_estimate_counts_the_chat_messages() -> None:
    assert estimate(GEMMA, "x" * 10, 100, 4096, messages=3) == request_cost(GEMMA, 50, 100)
    assert estimate(GEMMA, "x" * 10, 100, 4096, messages=3) > estimate(GEMMA, "x" * 10, 100, 4096)


def test_parts_over_the_cap_by_one_are_cut_by_one() -> None:
    assert part_costs(GEMMA, 0, [100, 100], cap=199) == [100, 99]
    assert part_costs(GEMMA, 0, [100, 1], cap=100) == [100, 0]
    assert part_costs(GEMMA, 0, [100, 100], cap=200) == [100, 100]


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: Price(-1, 0), "prompt_per_1k"),
        (lambda: Price(0, -1), "completion_per_1k"),
        (lambda: estimate_prompt_tokens("x", -1), "messages"),
        (lambda: usual_prompt_tokens("x", -1), "messages"),
        (lambda: usual_completion_tokens(-1), "characters"),
        (lambda: completion_bound(1, -1, 10), "max_tokens"),
        (lambda: part_costs(GEMMA, 0, [1], cap=-1), "cap"),
        (lambda: network_fee(-1, 500), "amount"),
        (lambda: network_fee_down(-1, 500), "amount"),
    ],
)
def test_each_argument_refusal_names_the_argument(call: Callable[[], object], name: str) -> None:
    """What a catalog or config error says (``Price`` of a custom model's settings)."""
    with pytest.raises(ValueError) as exc:
        call()
    assert str(exc.value) == f"{name} must be a whole number >= 0, got -1"


def test_the_other_refusals_in_their_words() -> None:
    for call in (lambda: request_cost(GEMMA, -1, 1), lambda: part_costs(GEMMA, 0, [-1])):
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == "token counts cannot be negative"
    with pytest.raises(ValueError) as exc:
        estimate(GEMMA, "x", 1, 100, choices=0)
    assert str(exc.value) == "choices must be a whole number >= 1, got 0"


def test_a_price_in_json_names_its_two_rates_and_its_unit() -> None:
    """The catalog's and ``/v1/models``' price object, key for key (mut34: no core test)."""
    assert Price(500, 1_000).to_json() == {
        "prompt_per_1k": 500,
        "completion_per_1k": 1_000,
        "unit": "micro-NetworkToken",
    }


@pytest.mark.parametrize(("chars", "tokens"), [(0, 0), (1, 1), (3, 1), (4, 2), (3001, 1001)])
def test_an_answer_without_a_count_is_three_characters_a_token_rounded_up(
    chars: int, tokens: int
) -> None:
    assert usual_completion_tokens(chars) == tokens


def test_a_part_of_one_token_is_charged_the_prompt_when_it_is_the_last() -> None:
    """The prompt goes with the last part that delivered any token, one included."""
    assert part_costs(GEMMA, 1000, [100, 1]) == [100, request_cost(GEMMA, 1000, 1)]
    assert part_costs(GEMMA, 1000, [100, 1]) == [100, 501]


@pytest.mark.parametrize("fee", [True, 500.0, "500", None, 10_001, -1])
def test_checked_fee_bps_takes_whole_numbers_of_0_to_10000_only(fee: object) -> None:
    """attack34: a fee built in code as ``True`` (1 bps), a float (an operator's share no
    whole number of µNT) or a text is refused as one past 100 % is (``money33``)."""
    from LLM_Mesh.core.pricing import checked_fee_bps

    with pytest.raises(ValueError, match="network_fee_bps must be a whole number"):
        checked_fee_bps(fee)  # type: ignore[arg-type]
    assert checked_fee_bps(0) == 0 and checked_fee_bps(10_000) == 10_000
