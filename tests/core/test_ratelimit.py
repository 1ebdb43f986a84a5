"""Rate limits as arithmetic: buckets, decisions, settlement, the x-ratelimit headers."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.pricing import usual_prompt_tokens
from LLM_Mesh.core.ratelimit import (
    Bucket,
    Limits,
    RateLimiter,
    Total,
    address_scope,
    duration,
    estimate_tokens,
    limit_headers,
)


def test_a_bucket_bursts_its_minute_then_refills_evenly() -> None:
    b = Bucket(60, now=0.0)
    for _ in range(60):
        assert b.wait(0.0, 1) == 0.0
        b.take(0.0, 1)
    assert b.wait(0.0, 1) == pytest.approx(1.0)  # one token a second
    assert b.wait(0.5, 1) == pytest.approx(0.5)
    assert b.wait(1.0, 1) == 0.0
    assert b.level(1000.0) == 60.0  # never above capacity
    assert b.wait(0.0, 61) == math.inf  # more than it can ever hold
    assert b.reset_s(0.0) == pytest.approx(60.0)


def test_a_debt_makes_the_next_request_wait_longer() -> None:
    b = Bucket(600, now=0.0)
    b.take(0.0, 700)  # used more than was charged: the level goes below zero
    assert b.level(0.0) == -100.0
    assert b.wait(0.0, 1) == pytest.approx(101 / 10)
    b.give(0.0, 10_000)
    assert b.level(0.0) == 600.0


def test_limiter_refuses_over_rpm_per_scope_and_says_when() -> None:
    rl = RateLimiter()
    lim = Limits(rpm=2)
    assert rl.check("ip:a", lim, 0.0).allowed
    d = rl.check("ip:a", lim, 0.0)
    assert d.allowed and dict(d.headers)["x-ratelimit-remaining-requests"] == "0"
    d = rl.check("ip:a", lim, 0.0)
    assert not d.allowed and d.exceeded == "requests" and d.retry_after_s == pytest.approx(30.0)
    assert dict(d.headers) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    assert rl.check("ip:b", lim, 0.0).allowed  # another scope has its own bucket
    assert rl.check("ip:a", lim, 30.0).allowed  # refilled


def test_tokens_are_charged_before_and_settled_after() -> None:
    rl = RateLimiter()
    lim = Limits(tpm=1000)
    d = rl.check("key:k", lim, 0.0, tokens=600)
    assert d.allowed and d.charged == 600
    assert dict(d.headers)["x-ratelimit-remaining-tokens"] == "400"
    d2 = rl.check("key:k", lim, 0.0, tokens=600)
    assert not d2.allowed and d2.exceeded == "tokens" and d2.requested == 600
    assert d2.retry_after_s == pytest.approx(200 / (1000 / 60))
    rl.settle("key:k", lim, 0.0, charged=600, used=100)  # the answer was short: 500 back
    assert dict(rl.headers("key:k", lim, 0.0))["x-ratelimit-remaining-tokens"] == "900"
    assert rl.check("key:k", lim, 0.0, tokens=600).allowed
    rl.settle("key:k", lim, 0.0, charged=600, used=1500)  # it used more: owed
    assert rl.headers("key:k", lim, 0.0)[1] == ("x-ratelimit-remaining-tokens", "0")
    assert not rl.check("key:k", lim, 0.0, tokens=1).allowed
    big = rl.check("key:k2", lim, 0.0, tokens=1001)
    assert not big.allowed and big.retry_after_s == math.inf


def test_a_refused_token_check_takes_no_request() -> None:
    rl = RateLimiter()
    lim = Limits(rpm=5, tpm=100)
    assert not rl.check("s", lim, 0.0, tokens=200).allowed
    assert dict(rl.headers("s", lim, 0.0))["x-ratelimit-remaining-requests"] == "5"


def test_unlimited_is_allowed_without_state_and_scopes_are_bounded() -> None:
    rl = RateLimiter(max_scopes=2)
    assert rl.check("x", Limits(), 0.0).allowed and len(rl) == 0
    for s in ("a", "b", "c"):
        rl.check(s, Limits(rpm=1), 0.0)
    assert len(rl) == 2 and rl.headers("a", Limits(rpm=1), 0.0) == ()
    with pytest.raises(ValueError):
        Limits(rpm=0)
    with pytest.raises(ValueError):
        RateLimiter(max_scopes=0)


def test_changed_limits_start_a_fresh_bucket() -> None:
    rl = RateLimiter()
    assert rl.check("k", Limits(rpm=1), 0.0).allowed
    assert not rl.check("k", Limits(rpm=1), 0.0).allowed
    assert rl.check("k", Limits(rpm=2), 0.0).allowed


def test_duration_and_estimate() -> None:
    assert duration(0.02) == "20ms"
    assert duration(0.0) == "0ms"
    assert duration(1.5) == "1.5s"
    assert duration(59.99) == "60s"
    assert duration(360) == "6m0s"
    assert duration(61.2) == "1m2s"
    # the prompt's usual count (pricing.usual_prompt_tokens: ceil(40 / 3) + 16), + max_tokens
    assert estimate_tokens("x" * 40, 16) == 14 + 16 + 16
    assert estimate_tokens("x" * 40, 16, 2) == 14 + 2 * 5 + 16 + 16
    assert estimate_tokens("", -3) == 16


def test_the_tpm_pre_charge_counts_the_prompt_as_a_payer_is_charged_for_it() -> None:
    """One rule for a prompt's usual count: the tpm's pre-charge and the charge of a prompt no
    node counted (until 2026-12-03 the tpm's was its own, ceil(characters / 4) and nothing
    for the template, below the other on every prompt)."""
    for text, messages in [("", 0), ("hi", 1), ("x" * 300, 0), ("é" * 50, 7), ("a b" * 999, 3)]:
        assert estimate_tokens(text, 0, messages) == usual_prompt_tokens(text, messages)
        assert estimate_tokens(text, 40, messages) == usual_prompt_tokens(text, messages) + 40
    assert limit_headers(Limits(rpm=3), None, None, 0.0) == ()


@pytest.mark.parametrize(
    ("address", "scope"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:0:0:0:9", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        ("::1", "::1"),  # loopback alone (attack34: ``::/64`` holds bogons)
        ("::2", "::/64"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_client_is_its_64_and_a_mapped_one_its_ipv4(address: str, scope: str) -> None:
    assert address_scope(address) == scope


def test_a_total_is_one_bucket_for_many_scopes_kept_apart_and_settled() -> None:
    """The process's totals (anonymous requests, public ledger rows) for every address
    together: many scopes never evict one, a charge is at most the total, settled to use."""
    limiter = RateLimiter(max_scopes=2)
    total = limiter.total("anonymous", 3, 0.0)
    for i in range(3):
        assert total.wait(0.0) == 0.0
        total.take(0.0)
        limiter.check(f"ip:2001:db8:{i}::/64", Limits(rpm=1), 0.0)  # scopes come and go
    assert limiter.total("anonymous", 3, 0.0) is total  # never evicted by the scopes
    assert total.wait(0.0) == pytest.approx(20.0)  # 3 a minute: one more in 20 s
    total.give(0.0)  # refused by its own limit after all
    assert total.wait(0.0) == 0.0
    assert limiter.total("anonymous", 4, 0.0) is not total  # its limit changed: a fresh one
    rows = limiter.total("ledger-read", 100, 0.0)
    assert rows.take(0.0, 10**9) == 100  # never more than the total holds
    rows.settle(0.0, 100, 40)  # served 40 rows: 60 back
    assert rows.wait(0.0, 60) == 0.0 and rows.wait(0.0, 61) > 0


def test_a_late_settle_with_an_earlier_now_does_not_refill_the_bucket_twice() -> None:
    """Found 2026-12-03 (review): a read's charge is settled with the ``now`` of its start
    (``ledger_api._Rows.used``: the checkpoints' read awaits the database in between), while
    other reads took from the same process-wide total meanwhile. ``Bucket.give``/``take``
    then moved the bucket's clock back to that ``now``, and the refill between it and the
    later take was counted again: each late settle gave the total ``delay × rate`` more (for
    the 3,000,000-rows total, 50,000 rows per second of delay), so many slow reads at once
    from many addresses added up past it. A ``now`` before the bucket's clock refills
    nothing and leaves the clock where it is."""
    total = Total(60, 0.0)  # 1 a second
    total.take(0.0, 60)  # empty at 0
    total.take(30.0, 0)  # another read at 30: the level is 30 then
    assert total.bucket.level(30.0) == pytest.approx(30.0)
    total.settle(10.0, 5, 5)  # a read begun at 10, settled now: used what it was charged
    assert total.bucket.level(30.0) == pytest.approx(30.0)  # not 50
    total.settle(10.0, 5, 0)  # ... another gave back 5
    assert total.bucket.level(30.0) == pytest.approx(35.0)
    total.settle(10.0, 0, 10)  # ... another took 10 more
    assert total.bucket.level(30.0) == pytest.approx(25.0)
    assert total.bucket.level(31.0) == pytest.approx(26.0)  # refilled from 30 on, once


def test_wait_tells_when_one_more_fits_and_takes_nothing() -> None:
    """``RateLimiter.wait`` (``registry/admin.check_admin``: only wrong keys are taken)."""
    lim, three = RateLimiter(), Limits(rpm=3)
    assert lim.wait("a", three, 0.0) == 0.0 and len(lim) == 0  # unseen: no state made
    for _ in range(3):
        assert lim.wait("a", three, 0.0) == 0.0
        assert lim.check("a", three, 0.0).allowed
    assert lim.wait("a", three, 0.0) == pytest.approx(20.0)  # 3 a minute: one per 20 s
    assert lim.wait("a", three, 0.0) == pytest.approx(20.0)  # asking took nothing
    assert lim.wait("b", three, 0.0) == 0.0  # another scope
    assert lim.wait("a", Limits(rpm=4), 0.0) == 0.0  # changed limits: a fresh bucket
    assert lim.wait("a", Limits(), 0.0) == 0.0  # unlimited
    assert lim.wait("a", three, 20.0) == pytest.approx(0.0)


def test_give_returns_one_request_never_above_the_limit() -> None:
    """rot41: a try counted as it began and not refused after all is given back."""
    limiter, limits = RateLimiter(), Limits(rpm=2)
    assert limiter.check("a", limits, 0.0).allowed and limiter.check("a", limits, 0.0).allowed
    assert not limiter.check("a", limits, 0.0).allowed
    limiter.give("a", limits, 0.0)
    assert limiter.check("a", limits, 0.0).allowed
    limiter.give("a", limits, 0.0)
    limiter.give("a", limits, 0.0)
    limiter.give("a", limits, 0.0)  # never above the limit: two, not three
    assert [limiter.check("a", limits, 0.0).allowed for _ in range(3)] == [True, True, False]
    limiter.give("never-seen", limits, 0.0)  # nothing to give back to
    assert limiter.wait("never-seen", limits, 0.0) == 0
