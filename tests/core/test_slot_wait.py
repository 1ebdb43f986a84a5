"""The send stage's wait: its sleep between looks and its cap (core/slot_wait.py)."""

from __future__ import annotations

import math

import pytest

from LLM_Mesh.core.slot_wait import (
    MAX_SEND_WAITERS,
    RECHECK_S,
    Place,
    may_wait,
    place_for,
    recheck_s,
)


def test_recheck_is_the_estimate_at_least_the_floor_at_most_what_is_left() -> None:
    assert recheck_s(0.0001, 10.0) == RECHECK_S  # before: 5 ms
    assert recheck_s(None, 10.0) == RECHECK_S
    assert recheck_s(2.0, 10.0) == 2.0
    assert recheck_s(3600.0, 1.5) == 1.5
    assert recheck_s(0.0001, 0.1) == 0.1


def test_may_wait() -> None:
    assert may_wait(MAX_SEND_WAITERS - 1) and not may_wait(MAX_SEND_WAITERS)
    assert not may_wait(0, 0)
    with pytest.raises(ValueError, match=r"^cap must be at least 0$"):
        may_wait(0, -1)


def _flood(held: dict[str, int], key: str, cap: int = MAX_SEND_WAITERS) -> int:
    """``key`` asks for places until refused (``place_for``, push-out applied): how many
    requests of others lost theirs."""
    pushed = 0
    held.setdefault(key, 0)
    while True:
        most = max(held, key=lambda k: held[k])
        how = place_for(held[key], sum(held.values()), held[most], cap)
        if how is Place.REFUSE:
            return pushed
        if how is Place.PUSH:
            held[most] -= 1
            pushed += 1
        held[key] += 1


def test_one_key_holds_no_more_than_its_share_once_another_asks() -> None:
    """A key alone may use every place (nobody else waits), but not keep more than its
    share from a key that asks: found 2026-12-05, one key's flood held every place (then
    a fixed quarter: four keys held them all)."""
    held: dict[str, int] = {}
    assert _flood(held, "a") == 0 and held["a"] == MAX_SEND_WAITERS
    assert _flood(held, "b") == MAX_SEND_WAITERS // 2
    assert held == {"a": 128, "b": 128}
    assert _flood(held, "a") == 0  # at its share: refused, pushes nobody out
    assert place_for(128, 256, 128) is Place.REFUSE
    assert place_for(127, 256, 129) is Place.PUSH and place_for(128, 256, 129) is Place.REFUSE
    assert place_for(5, 255, 200) is Place.TAKE  # a free place: anyone's


def test_forty_keys_flooding_leave_a_place_for_a_forty_first() -> None:
    """Found open 2026-12-05: with a fixed bound per key (a quarter, the last eighth for
    new keys) 33 keys together filled the 256 places, and a further key's wait was refused
    at once. Keys flooding one after another (the worst order for a fixed bound) now end
    within one place of each other, and a key with none finds one until as many keys wait
    as there are places."""
    held: dict[str, int] = {}
    for k in range(40):
        _flood(held, f"k{k}")
    assert sum(held.values()) == MAX_SEND_WAITERS
    assert max(held.values()) <= math.ceil(MAX_SEND_WAITERS / 40)  # 7
    assert min(held.values()) >= MAX_SEND_WAITERS // 40  # 6
    assert place_for(0, MAX_SEND_WAITERS, max(held.values())) is Place.PUSH  # the 41st
    for k in range(40, MAX_SEND_WAITERS):  # and every further key, one place each at last
        most = max(held.values())
        assert place_for(0, MAX_SEND_WAITERS, most) is not Place.REFUSE, k
        _flood(held, f"k{k}")
    assert set(held.values()) == {1}
    assert place_for(0, MAX_SEND_WAITERS, 1) is Place.REFUSE  # more keys than places


def test_place_for_checks_its_counts() -> None:
    for bad in ((-1, 0, 0, 8), (2, 1, 1, 8), (0, 3, 4, 8), (0, 0, 0, -1)):
        with pytest.raises(ValueError, match=r"^need 0 <= held <= most <= waiting and cap >= 0$"):
            place_for(*bad)
    assert place_for(0, 0, 0, 0) is Place.REFUSE  # a wait of no places: allowed, none given


def test_slot_wait_looks() -> None:
    """``SlotWait`` (moved from registry/send.py): the gateway and the simulator look by it."""
    from LLM_Mesh.core.route_types import Verdict
    from LLM_Mesh.core.slot_wait import RECHECK_S, Next, SlotWait, ran_out

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


def test_each_look_carries_its_verdict_and_what_woke_it_and_is_traced() -> None:
    from LLM_Mesh.core.route_types import Verdict
    from LLM_Mesh.core.slot_wait import Look, Next, SlotWait, ran_out

    ok, sat = Verdict.OK, Verdict.SATURATED
    wait = SlotWait(100.0, 0.5, 130.0, trace=True)  # a wait under a second is a wait
    steps = [
        wait.look(sat, 0.3, 0.5, None),
        wait.look(ok, None, 0.2, True),
        wait.look(sat, None, 0.0, False),
        wait.look(sat, 0.3, 0.4, True),
    ]
    assert steps == [
        Look(sat, Next.SLEEP, 0.3, "", None),
        Look(ok, Next.SEND, 0.0, "", True),
        Look(sat, Next.RAN_OUT, 0.0, ran_out(0.5), False),
        Look(sat, Next.SLEEP, 0.3, "", True),
    ]
    assert wait.looks == steps and wait.started == 100.0
