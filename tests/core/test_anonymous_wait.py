"""The admit stage's wait for anonymous requests: its 256 places, shared between addresses
by the send stage's push-out rule (core/anonymous_wait.py, core/slot_wait.place_for)."""

from __future__ import annotations

from LLM_Mesh.core.anonymous_inflight import DEFAULT_ANONYMOUS_IN_FLIGHT
from LLM_Mesh.core.anonymous_wait import MAX_ANONYMOUS_WAITERS
from LLM_Mesh.core.slot_wait import Place, place_for


def _ask(held: dict[str, int], address: str) -> Place:
    """One more waiting request of ``address`` (``place_for`` at the anonymous cap), the
    push-out applied to the counts."""
    mine = held.setdefault(address, 0)
    top = max(held, key=lambda a: held[a])
    how = place_for(mine, sum(held.values()), held[top], MAX_ANONYMOUS_WAITERS)
    if how is Place.PUSH:
        held[top] -= 1
    if how is not Place.REFUSE:
        held[address] += 1
    return how


def test_sixty_four_addresses_at_their_in_flight_bound_leave_a_place_for_another() -> None:
    """Found 2026-12-05: 64 IPv6 /64s, each at its in-flight bound (4), filled the 256
    places and every other anonymous client's wait was refused at once (``may_wait``
    counted places, not whose). Now a 65th address takes the newest place of one of them,
    and so does every further address while fewer addresses wait than there are places."""
    held: dict[str, int] = {}
    flooders = MAX_ANONYMOUS_WAITERS // DEFAULT_ANONYMOUS_IN_FLIGHT
    assert flooders == 64
    for i in range(flooders):
        for _ in range(DEFAULT_ANONYMOUS_IN_FLIGHT):
            assert _ask(held, f"2001:db8:7:{i:x}::/64") is Place.TAKE
    assert sum(held.values()) == MAX_ANONYMOUS_WAITERS
    assert _ask(held, "198.51.100.7") is Place.PUSH  # before: refused
    assert held["198.51.100.7"] == 1 and sorted(set(held.values())) == [1, 3, 4]
    # a flooder at its bound asks again (its own bound refuses it first; here the place
    # rule alone): refused, no other address holds two more than it
    assert _ask(held, "2001:db8:7:1::/64") is Place.REFUSE
    for k in range(MAX_ANONYMOUS_WAITERS - flooders - 1):  # 191 more addresses, one each
        assert _ask(held, f"2001:db8:8:{k:x}::/64") is Place.PUSH, k
    assert set(held.values()) == {1} and len(held) == MAX_ANONYMOUS_WAITERS
    assert _ask(held, "192.0.2.1") is Place.REFUSE  # more addresses than places


def test_one_address_alone_may_use_every_place() -> None:
    """No fixed bound per address: with nobody else waiting one address (loopback, a
    proxy on the machine, or where no in-flight bound applies) may take them all."""
    held: dict[str, int] = {}
    while _ask(held, "127.0.0.1") is Place.TAKE:
        pass
    assert held == {"127.0.0.1": MAX_ANONYMOUS_WAITERS}
    assert _ask(held, "2001:db8::/64") is Place.PUSH
    assert held == {"127.0.0.1": MAX_ANONYMOUS_WAITERS - 1, "2001:db8::/64": 1}


def test_clear_holds_anonymous_requests_while_a_keyed_one_waits_or_the_share_is_held() -> None:
    """``clear`` (moved from registry/access.AnonymousLast): the gateway and the simulator
    admit anonymous requests by it."""
    from LLM_Mesh.core.anonymous_wait import Clear, clear

    assert clear(False, 3, 1, False, False) is Clear.GO
    assert clear(True, 3, 0, False, False) is Clear.HOLD  # a freed slot goes to the keyed one
    assert clear(False, 3, 0, True, False) is Clear.HOLD  # the share held: the rest is keys'
    assert clear(False, 3, 0, False, True) is Clear.ASK  # constrained: its own pick decides
    assert clear(False, 0, 2, True, False) is Clear.ASK  # none open: the router says
    assert clear(False, 0, 0, True, False) is Clear.GO  # none up: the send stage's 503
