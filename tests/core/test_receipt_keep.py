"""Which kept receipts may go (``core/receipt_keep.py``): only those a clean statement
covered (every entry naming them below the size it judged) and older than the bound."""

from __future__ import annotations

import json
from typing import Any

import pytest

from LLM_Mesh.core.receipt_keep import (
    KEEP_S,
    NOTE_AGE_S,
    NOTE_BYTES,
    NOTE_FILES,
    Kept,
    coverage_text,
    covered,
    look_due,
    note,
    older_than,
    parse_coverage,
    removable,
    stamp_time,
    to_prune,
)
from tests.core.test_ledger_statement import T0, _receipt

NOW_MS = T0 // 1000 + KEEP_S * 1000 + 1  # a month and a millisecond after the receipts


def _rows(*seqs: int) -> list[dict[str, Any]]:
    return [{"seq": s} for s in seqs]


def test_only_covered_and_old_receipts_go() -> None:
    covered, straddles, after, unnamed = (_receipt(f"req-{i}") for i in range(4))
    by = {covered.receipt_hash: _rows(1, 2), straddles.receipt_hash: _rows(9, 10),
          after.receipt_hash: _rows(12)}  # fmt: skip
    held = [covered, straddles, after, unnamed]
    gone = removable(held, by, judged_size=10, now_ms=NOW_MS)
    assert gone == {covered.receipt_hash, unnamed.receipt_hash}
    assert removable(held, by, judged_size=10, now_ms=NOW_MS - 2) == set()  # not old enough
    assert removable(held, by, judged_size=0, now_ms=NOW_MS) == {unnamed.receipt_hash}


def test_a_malformed_sequence_number_keeps_the_receipt() -> None:
    r = _receipt()
    assert removable([r], {r.receipt_hash: [{"seq": "1"}]}, judged_size=10, now_ms=NOW_MS) == set()


# --- what a clean statement covered, recorded for `receipt prune` (receipts31) --------------

CP_MS = T0 // 1000 + 3_600_000  # a checkpoint an hour after the receipts


def test_a_clean_statement_covers_receipts_whose_every_entry_it_judged() -> None:
    judged, straddles, after, unnamed = (_receipt(f"req-{i}") for i in range(4))
    by = {judged.receipt_hash: _rows(1, 2), straddles.receipt_hash: _rows(9, 10),
          after.receipt_hash: _rows(12)}  # fmt: skip
    held = [judged, straddles, after, unnamed]
    got = covered(held, by, judged_size=10, signed_time_ms=CP_MS)
    assert got == {judged.receipt_hash, unnamed.receipt_hash}  # unnamed: an hour, settled


def test_a_receipt_no_entry_names_yet_is_not_covered_within_the_settle_grace() -> None:
    """Settled after the statement ran: its debits come later, past the size judged."""
    r = _receipt()
    assert covered([r], {}, judged_size=10, signed_time_ms=r.time_ms + 599_999) == set()
    assert covered([r], {}, judged_size=10, signed_time_ms=r.time_ms + 600_000) == {r.receipt_hash}
    # one entry named and judged: settlement wrote them together, no grace needed
    by = {r.receipt_hash: _rows(3)}
    assert covered([r], by, judged_size=10, signed_time_ms=r.time_ms) == {r.receipt_hash}
    assert covered([r], {r.receipt_hash: [{"seq": True}]}, judged_size=10,
                   signed_time_ms=CP_MS) == set()  # fmt: skip


def test_removable_is_covered_and_old() -> None:
    r, fresh = _receipt("req-1"), _receipt("req-2")
    by = {r.receipt_hash: _rows(1), fresh.receipt_hash: _rows(2)}
    assert removable([r, fresh], by, judged_size=10, now_ms=NOW_MS) == {r.receipt_hash,
                                                                        fresh.receipt_hash}  # fmt: skip
    assert removable([r], {}, judged_size=10, now_ms=r.time_ms + 1, keep_s=0) == set()  # pending


def test_the_coverage_record_reads_back_and_anything_else_is_refused() -> None:
    hashes = {"a" * 64, "0123456789abcdef" * 4}
    text = coverage_text(hashes, through=10, checkpoint_ms=CP_MS)
    assert parse_coverage(text) == hashes
    assert parse_coverage(coverage_text((), through=0, checkpoint_ms=0)) == set()
    good = json.loads(text)
    for bad in ["", "{not json", "[]", json.dumps({**good, "format": "other"}),
                json.dumps({**good, "receipts": "a" * 64}),
                json.dumps({**good, "receipts": ["A" * 64]}),
                json.dumps({**good, "receipts": ["a" * 63]}),
                json.dumps({**good, "receipts": [1]}),
                json.dumps({k: v for k, v in good.items() if k != "receipts"})]:  # fmt: skip
        with pytest.raises(ValueError, match=r"^not what a clean `ledger statement` writes$"):
            parse_coverage(bad)


