import pytest

from LLM_Mesh.core.retry import Backoff, RetryBudget


def test_backoff_exponential_capped_jittered_bounded() -> None:
    b = Backoff(base_s=0.1, max_s=1.0, multiplier=2.0, max_attempts=3)
    assert [b.delay(n) for n in (1, 2, 3, 4, 10)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert b.delay(3, rand=0.5) == pytest.approx(0.2)
    assert b.may_attempt(2) and not b.may_attempt(3)
    with pytest.raises(ValueError):
        b.delay(0)


def test_budget_blocks_a_retry_storm() -> None:
    rb = RetryBudget(ratio=0.2, min_per_s=1.0, window_s=10.0)
    granted = 0
    for i in range(1000):  # 100 requests/s for 10 s, every one failing and wanting a retry
        now = i * 0.01
        rb.record_request(now)
        granted += rb.try_retry(now)
    assert granted <= 0.2 * 1000 + 10
    assert granted >= 150


def test_budget_refills_as_the_window_slides() -> None:
    rb = RetryBudget(ratio=0.0, min_per_s=1.0, window_s=10.0)
    assert sum(rb.try_retry(0.0) for _ in range(20)) == 10
    assert not rb.try_retry(5.0)
    assert rb.try_retry(10.5)  # the bucket holding the first retries expired
    assert rb.retries_in_window <= 10
