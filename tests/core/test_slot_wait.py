"""The send stage's wait: its sleep between looks and its cap (core/slot_wait.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.slot_wait import MAX_SEND_WAITERS, RECHECK_S, may_wait, recheck_s


def test_recheck_is_the_estimate_at_least_the_floor_at_most_what_is_left() -> None:
    assert recheck_s(0.0001, 10.0) == RECHECK_S  # before: 5 ms
    assert recheck_s(None, 10.0) == RECHECK_S
    assert recheck_s(2.0, 10.0) == 2.0
    assert recheck_s(3600.0, 1.5) == 1.5
    assert recheck_s(0.0001, 0.1) == 0.1


def test_may_wait() -> None:
    assert may_wait(MAX_SEND_WAITERS - 1) and not may_wait(MAX_SEND_WAITERS)
    assert not may_wait(0, 0)
    with pytest.raises(ValueError):
        may_wait(0, -1)


def test_one_key_may_hold_a_quarter_of_the_places() -> None:
    from LLM_Mesh.core.slot_wait import KEY_SHARE, MAX_SEND_WAITERS, key_cap, may_wait

    assert key_cap() == int(MAX_SEND_WAITERS * KEY_SHARE) == 64
    assert key_cap(3) == 1 and key_cap(0) == 0 and key_cap(8, 1.0) == 8
    assert may_wait(10, key_waiting=63) and not may_wait(10, key_waiting=64)
    assert not may_wait(256, key_waiting=0)  # the total still bounds
    for bad in ((-1, 0.25), (8, 0.0), (8, 1.5)):
        with pytest.raises(ValueError):
            key_cap(*bad)
