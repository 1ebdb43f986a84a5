"""How a heartbeat row's stamp is taken (``core/beat_stamp.py``; start40)."""

from __future__ import annotations

import pytest

from LLM_Mesh.core.beat_stamp import (
    SKEW_S,
    Anchor,
    BeatReading,
    anchored_heard,
    beat_reading,
    newer_anchor,
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
