"""Request prices in micro-NetworkTokens: integers only, rounding as documented (core/pricing.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from LLM_Mesh.core.pricing import (
    Price,
    estimate,
    estimate_prompt_tokens,
    network_fee,
    network_fee_down,
    part_costs,
    request_cost,
    split,
    usual_prompt_tokens,
)

GEMMA = Price(500, 1_000)
BIG = Price(40_000, 80_000)


def test_cost_is_prompt_and_completion_priced_per_thousand() -> None:
    assert request_cost(GEMMA, 1000, 1000) == 1500
    assert request_cost(BIG, 600, 400) == 24_000 + 32_000
    assert request_cost(Price(5_000, 10_000), 10, 22) == 50 + 220


def test_cost_is_rounded_up_to_a_whole_micro_token() -> None:
    # 1 completion token at 1,000 µNT per 1k = 1 µNT exactly; 1 prompt token at 500 = 0.5 -> up
    assert request_cost(GEMMA, 0, 1) == 1
    assert request_cost(GEMMA, 1, 1) == 2  # 0.5 + 1 = 1.5 -> 2
    assert request_cost(Price(1, 1), 1, 1) == 1  # 0.002 -> 1
    assert request_cost(Price(0, 0), 5, 5) == 0


def test_no_completion_costs_nothing() -> None:
    assert request_cost(BIG, 5000, 0) == 0


def test_integers_only() -> None:
    assert type(request_cost(GEMMA, 3, 7)) is int
    assert type(estimate(GEMMA, "x" * 10, 5, 100)) is int
    with pytest.raises(ValueError, match="whole number"):
        Price(0.5, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whole number"):
        Price(-1, 1)


@pytest.mark.parametrize(("p", "c"), [(-1, 10), (10, -1)])
def test_negative_tokens_rejected(p: int, c: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        request_cost(GEMMA, p, c)
    with pytest.raises(ValueError, match="negative"):
        part_costs(GEMMA, p, [c])


def test_prompt_estimate_is_the_utf8_bytes_plus_the_template_room() -> None:
    # the rule and its checks against the real tokenizer: tests/core/test_prompt_estimate.py
    assert estimate_prompt_tokens("") == 16
    assert estimate_prompt_tokens("a") == 17
    assert estimate_prompt_tokens("x" * 300) == 316
    assert estimate_prompt_tokens("", 2) == 32


def test_a_prompt_no_node_counted_is_charged_a_usual_count_not_the_bound() -> None:
    # ceil(chars / 3) + 5 a message + 16: an English prompt's bound is ~3.6x its real count
    assert usual_prompt_tokens("hi", 1) == 22 and estimate_prompt_tokens("hi", 1) == 26
    assert usual_prompt_tokens("x" * 300) == 116 and estimate_prompt_tokens("x" * 300) == 316
    assert usual_prompt_tokens("", 4) == 36
    with pytest.raises(ValueError):
        usual_prompt_tokens("hi", -1)


@given(st.text(max_size=200), st.integers(0, 600))
def test_the_usual_count_is_never_above_the_bound(text: str, messages: int) -> None:
    assert usual_prompt_tokens(text, messages) <= estimate_prompt_tokens(text, messages)


def test_estimate_is_prompt_estimate_plus_max_tokens() -> None:
    # 10 ASCII characters -> 10 + 16 prompt tokens; 100 completion tokens
    assert estimate(GEMMA, "x" * 10, 100, 32_768) == request_cost(GEMMA, 26, 100) == 113
    # no max_tokens: the rest of the context after a 1-token prompt (the dearer end)
    assert estimate(GEMMA, "x" * 10, 0, 1026) == request_cost(GEMMA, 1, 1025)
    # a completion token cheaper than a prompt token: the dearer end is the whole bound
    assert estimate(Price(1_000, 500), "x" * 10, 0, 1026) == request_cost(
        Price(1_000, 500), 26, 1000
    )
    # a prompt that fills the context still reserves a token
    assert estimate(GEMMA, "x" * 30_000, 0, 100) == request_cost(GEMMA, 30_016, 1)


def test_the_estimate_pays_for_every_choice_of_n() -> None:
    """``n`` choices are ``n`` answers: each up to ``max_tokens`` (or the rest of the
    context), the prompt once (OpenAI's usage sums the choices' completion tokens)."""
    assert estimate(GEMMA, "x" * 10, 100, 32_768, choices=3) == request_cost(GEMMA, 26, 300)
    one = estimate(GEMMA, "x" * 10, 100, 32_768)
    assert estimate(GEMMA, "x" * 10, 100, 32_768, choices=1) == one
    assert estimate(GEMMA, "x" * 10, 0, 1026, choices=2) == request_cost(GEMMA, 1, 2 * 1025)
    # a dearer prompt token: one choice's dearer end is the long prompt; four answers, the
    # short prompt and four contexts of answer
    cheap = Price(1_000, 500)
    assert estimate(cheap, "x" * 10, 0, 1026, choices=4) == request_cost(cheap, 1, 4 * 1025)
    assert request_cost(cheap, 1, 4 * 1025) > request_cost(cheap, 26, 4 * 1000)
    with pytest.raises(ValueError):
        estimate(GEMMA, "x", 1, 100, choices=0)


def test_parts_pay_the_prompt_once_and_each_its_own_tokens() -> None:
    # the first node delivered 10 tokens and broke, the second continued with 30: the
    # second processed the prompt again (its count is charged) and is paid it (attack30)
    parts = part_costs(BIG, 100, [10, 30])
    assert parts == [10 * 80, (100 * 40_000 + 30 * 80_000) // 1000]
    assert sum(parts) == request_cost(BIG, 100, 40)
    # a part that delivered nothing gets nothing; the prompt goes with the last that did
    assert part_costs(BIG, 100, [0, 30]) == [0, request_cost(BIG, 100, 30)]
    assert part_costs(BIG, 100, [30, 0]) == [request_cost(BIG, 100, 30), 0]
    assert part_costs(BIG, 100, [0, 0]) == [0, 0]
    assert part_costs(BIG, 100, []) == []


def test_a_part_that_broke_after_one_token_is_not_paid_the_prompt() -> None:
    """The attack (found 2026-12-05, attack30): a node sends one token without reading the
    prompt, then breaks; the node continuing it processes the whole prompt. The first part
    was paid the prompt (160,080 µNT of the 176,080); now its one token (80)."""
    thief, worker = part_costs(BIG, 4000, [1, 200])
    assert thief == request_cost(BIG, 0, 1) == 80
    assert worker == request_cost(BIG, 4000, 200)
    assert part_costs(BIG, 4000, [1, 1, 200])[:2] == [80, 80]  # two of them, one after another


def test_parts_round_up_each() -> None:
    assert part_costs(Price(1, 1), 1, [1, 1, 1]) == [1, 1, 1]


def test_parts_are_capped_at_the_estimate_from_the_last_part_back() -> None:
    assert part_costs(GEMMA, 0, [100, 100, 100], cap=250) == [100, 100, 50]
    assert part_costs(GEMMA, 0, [100, 100, 100], cap=150) == [100, 50, 0]
    assert part_costs(GEMMA, 0, [100, 100], cap=0) == [0, 0]
    assert part_costs(GEMMA, 0, [100, 100], cap=500) == [100, 100]
    with pytest.raises(ValueError):
        part_costs(GEMMA, 0, [1], cap=-1)


def test_network_fee_in_basis_points_rounded_up() -> None:
    assert network_fee(10_000, 500) == 500
    assert network_fee(19, 500) == 1  # 0.95 -> 1 (rounded up since 2026-12-06, money34)
    assert network_fee(20, 500) == 1
    assert network_fee(21, 500) == 2  # 1.05 -> 2
    assert network_fee(1, 1) == 1  # any amount at any fee above 0 pays 1 µNT or more
    assert network_fee(0, 500) == 0
    assert network_fee_down(19, 500) == 0  # the rule before: version-3 receipts
    assert network_fee_down(21, 500) == 1
    assert network_fee(7, 0) == 0
    assert network_fee(7, 10_000) == 7
    for bad in (-1, 10_001):
        with pytest.raises(ValueError, match="fee_bps"):
            network_fee(10, bad)
    with pytest.raises(ValueError):
        network_fee(-1, 500)


def test_split_gives_the_operator_the_rest() -> None:
    assert split(10_000, 500) == (9_500, 500)
    assert split(19, 500) == (18, 1)  # (19, 0) before 2026-12-06 (money34)
    assert split(1, 500) == (0, 1)
    assert split(0, 500) == (0, 0)


@given(
    st.integers(0, 10**6), st.integers(0, 10**6), st.lists(st.integers(0, 10**5), max_size=5),
    st.integers(0, 10**7), st.integers(0, 10_000),
)  # fmt: skip
def test_properties(pp: int, cp: int, completions: list[int], cap: int, bps: int) -> None:
    price = Price(pp, cp)
    parts = part_costs(price, 1234, completions, cap)
    assert all(type(x) is int and x >= 0 for x in parts)
    assert sum(parts) <= cap
    uncapped = part_costs(price, 1234, completions)
    assert all(a <= b for a, b in zip(parts, uncapped, strict=True))
    # per-part rounding costs at most 1 µNT a part more than the whole request priced at once
    whole = request_cost(price, 1234, sum(completions))
    assert whole <= sum(uncapped) <= whole + len(completions)
    for x in parts:
        op, fee = split(x, bps)
        assert op + fee == x and 0 <= fee <= x
