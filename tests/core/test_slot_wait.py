"""The send stage's wait: its sleep between looks and its cap (core/slot_wait.py)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.slot_wait import MAX_SEND_WAITERS, RECHECK_S, may_wait, recheck_s


def test_recheck_is_the_estimate_at_least_the_floor_at_most_what_is_left() -> None:
    assert recheck_s(0.0001, 10.0) == RECHECK_S  # before: 5 ms
    assert recheck_s(None, 10.0) == RECHECK_S
    assert recheck_s(2.0, 10.0) == 2.0
    assert recheck_s(3600.0, 1.5) == 1.5
    assert recheck_s(0.0001, 0.1) == 0.1


def test_may_wait() -> None:
    assert may_wait(MAX_SEND_WAITERS - 1) and not may_wait(MAX_SEND_WAITERS)
    assert not may_wait(0, 0)
    with pytest.raises(ValueError):
        may_wait(0, -1)


def test_one_key_may_hold_a_quarter_of_the_places() -> None:
    from LLM_Mesh.core.slot_wait import KEY_SHARE, MAX_SEND_WAITERS, key_cap, may_wait

    assert key_cap() == int(MAX_SEND_WAITERS * KEY_SHARE) == 64
    assert key_cap(3) == 1 and key_cap(0) == 0 and key_cap(8, 1.0) == 8
    assert may_wait(10, key_waiting=63) and not may_wait(10, key_waiting=64)
    assert not may_wait(256, key_waiting=0)  # the total still bounds
    for bad in ((-1, 0.25), (8, 0.0), (8, 1.5)):
        with pytest.raises(ValueError):
            key_cap(*bad)


def test_keys_waiting_leave_places_for_a_key_not_waiting_yet() -> None:
    """Found open 2026-12-05: four keys at their quarter each filled every place, and a
    fifth key's wait was refused at once. The last :func:`kept_for_new` places go to keys
    with no place yet, one each."""
    from LLM_Mesh.core.slot_wait import kept_for_new

    held = dict.fromkeys("abcd", 0)
    waiting = 0
    for key in held:
        while may_wait(waiting, key_waiting=held[key]):
            held[key] += 1
            waiting += 1
    assert waiting == MAX_SEND_WAITERS - kept_for_new() < MAX_SEND_WAITERS  # before: 256
    for fresh in range(kept_for_new()):  # a fifth key, and more: a place each
        assert may_wait(waiting, key_waiting=0), fresh
        waiting += 1
    assert not may_wait(waiting, key_waiting=0)  # the total still bounds
    assert not may_wait(waiting - 1, key_waiting=1)  # one place each in the kept ones
    assert kept_for_new() == MAX_SEND_WAITERS // 8 and kept_for_new(3) == 0


def test_wait_places_count_by_key_and_say_why_none() -> None:
    """``WaitPlaces`` (moved from registry/routing.py): the gateway and the simulator count
    the send stage's places by it."""
    from LLM_Mesh.core.slot_wait import WaitPlaces

    places = WaitPlaces(8)  # key_cap 2, the last 1 kept for keys with none yet
    assert places.take("a") == "" and places.take("a") == ""
    assert places.take("a") == "2 requests of this API key wait here already, the most one key may"
    for key in "bcd":
        assert places.take(key) == ""
    assert places.take("b") == "" and places.take("c") == ""
    assert places.held == 7
    assert places.take("d") == "the last 1 places are kept for API keys with none waiting here yet"
    assert places.take("e") == ""  # a new key takes the kept place
    assert places.take("f") == "as many requests as may wait here wait already"
    assert places.by_key == {"a": 2, "b": 2, "c": 2, "d": 1, "e": 1}
    places.leave("a")
    places.leave("e")
    assert places.held == 6 and places.by_key == {"a": 1, "b": 2, "c": 2, "d": 1}
    with pytest.raises(ValueError):
        places.leave("e")  # none held: a caller's bug, not a count below 0
    with pytest.raises(ValueError):
        WaitPlaces(-1)


def test_slot_wait_looks() -> None:
    from LLM_Mesh.core.route_types import Verdict
    from LLM_Mesh.core.slot_wait import Next, SlotWait, ran_out

    wait = SlotWait(100.0, 2.0, 130.0, trace=True)
    assert wait.until == 102.0 and wait.left(101.5) == 0.5
    assert SlotWait(100.0, 60.0, 130.0).until == 130.0  # the deadline bounds it
    sat = Verdict.SATURATED
    assert wait.look(sat, 0.0001, 2.0) == (sat, Next.SLEEP, RECHECK_S, "", None)
    assert wait.look(sat, 1.5, 2.0, False).sleep_s == 1.5  # the router's estimate
    assert wait.look(sat, 9.0, 0.4, True).sleep_s == 0.4  # at most what is left
    assert wait.look(Verdict.OK, None, -1.0).next is Next.SEND  # a free node wins, even late
    end = wait.look(sat, None, 0.0)
    assert end.next is Next.RAN_OUT and end.why == ran_out(2.0)
    assert SlotWait(100.0, 0.0, 130.0).look(sat, None, 0.0).why == ""  # no wait: none said
    assert wait.looks is not None and len(wait.looks) == 5
    assert SlotWait(0.0, 1.0, 9.0).looks is None  # not traced unless asked
