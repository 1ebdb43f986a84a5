"""Who is woken by a change of routing: the opt-in wait's wake-on-change rule.

Requests waiting for a slot of a model sleep on that model's handle (the gateway's an
``asyncio.Event``, the simulator's a list of its waiting requests); a change for the
better for a model (an attempt on a node serving it ends, such a node registers,
heartbeats or becomes routable again, an anonymous request of the share ends) wakes every
sleeper of that model at once and only them: the handle is dropped, and a request that
sleeps again gets a new one. Until 2026-12-05 one event woke every waiter of every model
(``registry/routing.py``). Moved here on 2026-12-05 so that the fleet simulator wakes its
waiters by the same code. Pure: the caller makes the handles and wakes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["WakeOnChange"]

H = TypeVar("H")


class WakeOnChange(Generic[H]):
    """The handle each model's sleepers share, made by ``make`` on the first sleeper."""

    __slots__ = ("_handles", "_make")

    def __init__(self, make: Callable[[], H]) -> None:
        self._make = make
        self._handles: dict[str, H] = {}

    def __bool__(self) -> bool:
        return bool(self._handles)

    def sleeper(self, model: str) -> H:
        """The handle a request waiting for ``model`` sleeps on."""
        handle = self._handles.get(model)
        if handle is None:
            handle = self._handles[model] = self._make()
        return handle

    def changed(self, models: Iterable[str]) -> list[H]:
        """The handles to wake for a change of ``models`` (then forgotten here)."""
        handles = self._handles
        if not handles:
            return []
        woken = []
        for model in models:
            handle = handles.pop(model, None)
            if handle is not None:
                woken.append(handle)
        return woken
