"""A set with O(1) add, remove and uniform random member: the router's per-model index.

Members live in a list; a dict maps each to its position, and removal swaps
the last member into the hole. ``at(i)`` lets the caller draw ``i`` itself and
``draw(k, rand)`` draws ``k`` distinct members in one call (the router's hot path),
so the random source stays the caller's (seeded in tests and the simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["IndexedSet"]

T = TypeVar("T")


class IndexedSet(Generic[T]):
    __slots__ = ("_items", "_pos")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._pos: dict[T, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: object) -> bool:
        return item in self._pos

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))

    def add(self, item: T) -> bool:
        """Add ``item``; ``False`` if it was already there."""
        if item in self._pos:
            return False
        self._pos[item] = len(self._items)
        self._items.append(item)
        return True

    def discard(self, item: T) -> bool:
        """Remove ``item``; ``False`` if it was not there."""
        i = self._pos.pop(item, None)
        if i is None:
            return False
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._pos[last] = i
        return True

    def at(self, i: int) -> T:
        return self._items[i]

    def draw(self, k: int, rand: Callable[[], float]) -> list[T]:
        """``k`` distinct members at random (``rand()`` in [0, 1) is the only randomness);
        with no more than ``k`` members, all of them from a random start, so ties rotate."""
        items = self._items
        n = len(items)
        if n <= k:
            if n == 0:
                return []
            off = int(rand() * n)
            return items[off:] + items[:off]
        out = [items[int(rand() * n)]]
        while len(out) < k:
            x = items[int(rand() * n)]
            if x not in out:
                out.append(x)
        return out
