"""A process's places to wait for a node slot, shared between holders by push-out.

Two waits have them: the send stage's opt-in wait for keyed requests, one holder an API key
(:meth:`~LLM_Mesh.registry.routing.Routing.take_place`, :data:`~LLM_Mesh.core.slot_wait.MAX_SEND_WAITERS`),
and the admit stage's wait for anonymous requests, one holder an address (an IPv4 address,
an IPv6 /64: the scope of the in-flight bound; ``access.AnonymousLast``,
:data:`~LLM_Mesh.core.anonymous_wait.MAX_ANONYMOUS_WAITERS`). :class:`WaitPlaces` counts
the places per holder, oldest first, and applies the pure decision
(:func:`~LLM_Mesh.core.slot_wait.place_for`): a free place to anyone; with all taken, the
newest place of the holder holding the most if it holds two more than the asking one (its
waiter is told by :attr:`WaitPlace.out` and woken at once: its :attr:`WaitPlace.wake`),
else none. So one holder alone may use every place, and a holder with none finds one while
fewer holders wait than there are places (found 2026-12-05 for keys, then for addresses:
docs/security.md, "Users and API keys").

Moved from ``registry/wait_places.py`` on 2026-12-05 so that the fleet simulator counts
and pushes out by the same code (the gateway wakes a waiter through an asyncio future,
the simulator through its event loop: the caller sets ``wake``). Pure but for ``wake``
and the two hooks a caller may set, called only on those rare events (the gateway's
metrics, ``llm_mesh_gateway_wait_pushouts`` and ``_wait_refusals``): :attr:`WaitPlaces.on_push`
(a place taken from another holder) and :attr:`WaitPlaces.on_refuse` (none to give).
"""

from __future__ import annotations

from collections.abc import Callable

from LLM_Mesh.core.slot_wait import Place, place_for

__all__ = ["WaitPlace", "WaitPlaces"]


class WaitPlace:
    """One request's place in a wait (:meth:`WaitPlaces.take`)."""

    __slots__ = ("holder", "out", "wake")

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.out = ""  # why it lost its place (pushed out), or "left"; "" while held
        # wakes the look it sleeps in, if any (set by the caller while it sleeps)
        self.wake: Callable[[], None] | None = None


class WaitPlaces:
    """At most :attr:`cap` places, shared between holders by push-out (module docstring).

    ``who`` names a holder in the answers ("API key", "address"); ``full`` begins every
    refusal (all places taken)."""

    __slots__ = ("by_holder", "cap", "full", "on_push", "on_refuse", "waiting", "who")

    def __init__(self, cap: int, who: str, full: str) -> None:
        if cap < 0:
            raise ValueError("cap must be at least 0")
        self.cap = cap
        self.who = who
        self.full = full
        self.waiting = 0  # places held, every holder together
        self.by_holder: dict[str, dict[WaitPlace, None]] = {}  # holder -> places, oldest first
        # called once a place is taken from another holder / once one is refused (metrics)
        self.on_push: Callable[[], None] | None = None
        self.on_refuse: Callable[[], None] | None = None

    def take(self, holder: str) -> WaitPlace | str:
        """A place for a request of ``holder`` (give it back with :meth:`leave`), possibly
        another holder's newest (pushed out: its waiter told and woken), else why there is
        none (the request is answered as without a wait)."""
        mine = self.by_holder.get(holder)
        held = 0 if mine is None else len(mine)
        most, top = held, holder
        if self.waiting >= self.cap:  # a scan only when none is free (at most cap holders)
            for other, places in self.by_holder.items():
                if len(places) > most:
                    most, top = len(places), other
        how = place_for(held, self.waiting, most, self.cap)
        who = self.who
        if how is Place.REFUSE:
            if self.on_refuse is not None:
                self.on_refuse()
            if held:
                return (
                    f"{self.full}, {held} of them by this {who}'s requests, and no other "
                    f"{who} holds two more (it would give one up)"
                )
            return self.full
        if how is Place.PUSH:
            theirs = self.by_holder[top]
            out = next(reversed(theirs))  # its newest waiter: it waited least
            out.out = (
                f"its place to wait here went to a request of another {who} (every place "
                f"was taken, {len(theirs)} of them by this {who}'s requests)"
            )
            self._drop(out)
            if out.wake is not None:
                out.wake()
            if self.on_push is not None:
                self.on_push()
        place = WaitPlace(holder)
        self.waiting += 1
        self.by_holder.setdefault(holder, {})[place] = None
        return place

    def leave(self, place: WaitPlace) -> None:
        """Give back a place :meth:`take` gave (once; a place pushed out is gone)."""
        if not place.out:
            self._drop(place)
            place.out = "left"

    def _drop(self, place: WaitPlace) -> None:
        self.waiting -= 1
        places = self.by_holder.get(place.holder)
        if places is not None:
            places.pop(place, None)
            if not places:
                del self.by_holder[place.holder]
