"""The per-node-id counts of refused re-registrations and of forged beats at a node's
home are bounded, and an active id's count is not lost (found open 2026-12-07, beatrot40).

``CredentialTries.before_reregister``/``reregistered`` (a registration whose key
``SignedNodeAuth.known_signer`` holds) and ``before_verify``/``failed_verify`` at a node's
home counted per node id in the process's ``RateLimiter`` scopes, beside every client's:
one entry per id ever counted, kept until 100,000 scopes of any kind pushed it out, so
another client's many addresses (an IPv6 /48 holds 65,536 /64s) could push out an id
whose count was full, and the id's refusals started over. They are now counted apart
(``RateLimiter.per_id``, ``core/id_tries.py``): an entry is dropped once its minute has
passed (it counts nothing then), at most ``DEFAULT_MAX_IDS`` kept, and no client's scope
pushes one out."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.ratelimit import Limits, RateLimiter
from LLM_Mesh.errors import RateLimited, UnknownNode
from LLM_Mesh.registry.admin import (
    WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN,
    WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN,
    WRONG_REREGISTRATIONS_PER_ID_PER_MIN,
    WRONG_REREGISTRATIONS_TOTAL_PER_MIN,
    CredentialTries,
    NodeHomes,
)

NOW = 1000.0
HOME = "10.0.0.1"
REFUSED = RateLimited("this address's counts are full", retry_after=1)


def _kept(limiter: RateLimiter) -> int:
    """Every entry the limiter keeps: its scopes, and (beatrot40) its per-id counts."""
    per_id = getattr(limiter, "per_id", None)  # before beatrot40: all in the scopes
    if per_id is None:
        return len(limiter)
    return len(limiter) + sum(
        len(per_id(name, n))
        for name, n in (
            ("reregister", WRONG_REREGISTRATIONS_PER_ID_PER_MIN),
            ("beat-home", WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN),
        )
    )


def _refused_reregistration(limiter: RateLimiter, node_id: str, now: float) -> None:
    tries = CredentialTries(limiter, HOME, now)
    tries.reregistered(tries.before_reregister(node_id, REFUSED), refused=True)


def _churn(limiter: RateLimiter, now: float) -> None:
    """Anonymous clients, one scope each, as many as the limiter keeps and one more."""
    for i in range(limiter.max_scopes + 1):
        limiter.check(f"ip:2001:db8:{i:x}::/64", Limits(rpm=60), now)


def test_an_ids_full_reregistration_count_outlives_other_clients_scopes() -> None:
    limiter = RateLimiter(max_scopes=1000)
    for _ in range(WRONG_REREGISTRATIONS_PER_ID_PER_MIN):
        _refused_reregistration(limiter, "node-x", NOW)
    with pytest.raises(RateLimited):
        CredentialTries(limiter, HOME, NOW).before_reregister("node-x", REFUSED)
    _churn(limiter, NOW + 1)
    # before: its count pushed out with the oldest scopes, its tries started over
    with pytest.raises(RateLimited):
        CredentialTries(limiter, HOME, NOW + 1).before_reregister("node-x", REFUSED)


def test_an_ids_full_count_at_home_outlives_other_clients_scopes() -> None:
    limiter, homes = RateLimiter(max_scopes=1000), NodeHomes()
    homes.note("node-x", HOME)
    limiter.total("wrong-beat-signature", WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN, NOW).take(
        NOW, WRONG_BEAT_SIGNATURES_TOTAL_PER_MIN
    )  # past every address's count: only the node's home is verified

    def before(now: float) -> str | None:
        return CredentialTries(limiter, HOME, now, homes=homes).before_verify("node-x")

    for _ in range(WRONG_BEAT_SIGNATURES_AT_HOME_PER_MIN):
        tries = CredentialTries(limiter, HOME, NOW, homes=homes)
        tries.failed_verify(tries.before_verify("node-x"))
    with pytest.raises(RateLimited):
        before(NOW)
    _churn(limiter, NOW)
    with pytest.raises(RateLimited):  # before: verified again, its count lost
        before(NOW)
    with pytest.raises(UnknownNode):  # elsewhere: register again, as before
        CredentialTries(limiter, "10.0.0.2", NOW, homes=homes).before_verify("node-x")


def test_per_id_counts_are_dropped_once_their_minute_has_passed() -> None:
    """20,000 ids each refused once, 4 a second (within the total of every id): the
    entries kept are about the ids counted in the last minute, not every id ever."""
    limiter, ids, step = RateLimiter(), 20_000, 0.25
    assert 1 / step < WRONG_REREGISTRATIONS_TOTAL_PER_MIN / 60
    for i in range(ids):
        _refused_reregistration(limiter, f"node-{i}", NOW + i * step)
    last_minute = int(60 / step)
    # before: one scope per id ever counted (20,000), up to the limiter's 100,000
    assert _kept(limiter) <= last_minute + 2, _kept(limiter)
    # the last one's count is still there: refused once more it is 2 of its 10
    end = NOW + ids * step
    for _ in range(WRONG_REREGISTRATIONS_PER_ID_PER_MIN - 1):
        _refused_reregistration(limiter, f"node-{ids - 1}", end)
    with pytest.raises(RateLimited):
        CredentialTries(limiter, HOME, end).before_reregister(f"node-{ids - 1}", REFUSED)
