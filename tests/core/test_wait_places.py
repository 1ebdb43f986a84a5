"""A wait's places shared between holders by push-out (core/wait_places.py): the
bookkeeping both waits share (API keys in the send stage's, addresses in the admit
stage's anonymous wait)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.wait_places import WaitPlace, WaitPlaces

FULL = "as many requests without an API key as may wait here wait already"


def test_a_new_holder_pushes_out_the_newest_place_of_the_largest_and_wakes_it() -> None:
    places = WaitPlaces(4, "address", FULL)
    mine = [places.take("2001:db8::/64") for _ in range(4)]
    assert all(isinstance(p, WaitPlace) for p in mine)
    refused = places.take("2001:db8::/64")  # alone at every place: none to push out
    assert refused == (
        f"{FULL}, 4 of them by this address's requests, and no other address holds two more "
        "(it would give one up)"
    )
    newest = mine[-1]
    assert isinstance(newest, WaitPlace)
    woken: list[int] = []
    newest.wake = lambda: woken.append(1)  # as Routing.wait_change sets it while it sleeps
    got = places.take("198.51.100.7")
    assert isinstance(got, WaitPlace) and got.holder == "198.51.100.7"
    assert woken == [1]  # woken at once
    assert newest.out == (
        "its place to wait here went to a request of another address (every place was "
        "taken, 4 of them by this address's requests)"
    )
    assert places.waiting == 4
    assert {h: len(p) for h, p in places.by_holder.items()} == {
        "2001:db8::/64": 3,
        "198.51.100.7": 1,
    }
    places.leave(newest)  # pushed out: gone already, not given back twice
    assert places.waiting == 4
    for p in [*mine, got]:
        assert isinstance(p, WaitPlace)
        places.leave(p)
        places.leave(p)  # once
    assert places.waiting == 0 and places.by_holder == {}


def test_holders_with_one_place_each_refuse_a_further_one_with_the_plain_message() -> None:
    places = WaitPlaces(3, "address", FULL)
    for a in ("a", "b", "c"):
        assert isinstance(places.take(a), WaitPlace)
    assert places.take("d") == FULL  # more holders than places
    assert places.waiting == 3


def test_a_wait_of_no_places_refuses_every_request_and_a_negative_one_is_a_mistake() -> None:
    places = WaitPlaces(0, "API key", "no place")
    assert places.take("k") == "no place"
    assert places.waiting == 0 and places.by_holder == {}
    with pytest.raises(ValueError, match=r"^cap must be at least 0$"):
        WaitPlaces(-1, "API key", "no place")


def test_a_place_held_is_unmarked_and_one_given_back_says_left() -> None:
    places = WaitPlaces(2, "API key", "no place")
    place = places.take("k")
    assert isinstance(place, WaitPlace) and place.out == "" and place.wake is None
    places.leave(place)
    assert place.out == "left"


def test_a_waiter_pushed_out_while_not_sleeping_is_only_told() -> None:
    """Its place goes while it is between looks (no ``wake`` set): nothing to wake, the
    request reads ``out`` at its next look."""
    places = WaitPlaces(2, "API key", "no place")
    first, second = places.take("k"), places.take("k")
    assert isinstance(second, WaitPlace) and second.wake is None
    assert isinstance(places.take("other"), WaitPlace)
    assert second.out.startswith("its place to wait here went to a request of another API key")
    assert isinstance(first, WaitPlace) and first.out == ""
