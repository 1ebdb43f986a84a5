"""A heartbeat's age on the store's own clock (``core/store_heard.py``, migration 0033)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from LLM_Mesh.core.store_heard import (
    AHEAD_S,
    heard_within,
    keyed_heard,
    quiet_s,
    store_age,
    store_stamp,
)

T = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def test_a_stamp_is_told_only_with_the_heartbeat_it_was_written_with() -> None:
    stamp = T + timedelta(hours=1)  # the store's clock: not the writer's
    assert store_stamp(stamp, T, T) == stamp
    # a replica of an older version wrote a later heartbeat and left the stamp: not told
    assert store_stamp(stamp, T, T + timedelta(seconds=10)) is None
    assert store_stamp(None, None, T) is None  # a row written before 0033
    assert store_stamp(stamp, T, None) is None


def test_the_age_is_measured_on_the_stores_clock_alone() -> None:
    assert store_age(T + timedelta(seconds=7), T) == 7.0
    assert store_age(T, T + timedelta(seconds=1)) == 0.0  # never below 0
    assert store_age(None, T) is None and store_age(T, None) is None


def test_a_keyed_request_is_placed_by_the_writers_own_difference() -> None:
    # heard at 100 on the table's clock; the writer stamped the keyed request 4 s before
    # the heartbeat, whatever its clock read against anyone else's
    at = T - timedelta(hours=1)
    assert keyed_heard(100.0, at, at - timedelta(seconds=4)) == 96.0
    assert keyed_heard(100.0, at, at + timedelta(seconds=4)) == 100.0  # never after it


def test_a_stamp_ahead_of_the_stores_clock_is_not_told() -> None:
    """The store's clock stepped back since the row was written: its age cannot be told
    (before: 0, heard now, review42b); a moment ahead (a write between the clock's read and
    the statement, SQLite and the memory store) is still 0."""
    assert store_age(T, T + timedelta(hours=1)) is None
    assert store_age(T, T + timedelta(seconds=AHEAD_S + 0.01)) is None
    assert store_age(T, T + timedelta(seconds=AHEAD_S / 2)) == 0.0
    assert store_age(T, T + timedelta(seconds=30), ahead_s=60.0) == 0.0


def test_a_node_is_quiet_on_the_stores_clock_where_told_else_on_the_wall_clock() -> None:
    # told: the store's age, whatever the wall clock (an hour ahead here) says; 0 is told
    ahead = T + timedelta(hours=1)
    assert quiet_s(30.0, ahead, T) == 30.0
    assert quiet_s(0.0, ahead, T) == 0.0
    # not told (no valid stamp): the wall clock's age of the writer's stamp
    assert quiet_s(None, ahead, T) == 3600.0
    assert quiet_s(None, T - timedelta(seconds=5), T) == -5.0


def test_heard_within_a_window_on_the_stores_clock_where_stamped() -> None:
    ahead = T + timedelta(hours=1)  # the asking replica's wall clock, an hour ahead
    since = ahead - timedelta(seconds=30)
    # stamped 10 s before the store's now: within 30 s, whatever ``since`` says
    assert heard_within(T - timedelta(seconds=10), T, T, since, 30.0)
    assert heard_within(T - timedelta(seconds=30), T, T, since, 30.0)  # the bound: within
    assert not heard_within(T - timedelta(seconds=31), T, ahead, since, 30.0)
    # no valid stamp, or no window told: the wall stamp against ``since``
    assert not heard_within(None, T, T, since, 30.0)
    assert heard_within(None, T, since, since, 30.0)
    assert heard_within(T - timedelta(hours=2), T, since, since, None)
    assert not heard_within(None, T, None, since, 30.0)
    # a stamp ahead of the store's clock (it stepped back since): not told, the wall stamp
    assert not heard_within(T + timedelta(seconds=AHEAD_S + 1), T, T, since, 30.0)
    assert heard_within(T + timedelta(seconds=AHEAD_S + 1), T, since, since, 30.0)
    assert heard_within(T + timedelta(seconds=AHEAD_S / 2), T, T, since, 30.0)
