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
