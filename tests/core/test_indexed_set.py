"""The router's per-model index (core/indexed_set.py)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from LLM_Mesh.core.indexed_set import IndexedRows, IndexedSet


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


def scripted(*values: float) -> Callable[[], float]:
    """A ``rand`` that returns ``values`` in turn (and fails if asked for more)."""
    it = iter(values)
    return lambda: next(it)


def test_draw_of_an_empty_set_asks_for_no_random_number() -> None:
    s: IndexedSet[str] = IndexedSet()
    assert s.draw(4, scripted()) == []


def test_draw_of_no_more_than_k_members_is_all_of_them_from_a_random_start() -> None:
    s: IndexedSet[str] = IndexedSet()
    for x in "abc":
        s.add(x)
    assert s.draw(4, scripted(0.0)) == ["a", "b", "c"]
    assert s.draw(3, scripted(0.5)) == ["b", "c", "a"]  # int(0.5 * 3) = 1
    assert s.draw(3, scripted(0.99)) == ["c", "a", "b"]


def test_draw_of_k_distinct_members_redraws_a_repeat() -> None:
    s: IndexedSet[str] = IndexedSet()
    for x in "abcdef":
        s.add(x)
    # positions 0, 0 (a repeat: drawn again), 5, 2
    assert s.draw(3, scripted(0.0, 0.1, 0.9, 0.4)) == ["a", "f", "c"]


def test_draw_is_uniform_over_the_members() -> None:
    s: IndexedSet[int] = IndexedSet()
    for x in range(10):
        s.add(x)
    s.discard(3)  # a swapped-in member is drawn like the others
    rng = random.Random(5)
    counts = {x: 0 for x in range(10) if x != 3}
    for _ in range(9000):
        got = s.draw(2, rng.random)
        assert len(set(got)) == 2
        for x in got:
            counts[x] += 1
    assert all(1700 < c < 2300 for c in counts.values())  # 2000 each expected


def test_indexed_rows_keep_each_members_row_at_its_position() -> None:
    """Rows move with their members through adds, swap-removals and rewrites; ``draw_slots``
    draws the positions ``draw`` would draw, with the same random numbers."""
    rng = random.Random(5)
    rows: IndexedRows[str] = IndexedRows(3)
    want: dict[str, list[float]] = {}
    for step in range(3000):
        item = f"i{rng.randrange(40)}"
        x = rng.random()
        if x < 0.4:
            row = [rng.random(), float(step), -1.0]
            assert rows.add(item, row) is (item not in want)
            want.setdefault(item, row)
        elif x < 0.7:
            assert rows.discard(item) is (want.pop(item, None) is not None)
        elif x < 0.85:
            row = [float(step), 0.0, rng.random()]
            assert rows.put(item, row) is (item in want)
            if item in want:
                want[item] = row
        else:
            k = rng.randint(1, 6)
            seed = rng.random()
            a, b = random.Random(seed), random.Random(seed)
            assert [rows.at(i) for i in rows.draw_slots(k, a.random)] == rows.draw(k, b.random)
            assert a.random() == b.random()  # as many numbers used
        assert len(rows.vals) == 3 * len(rows) and len(rows) == len(want)
        assert {it: rows.row(it) for it in rows} == want
        assert all(rows.at(rows.slot(it)) == it for it in want)


def test_indexed_rows_refuse_a_row_of_the_wrong_width() -> None:
    rows: IndexedRows[str] = IndexedRows(2)
    with pytest.raises(ValueError):
        rows.add("a", [1.0])
    rows.add("a", [1.0, 2.0])
    with pytest.raises(ValueError):
        rows.put("a", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        IndexedRows(0)


def test_indexed_rows_of_one_value_and_their_refusals_in_words() -> None:
    rows: IndexedRows[str] = IndexedRows(1)
    assert rows.add("a", [1.5]) and rows.row("a") == [1.5]
    with pytest.raises(ValueError) as refused:
        rows.add("b", [1.0, 2.0])
    assert str(refused.value) == "a row of 1 values, got 2"
    with pytest.raises(ValueError) as refused:
        rows.put("a", [])
    assert str(refused.value) == "a row of 1 values, got 0"
    with pytest.raises(ValueError) as refused:
        IndexedRows(0)
    assert str(refused.value) == "a row needs at least one value"


def test_draw_slots_of_exactly_k_members_is_all_of_them_from_a_random_start() -> None:
    rows: IndexedRows[str] = IndexedRows(1)
    for x in "abc":
        rows.add(x, [0.0])
    # one number, the start (the k-distinct path would ask for more, and give [1, 0, 2])
    assert rows.draw_slots(3, scripted(0.0)) == [0, 1, 2]
    assert rows.draw_slots(3, scripted(0.5, 0.0, 0.9)) == [1, 2, 0]
