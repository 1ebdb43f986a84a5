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


@pytest.mark.parametrize(
    "kw",
    [
        {"base_s": -0.1},
        {"base_s": 1.0, "max_s": 0.5},
        {"multiplier": 0.99},
        {"max_attempts": 0},
    ],
)
def test_backoff_rejects_nonsense(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kw)  # type: ignore[arg-type]


def test_backoff_accepts_its_edges() -> None:
    flat = Backoff(base_s=0.0, max_s=0.0, multiplier=1.0, max_attempts=1)
    assert flat.delay(1) == 0.0 and flat.delay(5) == 0.0
    assert flat.may_attempt(0) and not flat.may_attempt(1)
    const = Backoff(base_s=0.5, max_s=0.5, multiplier=1.0)
    assert [const.delay(n) for n in (1, 2, 3)] == [0.5, 0.5, 0.5]


def test_backoff_defaults() -> None:
    b = Backoff()
    assert [b.delay(n) for n in (1, 2, 3, 6, 7)] == [0.05, 0.1, 0.2, 1.6, 2.0]
    assert b.may_attempt(2) and not b.may_attempt(3)


def test_backoff_full_jitter_spans_zero_to_the_delay() -> None:
    b = Backoff(base_s=1.0, max_s=8.0, multiplier=3.0)
    assert b.delay(2, rand=0.0) == 0.0
    assert b.delay(2, rand=1.0) == 3.0
    assert b.delay(3, rand=0.25) == 2.0  # min(8, 9) × 0.25
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match=r"rand must be within \[0, 1\]"):
            b.delay(1, rand=bad)
    with pytest.raises(ValueError, match="retry numbers start at 1"):
        b.delay(-3)


def test_backoff_huge_retry_numbers_stay_capped() -> None:
    b = Backoff(base_s=0.1, max_s=5.0, multiplier=10.0)
    assert b.delay(10_000) == 5.0  # the exponent is capped, so no OverflowError


def test_budget_allows_ratio_of_requests_plus_floor() -> None:
    rb = RetryBudget(ratio=0.5, min_per_s=0.2, window_s=10.0, buckets=5)
    assert rb.allowed(0.0) == 2.0  # the floor: 0.2/s × 10 s
    for t in range(10):
        rb.record_request(float(t))
    assert rb.requests_in_window == 10
    assert rb.allowed(9.0) == 0.5 * 10 + 2.0
    granted = sum(rb.try_retry(9.0) for _ in range(10))
    assert granted == 7 and rb.retries_in_window == 7
    # 2-second buckets: at t=11 the bucket holding t=0 and t=1 has expired
    assert rb.allowed(11.0) == 0.5 * 8 + 2.0
    assert rb.requests_in_window == 8
    # long after, everything has expired (the ring is cleared, not just advanced)
    assert rb.allowed(1000.0) == 2.0
    assert rb.requests_in_window == 0 and rb.retries_in_window == 0


def test_default_budget_is_20_percent_plus_10_a_second_over_10_s() -> None:
    rb = RetryBudget()
    assert rb.allowed(0.0) == 100.0
    for _ in range(100):
        rb.record_request(0.5)
    assert rb.allowed(0.5) == 120.0
    assert rb.allowed(9.9) == 120.0
    assert rb.allowed(10.0) == 100.0  # 1-second buckets: the t=0.5 requests left at 10 s


def test_budget_with_no_floor_needs_requests() -> None:
    rb = RetryBudget(ratio=0.2, min_per_s=0.0, window_s=10.0)
    assert not rb.try_retry(0.0)
    for _ in range(5):
        rb.record_request(0.0)
    assert rb.try_retry(0.0)  # 1 retry for 5 requests at 20 %
    assert not rb.try_retry(0.0)
    assert rb.retries_in_window == 1


@pytest.mark.parametrize(
    "kw",
    [{"ratio": -0.1}, {"min_per_s": -1.0}, {"window_s": 0.0}, {"buckets": 0}],
)
def test_budget_rejects_nonsense(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryBudget(**kw)  # type: ignore[arg-type]


def test_budget_accepts_zero_ratio_and_floor_and_one_bucket() -> None:
    rb = RetryBudget(ratio=0.0, min_per_s=0.0, window_s=1.0, buckets=1)
    rb.record_request(0.0)
    assert rb.allowed(0.0) == 0.0 and not rb.try_retry(0.0)
