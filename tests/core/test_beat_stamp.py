"""How a heartbeat row's stamp is taken (``core/beat_stamp.py``; start40)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.beat_stamp import (
    SKEW_S,
    Anchor,
    BeatReading,
    anchored_heard,
    beat_reading,
    first_read_clock,
    newer_anchor,
    stepped_back,
)

NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("stamp", "read_before", "anchored", "reading"),
    [
        (NOW - 30, None, False, BeatReading.WALL),  # an ordinary row: its wall-clock age
        (NOW + SKEW_S, None, False, BeatReading.WALL),  # a clock a little ahead: allowed
        (NOW - 30, NOW - 30, True, BeatReading.SEEN),  # read before
        (NOW + 3600, NOW + 3600, True, BeatReading.SEEN),  # read before, however far ahead
        (NOW + 3600, NOW + 3590, False, BeatReading.SINCE),  # newer than read: written since
        (NOW + 3600, None, True, BeatReading.ANCHORED),  # never read, ahead: by the anchor
        (NOW + SKEW_S + 0.5, None, False, BeatReading.UNKNOWN),  # ... or not at all
    ],
)
def test_beat_reading(
    stamp: float, read_before: float | None, anchored: bool, reading: BeatReading
) -> None:
    assert beat_reading(stamp, NOW, read_before, anchored=anchored) is reading


def test_the_skew_allowance_is_a_setting() -> None:
    assert beat_reading(NOW + 8, NOW, None, anchored=False) is BeatReading.UNKNOWN
    assert beat_reading(NOW + 8, NOW, None, skew_s=10.0, anchored=False) is BeatReading.WALL


def test_a_row_is_aged_from_the_anchor_by_the_stamps_difference() -> None:
    anchor = Anchor(stamp=5000.0, heard=200.0)  # table clock 200 when stamp 5000 was heard
    assert anchored_heard(4900.0, anchor, table_now=250.0) == 100.0  # 100 s older
    assert anchored_heard(5020.0, anchor, table_now=250.0) == 220.0  # 20 s newer
    assert anchored_heard(5100.0, anchor, table_now=250.0) == 250.0  # never after now


def test_the_anchor_kept_is_the_newer_stamps() -> None:
    first = newer_anchor(None, 10.0, 1.0)
    assert first == Anchor(10.0, 1.0)
    assert newer_anchor(first, 9.0, 5.0) is first
    assert newer_anchor(first, 11.0, 2.0) == Anchor(11.0, 2.0)


def test_a_step_back_is_told_against_the_monotonic_clock() -> None:
    offset, behind = stepped_back(None, NOW, 50.0)
    assert (offset, behind) == (NOW - 50.0, 0.0)
    offset, behind = stepped_back(offset, NOW + 10, 60.0, behind)  # both moved on alike
    assert behind == 0.0
    offset, behind = stepped_back(offset, NOW + 11 - 3600, 61.0, behind)  # stepped back
    assert (offset, behind) == (NOW - 3650.0, 3600.0)
    offset, behind = stepped_back(offset, NOW + 12, 62.0, behind)  # ... and forward again
    assert behind == 0.0
    offset, behind = stepped_back(offset, NOW + 100, 63.0, behind)  # forward
    assert (offset, behind) == (NOW + 37.0, 0.0)
    offset, behind = stepped_back(offset, NOW + 101 - 60, 64.0, behind)  # back a minute,
    offset, behind = stepped_back(offset, NOW + 102 - 60 - 30, 65.0, behind)  # then 30 s
    assert behind == 90.0


def test_a_wall_clock_that_drifts_from_the_monotonic_one_has_not_stepped() -> None:
    """Found 2026-12-07 (review41): behind was counted from the highest offset ever seen,
    so a wall clock frozen beside the real monotonic one (a test's) read as stepped back
    by the time run, and a slow drift as much: only a fall of more than ``step_s`` between
    two looks is a step."""
    offset, behind = stepped_back(None, NOW, 0.0)
    for second in range(1, 600):  # the wall clock frozen, a look a second: 599 s apart
        offset, behind = stepped_back(offset, NOW, float(second), behind)
    assert behind == 0.0
    offset, behind = stepped_back(offset, NOW + 1 - 3600, 600.0, behind)  # a real step
    assert behind == 3600.0
    offset, behind = stepped_back(offset, NOW + 2, 601.0, behind, step_s=10.0)
    assert behind == 0.0  # put right again


def test_after_a_step_back_a_row_never_read_is_aged_on_the_clock_before_it() -> None:
    """Found 2026-12-07 (sync41): a row never read stamped within ``SKEW_S`` ahead of a
    wall clock just stepped back an hour (written just before the step) was ``WALL``,
    aged below zero on that clock: heard now. It is aged on the clock before the step."""
    first = first_read_clock(NOW, behind_s=3600.0)
    assert first == NOW + 3600.0
    stamp = NOW + 3.0  # within the skew of the stepped-back clock
    assert beat_reading(stamp, NOW, None, anchored=True, first_now=first) is BeatReading.WALL
    assert first - stamp == 3597.0  # its age: before, 0 (heard now)
    ahead = NOW + 3600.0 + SKEW_S + 1  # ahead even of the clock before the step
    assert beat_reading(ahead, NOW, None, anchored=True, first_now=first) is BeatReading.ANCHORED
    # a row read before is read as before: newer than read, written since that read
    read = beat_reading(stamp, NOW, NOW - 10, anchored=False, first_now=first)
    assert read is BeatReading.WALL


def test_a_replica_behind_ages_a_row_never_read_on_the_stores_clock() -> None:
    """Found 2026-12-07 (sync41): with this clock an hour behind the writers' and no anchor
    yet, a node's first row was ``UNKNOWN`` (counted from its second). The store's clock
    (an hour ahead of this one, as the writers') ages it."""
    first = first_read_clock(NOW, store_now=NOW + 3600.0)
    assert first == NOW + 3600.0
    stamp = NOW + 3600.0 - 1  # written a second ago by a writer's clock
    assert beat_reading(stamp, NOW, None, anchored=False) is BeatReading.UNKNOWN  # no store
    assert beat_reading(stamp, NOW, None, anchored=False, first_now=first) is BeatReading.WALL
    far = NOW + 3600.0 + SKEW_S + 1  # ahead of the store's clock too: still not told
    assert beat_reading(far, NOW, None, anchored=False, first_now=first) is BeatReading.UNKNOWN


@pytest.mark.parametrize(
    ("behind_s", "store_now", "first"),
    [
        (0.0, None, NOW),  # the normal case: this wall clock
        (SKEW_S, NOW + SKEW_S, NOW),  # clocks a little apart: as before
        (0.0, NOW - 3600.0, NOW),  # a store's clock behind: this one (the later)
        (100.0, NOW + 50.0, NOW + 100.0),  # the latest: the oldest reading
        (100.0, NOW + 500.0, NOW + 500.0),
    ],
)
def test_the_first_read_clock_is_the_latest_only_past_the_skew(
    behind_s: float, store_now: float | None, first: float
) -> None:
    assert first_read_clock(NOW, behind_s=behind_s, store_now=store_now) == first
