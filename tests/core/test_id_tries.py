"""``IdTries``: failures a minute per node id, kept only while they count (beatrot40)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.ratelimit import DEFAULT_MAX_IDS, IdTries, Limits, RateLimiter

NOW = 100.0


def test_an_id_is_refused_once_its_minute_is_spent_and_refills() -> None:
    tries = IdTries(per_min=3)
    assert tries.wait("a", NOW) == 0 and len(tries) == 0  # asking counts nothing
    for _ in range(3):
        tries.count("a", NOW)
    assert tries.wait("a", NOW) == pytest.approx(20.0)  # a third of a minute for one
    assert tries.wait("b", NOW) == 0  # another id's own
    assert tries.wait("a", NOW + 20) == 0


def test_entries_go_once_their_minute_has_passed() -> None:
    tries = IdTries(per_min=10)
    for i in range(1000):
        tries.count(f"id-{i}", NOW + i)  # one a second
    # one taken of ten refills in 6 s: only those counted in the last 6 s are kept
    assert len(tries) <= 7, len(tries)
    assert tries.wait("id-999", NOW + 999) == 0  # one of ten: not refused, still kept


def test_at_most_max_ids_and_an_active_id_keeps_its_count() -> None:
    tries = IdTries(per_min=2, max_ids=100)
    tries.count("target", NOW)
    tries.count("target", NOW)
    assert tries.wait("target", NOW) > 0
    for i in range(1000):  # many ids at once, the target counted again now and then
        tries.count(f"id-{i}", NOW)
        if i % 50 == 0:
            tries.count("target", NOW)
        assert len(tries) <= 100
    assert tries.wait("target", NOW) > 0  # never the one counted longest ago
    assert tries.wait("id-0", NOW) == 0  # pushed out: counted the longest ago


def test_the_limiters_per_id_counts_are_not_its_scopes() -> None:
    limiter = RateLimiter(max_scopes=10)
    ids = limiter.per_id("reregister", 5)
    assert limiter.per_id("reregister", 5) is ids and ids.max_ids == DEFAULT_MAX_IDS
    ids.count("a", NOW)
    for i in range(100):
        limiter.check(f"ip:{i}", Limits(rpm=1), NOW)
    assert len(limiter) == 10 and len(ids) == 1
    assert limiter.per_id("reregister", 6) is not ids  # its limit changed: fresh


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        IdTries(per_min=0)
    with pytest.raises(ValueError):
        IdTries(per_min=1, max_ids=0)


def test_a_count_given_back_frees_its_id_again() -> None:
    """Taken before the outcome is known (regtoken40), given back when it succeeded."""
    tries = IdTries(per_min=2)
    tries.count("a", NOW)
    tries.count("a", NOW)
    assert tries.wait("a", NOW) > 0
    tries.give("a", NOW)
    assert tries.wait("a", NOW) == 0
    tries.give("a", NOW)
    tries.give("a", NOW)  # never above the minute's allowance
    tries.count("a", NOW)
    tries.count("a", NOW)
    assert tries.wait("a", NOW) > 0
    tries.give("gone", NOW)  # an id not kept: nothing
    assert tries.wait("gone", NOW) == 0 and len(tries) == 1


def test_the_highest_seq_counted_is_kept_with_its_entry() -> None:
    """limits45 (``registry/valid_rates.py``): the highest sequence number counted for an
    id, kept while its entry is, never lowered, forgotten when asked for that very number
    and dropped with the entry."""
    tries = IdTries(per_min=10)
    assert tries.seq("a") is None
    tries.count("a", NOW, 7)
    tries.count("a", NOW, 5)  # lower: the highest stays
    tries.count("a", NOW)  # none given
    assert tries.seq("a") == 7
    tries.unseq("a", 5)  # not the highest: nothing
    assert tries.seq("a") == 7
    tries.unseq("a", 7)
    assert tries.seq("a") is None
    tries.count("a", NOW, 9)
    tries.count("b", NOW + 120, 1)  # a's minute has passed: its entry goes, its seq with it
    assert tries.seq("a") is None and tries.seq("b") == 1 and len(tries) == 1
