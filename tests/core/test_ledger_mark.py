"""``core/ledger_mark.py``: a kept checkpoint held against the store's ledger at start."""

from __future__ import annotations

import json

import pytest

from LLM_Mesh.core.ledger_mark import Mark, mark_problem, parse_mark, replaces

ROOT, OTHER = bytes(range(32)), bytes(32)
MARK = Mark("llm-mesh.local/ledger", 35, ROOT, 1)


def test_a_store_behind_the_kept_checkpoint_is_refused_with_what_is_lost() -> None:
    why = mark_problem(MARK, MARK.origin, 27, None)
    assert why is not None
    assert "27 entries" in why and "size 35" in why and "8 published entries" in why and "fork" in why


def test_a_store_with_another_root_at_the_kept_size_is_refused() -> None:
    """A restored backup that grew past the mark again: long enough, another history."""
    why = mark_problem(MARK, MARK.origin, 40, OTHER)
    assert why is not None and "another history" in why


def test_the_same_history_or_a_longer_one_serves() -> None:
    assert mark_problem(MARK, MARK.origin, 35, ROOT) is None
    assert mark_problem(MARK, MARK.origin, 1000, ROOT) is None


def test_a_mark_of_another_origin_is_another_log() -> None:
    assert mark_problem(MARK, "example.org/new-ledger", 0, None) is None


def test_the_mark_never_goes_back_within_one_log() -> None:
    assert replaces(None, MARK)
    assert not replaces(MARK, Mark(MARK.origin, 34, OTHER, 2))
    assert not replaces(MARK, Mark(MARK.origin, 35, OTHER, 2))
    assert replaces(MARK, Mark(MARK.origin, 36, OTHER, 2))
    assert replaces(MARK, Mark("example.org/new-ledger", 1, OTHER, 2))


def test_parse_reads_an_exported_checkpoint_and_refuses_anything_else() -> None:
    text = json.dumps({"origin": "o", "tree_size": 3, "root_hash": ROOT.hex(), "time_us": 9})
    assert parse_mark(text) == Mark("o", 3, ROOT, 9)
    for bad in ("", "{}", "[1]", '{"origin": "o", "tree_size": -1, "root_hash": "00"}',
                json.dumps({"origin": "o", "tree_size": True, "root_hash": ROOT.hex()}),
                json.dumps({"origin": "o", "tree_size": 3, "root_hash": "zz"})):  # fmt: skip
        with pytest.raises(ValueError):
            parse_mark(bad)


@pytest.mark.parametrize(
    ("size", "lacks"), [(0, "35 published entries (0 to 34:"), (34, "1 published entry (34:")]
)
def test_the_entries_lost_are_named_by_their_numbers(size: int, lacks: str) -> None:
    """Found 2026-12-05 (a new user's try, the database deleted): "the store's ledger has 0
    entries ... and the 35 entries after it ... are not in it" (after what? and "1
    entries"): now which entries the store lacks."""
    why = mark_problem(MARK, MARK.origin, size, None)
    assert why is not None and f"it lacks {lacks}" in why, why
    assert "entries after it" not in why
