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
    assert (
        "27 entries" in why and "size 35" in why and "8 published entries" in why and "fork" in why
    )


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


def test_both_refusals_word_for_word() -> None:
    """What a registry's operator reads when it refuses to start (``registry serve``)."""
    assert mark_problem(MARK, MARK.origin, 27, None) == (
        "the store's ledger has 27 entries, but this registry already published a checkpoint "
        "at size 35 (root 0001020304050607...): the database was restored from an older "
        "backup (or is not this network's, or was deleted), and it lacks 8 published entries "
        "(27 to 34: paid requests and earnings); serving would fork the public ledger"
    )
    assert mark_problem(MARK, MARK.origin, 40, OTHER) == (
        "the store's ledger at size 35 has root 0000000000000000..., but this registry "
        "published a checkpoint at that size with root 0001020304050607...: the database "
        "holds another history (a restored backup that has since grown, or another "
        "network's database); serving would fork the public ledger"
    )
    why = mark_problem(MARK, MARK.origin, 35, None)  # no root at that size
    assert why is not None and why.startswith("the store's ledger at size 35 has root none...")


def test_a_kept_checkpoint_of_size_0_without_a_time_is_read() -> None:
    text = json.dumps({"origin": "o", "tree_size": 0, "root_hash": ROOT.hex()})
    assert parse_mark(text) == Mark("o", 0, ROOT, 0)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"origin": 5}, "origin and tree_size of the wrong type"),
        ({"tree_size": "3"}, "origin and tree_size of the wrong type"),
        ({"tree_size": -1}, "a bad size, root or time"),
        ({"root_hash": "00" * 31}, "a bad size, root or time"),
        ({"time_us": "9"}, "a bad size, root or time"),
        ({"time_us": None}, "a bad size, root or time"),
    ],
)
def test_each_malformed_field_is_refused_in_words(fields: dict[str, object], why: str) -> None:
    good = {"origin": "o", "tree_size": 3, "root_hash": ROOT.hex(), "time_us": 9}
    with pytest.raises(ValueError) as err:
        parse_mark(json.dumps({**good, **fields}))
    assert str(err.value) == f"not a kept checkpoint: {why}"


def test_text_that_is_no_checkpoint_names_what_failed() -> None:
    with pytest.raises(ValueError) as err:
        parse_mark("{}")
    assert str(err.value) == "not a kept checkpoint: KeyError: 'origin'"
