"""The share of a model's slots anonymous requests may hold (core/anonymous_share.py)."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.anonymous_share import (
    DEFAULT_ANONYMOUS_SHARE,
    KEYED_RECENT_S,
    anonymous_cap,
    floor_slot_wait,
    parse_share,
)


@pytest.mark.parametrize(
    ("slots", "share", "cap"),
    [
        (0, 0.75, 0),
        (1, 0.75, 0),  # the one slot is kept for keyed requests
        (2, 0.75, 1),
        (4, 0.75, 3),
        (8, 0.75, 6),
        (10, 0.7, 7),  # 0.7 × 10 is 7.000000000000001 in floats
        (100, 0.29, 29),  # 0.29 × 100 is 28.999999999999996
        (4, 0.99, 3),  # never the last slot below 1
        (4, 1.0, 4),  # off: every slot
        (4, 0.0, 0),  # every slot kept for keys
    ],
)
def test_the_cap_is_the_share_rounded_down_never_the_last_slot(
    slots: int, share: float, cap: int
) -> None:
    assert anonymous_cap(slots, share) == cap


@pytest.mark.parametrize(
    ("slots", "share", "cap"),
    [
        (1, 0.75, 1),  # no keyed demand: the one slot is not kept idle (found 2026-12-05)
        (2, 0.375, 1),  # two replicas' share of a two-slot model
        (4, 0.75, 3),  # as with keyed demand where the share gives one or more
        (0, 0.75, 0),  # no slot, none to take
        (4, 0.0, 0),  # 0: every slot kept for keys, keyed demand or not
        (4, 1.0, 4),
    ],
)
def test_without_keyed_demand_anonymous_requests_may_hold_a_slot(
    slots: int, share: float, cap: int
) -> None:
    assert anonymous_cap(slots, share, keyed_demand=False) == cap


@pytest.mark.parametrize("share", [-0.1, 1.01, float("nan")])
def test_a_share_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError):
        anonymous_cap(4, share)


def test_parse_share() -> None:
    assert parse_share(None) == DEFAULT_ANONYMOUS_SHARE == 0.75
    assert parse_share("  ") == DEFAULT_ANONYMOUS_SHARE
    assert parse_share("0.5") == 0.5
    assert parse_share("1") == 1.0
    assert parse_share("0") == 0.0
    for raw in ("1.5", "-1", "nan", "inf", "half"):
        with pytest.raises(ValueError, match="LLM_MESH_ANONYMOUS_SHARE"):
            parse_share(raw)


@pytest.mark.parametrize(
    ("slots", "share", "ago", "left"),
    [
        (1, 0.75, 20.0, KEYED_RECENT_S - 20.0),  # no anonymous slot until the minute ends
        (1, 0.75, KEYED_RECENT_S, 0.0),  # the minute is over: the floor slot is back
        (1, 0.75, None, 0.0),  # no keyed request at all
        (4, 0.75, 20.0, 0.0),  # 3 anonymous slots with keyed demand: a slot's own wait
        (1, 0.0, 20.0, 0.0),  # share 0: never a slot, no window to wait for
        (1, 1.0, 20.0, 0.0),  # share 1: every slot
        (0, 0.75, 20.0, 0.0),  # no slot at all: the nodes' own wait
    ],
)
def test_the_wait_for_the_floor_slot_is_what_is_left_of_the_keyed_minute(
    slots: int, share: float, ago: float | None, left: float
) -> None:
    assert floor_slot_wait(slots, share, ago) == pytest.approx(left)


def test_a_share_a_hair_below_1_still_keeps_the_last_slot() -> None:
    assert anonymous_cap(10, 1.0 - 1e-10) == 9
    assert anonymous_cap(10, 1.0) == 10


def test_a_bad_share_in_words() -> None:
    with pytest.raises(ValueError, match=r"^share must be between 0 and 1$"):
        anonymous_cap(4, 1.5)


def test_no_floor_wait_once_the_keyed_minute_is_over() -> None:
    assert floor_slot_wait(1, 0.5, KEYED_RECENT_S + 5.0) == 0.0
    assert floor_slot_wait(1, 0.5, KEYED_RECENT_S - 5.0) == 5.0


def test_open_slots_a_third_of_the_honest_ones_lift_the_cap_to_every_honest_slot() -> None:
    """docs/security.md (attack33's row, what remains): at 0.75, P open slots declared
    beside H honest ones raise the anonymous cap to every honest slot once P >= ceil(H/3),
    not before: what a node that says it has room and never takes a slot buys."""
    for honest in range(1, 60):
        least = next(p for p in range(200) if anonymous_cap(honest + p, 0.75) >= honest)
        assert least == math.ceil(honest / 3), honest
