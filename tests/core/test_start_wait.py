"""The start's wait for its database: backoff between tries, a deadline after the first failure."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.retry import Backoff
from LLM_Mesh.core.start_wait import DEFAULT_START_WAIT_S, StartWait


def test_the_waits_double_from_half_a_second_to_ten() -> None:
    wait = StartWait()
    assert [wait.wait_before(n, 0.0) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_it_gives_up_at_the_deadline_and_its_last_wait_ends_there() -> None:
    wait = StartWait(deadline_s=30.0, backoff=Backoff(base_s=1.0, max_s=10.0))
    assert wait.wait_before(9, 25.0) == 5.0  # not 10: the deadline is 5 s away
    assert wait.wait_before(9, 30.0) is None
    assert wait.wait_before(1, 31.0) is None


def test_the_last_second_before_the_deadline_is_still_waited() -> None:
    """Under a second left is a wait of what is left, not giving up early."""
    wait = StartWait(deadline_s=30.0, backoff=Backoff(base_s=1.0, max_s=10.0))
    assert wait.wait_before(1, 29.5) == 0.5
    assert wait.wait_before(9, 29.75) == 0.25


def test_no_wait_at_all_gives_up_at_the_first_failure() -> None:
    assert StartWait(deadline_s=0.0).wait_before(1, 0.0) is None


def test_the_default_deadline_is_two_minutes_and_a_negative_one_is_refused() -> None:
    assert StartWait().deadline_s == DEFAULT_START_WAIT_S == 120.0
    with pytest.raises(ValueError, match="deadline_s must be >= 0"):
        StartWait(deadline_s=-1.0)
