"""Rate limits at their exact edges, the refusals whole, settling in every case
(core/ratelimit.py): each test here killed a mutant ``tests/core/test_ratelimit.py`` let
live (2026-12-05)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.ratelimit import Bucket, Decision, Limits, RateLimiter, Total, duration


def _remaining(d: Decision, kind: str) -> str:
    return dict(d.headers)[f"x-ratelimit-remaining-{kind}"]


def test_a_bucket_refills_at_its_capacity_a_minute() -> None:
    b = Bucket(120, 0.0)  # 2 a second (capacity 60 would be 1: times and divides alike)
    b.take(0.0, 120)
    assert b.level(1.0) == 2.0 and b.level(30.0) == 60.0 and b.level(90.0) == 120.0
    assert b.reset_s(1.0) == 59.0


def test_reset_is_zero_when_full_and_the_time_to_refill_the_rest() -> None:
    b = Bucket(60, 0.0)
    assert b.reset_s(0.0) == 0.0
    b.take(0.0, 30)
    assert b.reset_s(0.0) == 30.0 and b.reset_s(10.0) == 20.0


def test_one_second_is_written_in_seconds() -> None:
    assert (duration(0.999), duration(1.0), duration(59.91)) == ("999ms", "1s", "60s")


def test_the_smallest_limits_are_allowed_and_the_refusals_in_words() -> None:
    assert Total(1, 0.0).per_min == 1 and RateLimiter(1).max_scopes == 1
    for make, words in (
        (lambda: Total(0, 0.0), "per_min must be >= 1"),
        (lambda: RateLimiter(0), "max_scopes must be >= 1"),
        (lambda: Limits(rpm=0), "rpm must be >= 1 (or None for no limit)"),
        (lambda: Limits(tpm=0), "tpm must be >= 1 (or None for no limit)"),
    ):
        with pytest.raises(ValueError) as exc:
            make()
        assert str(exc.value) == words


def test_a_total_gives_back_one_by_default_and_settles_the_difference() -> None:
    t = Total(100, 0.0)
    assert t.take(0.0, 5) == 5
    t.give(0.0)
    assert t.bucket.level(0.0) == 96.0
    charged = t.take(0.0, 10)
    t.settle(0.0, charged, 15)  # used 5 more than charged
    assert t.bucket.level(0.0) == 81.0
    t.settle(0.0, 10, 4)  # used 6 less
    assert t.bucket.level(0.0) == 87.0


def test_a_request_is_refused_until_its_token_is_back_even_for_half_a_second() -> None:
    rl, limits = RateLimiter(), Limits(rpm=60)  # one request a second
    for _ in range(60):
        assert rl.check("a", limits, 0.0).allowed
    refused = rl.check("a", limits, 0.5)
    assert refused == Decision(
        False, refused.headers, retry_after_s=0.5, exceeded="requests", limit=60, requested=1
    )
    assert rl.check("a", limits, 1.0).allowed


def test_tokens_are_refused_until_they_are_back_and_the_refusal_says_what() -> None:
    rl, limits = RateLimiter(), Limits(rpm=1000, tpm=60)  # a token a second
    assert rl.check("a", limits, 0.0, tokens=60).charged == 60
    refused = rl.check("a", limits, 0.5, tokens=1)
    assert refused == Decision(
        False, refused.headers, retry_after_s=0.5, exceeded="tokens", limit=60, requested=1
    )
    # the refusal's headers show both limits
    assert [k for k, _ in refused.headers] == [
        "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
    ]  # fmt: skip
    assert rl.check("a", limits, 1.0, tokens=1).allowed


def test_only_the_tokens_asked_for_are_charged() -> None:
    rl = RateLimiter()
    free = rl.check("a", Limits(tpm=10), 0.0)  # no tokens given: none charged
    assert (free.charged, _remaining(free, "tokens")) == (0, "10")
    assert rl.check("b", Limits(tpm=10), 0.0, tokens=0).charged == 0
    assert rl.check("c", Limits(tpm=10), 0.0, tokens=-5).charged == 0
    assert rl.check("d", Limits(rpm=10), 0.0, tokens=50).charged == 0  # no token limit


def test_settling_gives_back_takes_or_does_nothing() -> None:
    rl, limits = RateLimiter(), Limits(tpm=100)
    rl.check("a", limits, 0.0, tokens=50)
    rl.settle("a", limits, 0.0, charged=50, used=70)  # 20 more
    assert _remaining(rl.check("a", limits, 0.0), "tokens") == "30"
    rl.settle("a", limits, 0.0, charged=50, used=20)  # 30 back
    assert _remaining(rl.check("a", limits, 0.0), "tokens") == "60"
    # a scope never seen, one without a token limit: nothing to settle, no error
    rl.settle("nobody", limits, 0.0, charged=50, used=0)
    rl.check("r", Limits(rpm=5), 0.0)
    rl.settle("r", Limits(rpm=5), 0.0, charged=0, used=40)


def test_a_charge_made_under_old_limits_is_not_settled_into_new_buckets() -> None:
    rl, old, new = RateLimiter(), Limits(tpm=100), Limits(tpm=200)
    rl.check("a", old, 0.0, tokens=50)
    rl.check("a", new, 0.0, tokens=100)  # the limits changed: fresh buckets, 100 taken
    rl.settle("a", old, 0.0, charged=50, used=0)  # the old charge: not given to the new
    assert _remaining(rl.check("a", new, 0.0), "tokens") == "100"
