"""``RateLimit`` on a keyed request, check by check (no gateway): a key without limits
passes with no headers and no token charge (the early return made no ``Limits``), a key
with only one of rpm / tpm is still limited by it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest

from LLM_Mesh.core.ratelimit import RateLimiter
from LLM_Mesh.errors import RateLimited
from LLM_Mesh.registry.access import RateLimit
from LLM_Mesh.registry.job import Client
from LLM_Mesh.registry.ports import ApiKeyRecord


class _Job:
    prompt_text = "hello"
    max_tokens = 10
    choices = 1
    messages = 1
    context = 2048


def _client(rpm: int | None, tpm: int | None) -> Client:
    c = Client("127.0.0.1", "Bearer x")
    c.key = ApiKeyRecord("key_0123456789ab", "h", datetime.now(timezone.utc), rpm=rpm, tpm=tpm)
    return c


def _check(client: Client, limiter: RateLimiter | None = None) -> Any:
    rl = RateLimit(
        RateLimiter() if limiter is None else limiter, anonymous_rpm=1, clock=lambda: 1000.0
    )
    return asyncio.run(rl(_Job(), client))  # type: ignore[arg-type]


def test_a_key_without_limits_passes_with_no_headers_and_no_charge() -> None:
    limiter = RateLimiter()
    for _ in range(5):  # the anonymous rpm of 1 is not this key's
        c = _client(None, None)
        assert _check(c, limiter) is None
        assert c.headers == ()
        assert c._settle is None


@pytest.mark.parametrize(("rpm", "tpm"), [(2, None), (None, 50)])
def test_a_key_with_one_limit_is_still_limited(rpm: int | None, tpm: int | None) -> None:
    limiter = RateLimiter()
    c = _client(rpm, tpm)
    _check(c, limiter)
    assert c.headers != ()  # x-ratelimit-* of the limit it has
    with pytest.raises(RateLimited):
        for _ in range(3):
            _check(_client(rpm, tpm), limiter)
