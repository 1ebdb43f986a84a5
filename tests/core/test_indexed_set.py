"""The router's per-model index (core/indexed_set.py)."""

from __future__ import annotations

from LLM_Mesh.core.indexed_set import IndexedSet


def members(s: IndexedSet[str]) -> list[str]:
    return [s.at(i) for i in range(len(s))]


def test_add_discard_contains_len() -> None:
    s: IndexedSet[str] = IndexedSet()
    assert len(s) == 0 and "a" not in s
    assert s.add("a") is True
    assert s.add("b") is True
    assert s.add("a") is False  # already there: not added twice
    assert len(s) == 2 and "a" in s and "b" in s
    assert s.discard("x") is False
    assert s.discard("a") is True
    assert s.discard("a") is False
    assert "a" not in s and len(s) == 1 and members(s) == ["b"]


def test_removal_swaps_the_last_member_into_the_hole() -> None:
    s: IndexedSet[str] = IndexedSet()
    for x in "abcd":
        s.add(x)
    s.discard("b")
    assert members(s) == ["a", "d", "c"]
    # the moved member's position is updated: removing it again leaves no stale slot
    s.discard("d")
    assert members(s) == ["a", "c"]
    s.discard("c")  # the last member: nothing to move
    assert members(s) == ["a"]
    s.add("e")
    assert members(s) == ["a", "e"] and "e" in s


def test_iteration_is_a_snapshot() -> None:
    s: IndexedSet[int] = IndexedSet()
    for x in range(5):
        s.add(x)
    seen = []
    for x in s:  # removing while iterating must not skip members
        seen.append(x)
        s.discard(x)
    assert seen == [0, 1, 2, 3, 4] and len(s) == 0
