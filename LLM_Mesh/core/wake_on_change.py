"""Who is woken by a change of routing: the opt-in waits' wake-on-change rule.

Requests waiting for a slot of a model sleep one look at a time (the gateway's an asyncio
future, the simulator's a token on its event loop); a change for the better for a model (an
attempt on a node serving it ends, such a node registers, heartbeats or becomes routable
again, an anonymous request of the share ends) wakes every sleeper of that model at once and
only them; a sleeper whose look ended without a change leaves (:meth:`WakeOnChange.leave`).
Until 2026-12-05 one event woke every waiter of every model (``registry/routing.py``).
Moved here on 2026-12-05 so that the fleet simulator wakes its waiters by the same code.
Pure: the caller makes the sleepers and wakes them.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["WakeOnChange"]

S = TypeVar("S", bound=Hashable)


class WakeOnChange(Generic[S]):
    """The sleepers of each model, in the order they began their looks."""

    __slots__ = ("_sleepers",)

    def __init__(self) -> None:
        self._sleepers: dict[str, dict[S, None]] = {}

    def __bool__(self) -> bool:
        return bool(self._sleepers)

    def sleep(self, model: str, sleeper: S) -> None:
        """``sleeper`` waits for a change of ``model`` (one look)."""
        self._sleepers.setdefault(model, {})[sleeper] = None

    def leave(self, model: str, sleeper: S) -> None:
        """``sleeper``'s look ended without a change of ``model`` (its time, a push-out)."""
        sleepers = self._sleepers.get(model)
        if sleepers is not None:
            sleepers.pop(sleeper, None)
            if not sleepers:
                del self._sleepers[model]

    def changed(self, models: Iterable[str]) -> list[S]:
        """The sleepers to wake for a change of ``models``, oldest first (then forgotten
        here: a request that sleeps again begins a new look)."""
        table = self._sleepers
        if not table:
            return []
        woken: list[S] = []
        for model in models:
            sleepers = table.pop(model, None)
            if sleepers is not None:
                woken.extend(sleepers)
        return woken