def test_prune_takes_only_covered_old_receipts_unless_told_otherwise() -> None:
    now_ms = int(NOW_S * 1000)
    old, new = now_ms - 8 * DAY * 1000, now_ms - 1000
    kept = {"a": (old, "h-a"), "b": (old, "h-b"), "c": (new, "h-c"), "d": ("1", "h-d")}
    cover = {"h-a", "h-c", "h-d"}
    assert to_prune(kept, cover, now_ms, 7) == ({"a"}, {"b"})  # type: ignore[arg-type]
    assert to_prune(kept, None, now_ms, 7) == (set(), {"a", "b"})  # type: ignore[arg-type]
    both = to_prune(kept, None, now_ms, 7, uncovered_too=True)  # type: ignore[arg-type]
    assert both == ({"a", "b"}, {"b", "a"})


# --- a user who never runs a statement: told once a day, never pruned unasked (money30) ---

DAY = 86_400
NOW_S = 1_800_000_000.0


def test_ask_looks_at_the_folder_once_a_day() -> None:
    assert look_due(None, NOW_S)  # never looked
    assert not look_due(NOW_S - DAY + 1, NOW_S)
    assert look_due(NOW_S - DAY, NOW_S)
    assert not look_due(NOW_S + 60, NOW_S)  # a second's skew between clocks
    assert look_due(NOW_S + 3600, NOW_S)  # dated ahead: the clock was set back


def test_the_folder_is_past_its_bound_by_count_bytes_or_age() -> None:
    assert note(Kept(NOTE_FILES - 1, NOTE_BYTES - 1, NOW_S - NOTE_AGE_S + 1), NOW_S) is None
    assert note(Kept(0, 0), NOW_S) is None
    assert note(Kept(NOTE_FILES, 30 << 20), NOW_S) == "10,000 receipts (30.0 MiB)"
    assert note(Kept(3, NOTE_BYTES), NOW_S) == "3 receipts (64.0 MiB)"
    said = note(Kept(3, 9000, NOW_S - 75 * DAY - 5), NOW_S)
    assert said == "the oldest 75 days old"
    assert NOTE_AGE_S == 2 * KEEP_S  # a monthly clean statement leaves none that old
    both = note(Kept(1, NOTE_BYTES, NOW_S - 61 * DAY), NOW_S)
    assert both == "1 receipt (64.0 MiB), the oldest 61 days old"


@pytest.mark.parametrize(
    ("name", "when"),
    [
        ("receipt-20261205T101500Z-0a1b2c3d4e5f.json", 1_796_465_700.0),
        ("receipt-20261205T101500Z-0a1b2c3d4e5f.json.tmp", None),
        ("receipt-20261345T101500Z-0a1b2c3d4e5f.json", None),  # no 13th month
        ("receipt-2026125T101500Z-0a1b2c3d4e5f.json", None),
        ("answer-1.json", None),
        (".looked", None),
    ],
)
def test_a_kept_files_name_gives_its_time(name: str, when: float | None) -> None:
    assert stamp_time(name) == when


def test_prune_takes_the_receipts_older_than_the_days_given() -> None:
    now_ms = int(NOW_S * 1000)
    times = {"old": now_ms - 8 * DAY * 1000, "edge": now_ms - 7 * DAY * 1000,
             "new": now_ms - 1000, "odd": "1", "float": 1.5, "bool": True}  # fmt: skip
    assert older_than(times, now_ms, 7) == {"old"}  # type: ignore[arg-type]
    assert older_than(times, now_ms, 9) == set()  # type: ignore[arg-type]
    assert older_than({}, now_ms, 1) == set()


def test_a_pending_receipt_does_not_hide_the_ones_after_it() -> None:
    r, pending = _receipt("req-1"), _receipt("req-2")
    by = {r.receipt_hash: _rows(1)}  # `pending` named by no entry yet
    got = covered([pending, r], by, judged_size=10, signed_time_ms=pending.time_ms)
    assert got == {r.receipt_hash}


def test_a_receipt_exactly_keep_s_old_is_removable() -> None:
    r = _receipt("req-1")
    by = {r.receipt_hash: _rows(1)}
    at = r.time_ms + 60_000
    assert removable([r], by, judged_size=10, now_ms=at, keep_s=60) == {r.receipt_hash}
    assert removable([r], by, judged_size=10, now_ms=at - 1, keep_s=60) == set()


def test_the_coverage_record_layout() -> None:
    """One line of compact JSON, its fields in this order (read by ``receipt prune``, and by
    an operator who opens the file)."""
    text = coverage_text(["b" * 64, "a" * 64, "b" * 64], through=12, checkpoint_ms=345)
    assert text == (
        '{"format":"llm-mesh covered receipts v1","through":12,"checkpoint_time_ms":345,'
        f'"receipts":["{"a" * 64}","{"b" * 64}"]}}\n'
    )


def test_a_look_dated_exactly_the_skew_ahead_is_not_due() -> None:
    assert not look_due(NOW_S + 300, NOW_S)
    assert look_due(NOW_S + 300.5, NOW_S)


def test_the_oldest_exactly_at_the_age_bound_is_said() -> None:
    assert note(Kept(1, 10, NOW_S - NOTE_AGE_S), NOW_S) == (
        f"the oldest {NOTE_AGE_S // DAY} days old"
    )


def test_older_than_counts_whole_days_of_milliseconds() -> None:
    now_ms = int(NOW_S * 1000)
    edge = now_ms - 30 * DAY * 1000
    times = {"edge": edge, "past": edge - 1}
    assert older_than(times, now_ms, 30) == {"past"}
