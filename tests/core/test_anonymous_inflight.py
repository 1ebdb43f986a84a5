"""``core/anonymous_inflight.py``: an anonymous scope's requests in flight, and loopback."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.anonymous_inflight import InFlight, exempt
from LLM_Mesh.core.ratelimit import address_scope


def test_a_scope_takes_up_to_its_cap_and_each_end_gives_one_back() -> None:
    f = InFlight(2)
    assert f.take("a") and f.take("a")
    assert not f.take("a")
    assert f.take("b")  # another scope counts apart
    f.give("a")
    assert f.take("a") and not f.take("a")
    f.give("a")
    f.give("a")
    f.give("b")
    assert f.counts == {}  # a scope at 0 is forgotten


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        InFlight(0)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("203.0.113.9", False),
        ("2001:db8::1", False),
        ("10.0.0.1", False),
        ("testclient", False),
        ("::203.0.113.9", False),  # attack34: in ``::1``'s /64, no loopback
        ("::2", False),
        ("::", False),
    ],
)
def test_only_loopback_is_exempt(address: str, loopback: bool) -> None:
    assert exempt(address_scope(address)) is loopback


# (mutation testing, mut31b)


def test_a_cap_of_1_is_one_request_and_below_is_refused_in_words() -> None:
    one = InFlight(1)
    assert one.take("s") and not one.take("s")
    with pytest.raises(ValueError, match=r"^cap must be at least 1$"):
        InFlight(0)


def test_a_scopes_own_cap_is_used_over_the_default() -> None:
    f = InFlight(5)
    assert f.take("s", cap=1) and not f.take("s", cap=1)
    assert f.take("s")  # the default of 5 still lets a second in


def test_giving_back_a_scope_never_taken_changes_nothing() -> None:
    f = InFlight(2)
    f.give("never")
    assert f.counts == {}
