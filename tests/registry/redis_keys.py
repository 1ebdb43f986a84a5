"""A Redis test's own keys swept when it ends (Redis db 15 is shared by every test run on the
box, docs/testing.md).

Found 2026-12-07 (hygiene44): ``test_redis_shown_out_midway.py`` wrote a hash of its own with
no TTL on every run and never deleted it, so db 15 kept one more ``review36b:*`` key each
time. The product's keys all expire (leases, fades, full buckets); a key left with no TTL is
one a test wrote itself and must delete, or a product key that would stay for ever: either
way :func:`swept` fails the test, after deleting every key under its prefixes so that none
stays behind.

Only a test's own prefix (a fresh uuid in it) is swept: never the product's
(``llm-mesh:...``), whose keys other runs on the same Redis may hold."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from LLM_Mesh.registry import redis_inflight, redis_limits, redis_shown

__all__ = ["PRODUCT_PREFIXES", "own_prefixes", "swept"]

#: the product's own prefixes: never swept (other runs' keys may be under them)
PRODUCT_PREFIXES = frozenset(
    {
        redis_inflight.PREFIX,
        redis_inflight.SHARE_PREFIX,
        redis_limits.PREFIX,
        redis_shown.SHOWN_PREFIX,
    }
)


def own_prefixes(runtimes: Iterable[Any]) -> list[str]:
    """The prefixes a test set on these replicas' Redis-shared parts (``Runtime``'s
    ``shared_in_flight``, ``shared_share``, ``shared_shown``), the product's left out."""
    out: list[str] = []
    for runtime in runtimes:
        for part in (runtime.shared_in_flight, runtime.shared_share, runtime.shared_shown):
            prefix = getattr(part, "prefix", None)
            if prefix and prefix not in PRODUCT_PREFIXES and prefix not in out:
                out.append(prefix)
    return out


async def swept(url: str, *prefixes: str) -> None:
    """Delete every key under ``prefixes`` at ``url``; then fail (``AssertionError``) if one
    had no TTL or if any is still there. Call it once nothing writes under them any more."""
    import redis.asyncio as redis_asyncio  # optional: the tests using this need Redis

    for prefix in prefixes:
        if not prefix or prefix in PRODUCT_PREFIXES or not prefix.endswith(":"):
            raise ValueError(f"not a test's own prefix: {prefix!r}")
    client = redis_asyncio.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    untimed: list[bytes] = []
    left: list[bytes] = []
    try:
        for prefix in prefixes:
            async for name in client.scan_iter(match=_pattern(prefix)):
                if await client.ttl(name) == -1:  # -2: gone meanwhile (expired)
                    untimed.append(name)
                await client.delete(name)
        for prefix in prefixes:
            left += [name async for name in client.scan_iter(match=_pattern(prefix))]
    finally:
        await client.aclose()
    assert not untimed, f"keys left in Redis with no TTL (deleted now): {untimed}"
    assert not left, f"keys still in Redis under {prefixes}: {left}"


def _pattern(prefix: str) -> str:
    """``prefix`` as a ``SCAN MATCH`` pattern: its glob characters taken literally."""
    for c in "\\*?[]":
        prefix = prefix.replace(c, "\\" + c)
    return prefix + "*"
