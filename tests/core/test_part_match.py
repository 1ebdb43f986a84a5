"""Each priced part of a request matched to its own receipt part (``core/part_match.py``;
found 2026-12-07, money44: the account stage matched them by node id when the counts
differed, so one unpayable part of a node zeroed all its parts)."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from LLM_Mesh.core.part_match import NOT_SAID, match_parts


def test_each_receipt_part_goes_to_the_priced_part_it_says() -> None:
    # A -> B -> A, B delivered nothing (no receipt part): A's two parts are told apart
    assert match_parts(["a", "b", "a"], [("a", 0), ("a", 2)]) == [0, None, 1]
    # every part has one: as by position
    assert match_parts(["a", "b", "a"], [("a", 0), ("b", 1), ("a", 2)]) == [0, 1, 2]
    # a part with a price and no receipt part (a wiring fault): that part alone unmatched
    assert match_parts(["a", "b", "c", "a"], [("a", 0), ("c", 2), ("a", 3)]) == [0, None, 1, 2]


def test_a_part_said_twice_or_by_another_node_is_not_matched() -> None:
    assert match_parts(["a", "b"], [("a", 0), ("a", 0), ("b", 1)]) == [None, 2]
    assert match_parts(["a", "b"], [("b", 0), ("b", 1)]) == [None, 1]
    assert match_parts(["a"], [("a", 0), ("a", 5)]) == [0]  # one past the parts: ignored
    assert match_parts(["a"], []) == [None]
    assert match_parts([], []) == []


def test_without_indexes_equal_counts_go_by_position() -> None:
    said = [("a", NOT_SAID), ("b", NOT_SAID), ("a", NOT_SAID)]
    assert match_parts(["a", "b", "a"], said) == [0, 1, 2]
    # a receipt part of another node than its position's: that one unmatched
    assert match_parts(["a", "b"], [("a", NOT_SAID), ("c", NOT_SAID)]) == [0, None]
    # some said, some not: the order's rules
    assert match_parts(["a", "b"], [("a", 0), ("b", NOT_SAID)]) == [0, 1]


def test_without_indexes_only_the_placing_every_reading_agrees_on_is_matched() -> None:
    unsaid = NOT_SAID
    # A -> B -> A, B without a receipt part: each A part has one reading
    assert match_parts(["a", "b", "a"], [("a", unsaid), ("a", unsaid)]) == [0, None, 1]
    # A -> B -> A, A's first without one: B and the last A are certain
    assert match_parts(["a", "b", "a"], [("b", unsaid), ("a", unsaid)]) == [None, 0, 1]
    # one A receipt part of two A parts: which, nobody knows: neither
    assert match_parts(["a", "b", "a"], [("a", unsaid)]) == [None, None, None]
    assert match_parts(["a", "b", "a", "c"], [("b", unsaid), ("c", unsaid)]) == [
        None, 0, None, 1
    ]  # fmt: skip
    # A -> A -> B, one A receipt part: B is certain, the A parts are not
    assert match_parts(["a", "a", "b"], [("a", unsaid), ("b", unsaid)]) == [None, None, 1]
    # no reading at all (a receipt part of a node never priced): nothing matched
    assert match_parts(["a", "b", "a"], [("a", unsaid), ("z", unsaid)]) == [None] * 3
    assert match_parts(["a", "b"], [("b", unsaid), ("a", unsaid), ("b", unsaid)]) == [
        None, None
    ]  # fmt: skip


def test_one_part_is_matched_when_it_is_its_nodes() -> None:
    for index in (0, NOT_SAID):
        assert match_parts(["a"], [("a", index)]) == [0]
        assert match_parts(["a"], [("b", index)]) == [None]
    assert match_parts(["a"], [("a", 1)]) == [None]  # another part's


def _placings(nodes: list[str], receipts: list[str]) -> list[tuple[int, ...]]:
    """Every way of reading ``receipts`` as a subsequence of ``nodes`` by node id."""
    return [
        chosen
        for chosen in combinations(range(len(nodes)), len(receipts))
        if all(nodes[i] == node for i, node in zip(chosen, receipts, strict=True))
    ]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from("abc"), min_size=1, max_size=7),
    st.data(),
)
def test_by_order_a_part_is_matched_exactly_where_every_reading_agrees(
    nodes: list[str], data: st.DataObject
) -> None:
    """review44: the order's rule against every reading of it, enumerated. Receipt parts
    that say no index, fewer or more than the priced parts: a priced part is matched to a
    receipt part when every reading puts that receipt part there, and to none otherwise;
    no reading at all matches nothing. Each receipt part is matched at most once, to a
    part of its own node (so nothing can be paid twice, nor to another node)."""
    n = data.draw(st.integers(0, len(nodes) + 1).filter(lambda k: k != len(nodes)))
    receipts = data.draw(st.lists(st.sampled_from("abcd"), min_size=n, max_size=n))
    got = match_parts(nodes, [(node, NOT_SAID) for node in receipts])
    readings = _placings(nodes, receipts)
    want: list[int | None] = [None] * len(nodes)
    for j in range(len(receipts)):
        where = {chosen[j] for chosen in readings}
        if len(where) == 1:
            want[where.pop()] = j
    assert got == want
    taken = [j for j in got if j is not None]
    assert len(taken) == len(set(taken))
    assert all(j is None or receipts[j] == nodes[i] for i, j in enumerate(got))
