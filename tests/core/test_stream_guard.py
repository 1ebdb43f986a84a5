"""The stream bounds' rules (``core/stream_guard.py``): pure, no sockets, no clock."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.pricing import completion_bound, estimate_prompt_tokens
from LLM_Mesh.core.stream_guard import SLACK_EVENTS, StreamFloor, over_limit, slow_at


def test_over_limit_counts_tokens_exactly_and_events_with_slack() -> None:
    assert not over_limit(8, 8, 8 + SLACK_EVENTS)  # the limit, and role/finish/usage chunks
    assert over_limit(8, 9, 9)  # one token more
    assert over_limit(8, 2, 9 + SLACK_EVENTS)  # empty deltas past the slack
    assert not over_limit(1, 1, 1 + SLACK_EVENTS)


def test_a_request_without_max_tokens_is_bounded_by_the_context_the_estimate_uses() -> None:
    assert completion_bound(30, 8, 4096) == 8
    assert completion_bound(30, 0, 4096) == 4096 - estimate_prompt_tokens(30)
    assert completion_bound(10**6, 0, 4096) == 1  # at least one token


FLOOR = StreamFloor(min_rate=0.25, grace_s=60.0, first_token_s=180.0)


def test_before_the_first_token_the_part_has_first_token_s() -> None:
    assert slow_at(FLOOR, 100.0, None, 5) == 280.0


def test_after_the_first_token_the_average_must_stay_above_the_floor() -> None:
    first = 110.0
    assert slow_at(FLOOR, 100.0, first, 0) == first + 60.0
    assert slow_at(FLOOR, 100.0, first, 10) == first + 60.0 + 40.0
    # a 1 token/s node (a big model on a weak CPU) keeps ahead of the moment for ever
    for t in (200.0, 1_000.0, 10_000.0):
        assert t < slow_at(FLOOR, 100.0, first, int(t - first))
    # a node trickling a token every 119 s (inside the read timeout) falls behind at once
    assert first + 119.0 > slow_at(FLOOR, 100.0, first, 2)


def test_a_stall_within_the_grace_is_forgiven() -> None:
    """50 tokens at 10/s, then 3 minutes of nothing: still above the floor."""
    first = 0.0
    assert first + 5.0 + 180.0 < slow_at(FLOOR, 0.0, first, 50)


def test_no_floor_is_never_too_slow() -> None:
    off = StreamFloor(min_rate=0.0)
    assert slow_at(off, 0.0, None, 0) == math.inf
    assert slow_at(off, 0.0, 1.0, 0) == math.inf


@pytest.mark.parametrize("field", ["min_rate", "grace_s", "first_token_s"])
@pytest.mark.parametrize("value", [-1.0, math.inf, math.nan])
def test_a_floor_must_be_finite_and_not_negative(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        StreamFloor(**{field: value})
