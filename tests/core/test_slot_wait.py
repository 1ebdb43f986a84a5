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


def test_keys_waiting_leave_places_for_a_key_not_waiting_yet() -> None:
    """Found open 2026-12-05: four keys at their quarter each filled every place, and a
    fifth key's wait was refused at once. The last :func:`kept_for_new` places go to keys
    with no place yet, one each."""
    from LLM_Mesh.core.slot_wait import kept_for_new

    held = dict.fromkeys("abcd", 0)
    waiting = 0
    for key in held:
        while may_wait(waiting, key_waiting=held[key]):
            held[key] += 1
            waiting += 1
    assert waiting == MAX_SEND_WAITERS - kept_for_new() < MAX_SEND_WAITERS  # before: 256
    for fresh in range(kept_for_new()):  # a fifth key, and more: a place each
        assert may_wait(waiting, key_waiting=0), fresh
        waiting += 1
    assert not may_wait(waiting, key_waiting=0)  # the total still bounds
    assert not may_wait(waiting - 1, key_waiting=1)  # one place each in the kept ones
    assert kept_for_new() == MAX_SEND_WAITERS // 8 and kept_for_new(3) == 0
