"""A set with O(1) add, remove and uniform random member: the router's per-model index.

Members live in a list; a dict maps each to its position, and removal swaps
the last member into the hole. ``at(i)`` lets the caller draw ``i`` itself and
``draw(k, rand)`` draws ``k`` distinct members in one call (the router's hot path),
so the random source stays the caller's (seeded in tests and the simulator).
:class:`IndexedRows` keeps a row of floats per member beside it (the router's open nodes'
scoring inputs).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["IndexedRows", "IndexedSet", "draw_positions"]

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


class IndexedRows(IndexedSet[T]):
    """An :class:`IndexedSet` whose members each carry a row of ``width`` floats, kept in one
    flat ``array('d')`` at the member's position (``vals[i * width : (i + 1) * width]`` for
    ``at(i)``), moved with it when a removal swaps the last member into a hole.

    The router's open nodes: a pick draws positions (:meth:`draw_slots`) and reads the
    candidates' scoring inputs from ``vals`` alone, without touching their Python objects
    (docs/benchmarks.md, 2026-12-05). Whoever changes what a row holds writes it again:
    :meth:`put`, or in place at ``vals[slot(item) * width]`` (the router)."""

    __slots__ = ("members", "vals", "width")

    def __init__(self, width: int) -> None:
        if width < 1:
            raise ValueError("a row needs at least one value")
        super().__init__()
        self.width = width
        self.vals = array("d")
        # the members in position order, to read (not to change): the list itself, no copy
        self.members: list[T] = self._items

    def add(self, item: T, row: Sequence[float] = ()) -> bool:
        """Add ``item`` with its ``row`` (``width`` floats); ``False`` (the row not written)
        if it was already there."""
        if len(row) != self.width:
            raise ValueError(f"a row of {self.width} values, got {len(row)}")
        if not super().add(item):
            return False
        self.vals.extend(row)
        return True

    def discard(self, item: T) -> bool:
        i = self._pos.pop(item, None)
        if i is None:
            return False
        items, vals, w = self._items, self.vals, self.width
        last = items.pop()
        n = len(items)
        if i < n:
            items[i] = last
            self._pos[last] = i
            vals[i * w : (i + 1) * w] = vals[n * w : (n + 1) * w]
        del vals[n * w :]
        return True

    def put(self, item: T, row: Sequence[float]) -> bool:
        """Write ``item``'s row again; ``False`` if it is not a member."""
        i = self._pos.get(item)
        if i is None:
            return False
        if len(row) != self.width:
            raise ValueError(f"a row of {self.width} values, got {len(row)}")
        w = self.width
        self.vals[i * w : (i + 1) * w] = array("d", row)
        return True

    def slot(self, item: T) -> int:
        """``item``'s position (``KeyError`` if it is not a member)."""
        return self._pos[item]

    def row(self, item: T) -> list[float]:
        """``item``'s row as it is stored (``KeyError`` if it is not a member)."""
        i, w = self._pos[item], self.width
        return self.vals[i * w : (i + 1) * w].tolist()

    def draw_slots(self, k: int, rand: Callable[[], float]) -> list[int]:
        """The positions of the members :meth:`draw` would draw with the same ``rand``
        stream (the same numbers used, the same members, in the same order)."""
        return draw_positions(len(self._items), k, rand)


def draw_positions(n: int, k: int, rand: Callable[[], float]) -> list[int]:
    """Up to ``k`` distinct positions of ``n``: all of them from a random offset when
    ``n <= k``, else ``k`` drawn at random (:meth:`IndexedSet.draw_slots`; also
    ``core/route_keep.Both`` over two sets read as one)."""
    if n <= k:
        if n == 0:
            return []
        off = int(rand() * n)
        return [*range(off, n), *range(off)]
    out = [int(rand() * n)]
    while len(out) < k:
        i = int(rand() * n)
        if i not in out:
            out.append(i)
    return out
