"""A loop's run of failed rounds: its WARNINGs, one ERROR past 60 s, that ERROR every 600 s,
one INFO at its end (``core/round_alarm.py``; times given, no clock)."""

from __future__ import annotations

import logging

from LLM_Mesh.core.round_alarm import Alarm, RoundAlarm, RoundSaid

ERROR, INFO = logging.ERROR, logging.INFO


def test_a_run_is_said_each_round_then_once_as_an_error_past_60_s() -> None:
    a = RoundAlarm(alarm_after_s=60.0, repeat_s=600.0)
    said = [a.failed(float(t)) for t in range(0, 100, 2)]  # a round every 2 s for 98 s
    loud = [i * 2 for i, s in enumerate(said) if not s.quiet]
    assert loud == list(range(0, 60, 2))  # each round's own line until 60 s
    alarms = [(i * 2, s.alarm) for i, s in enumerate(said) if s.alarm is not None]
    assert alarms == [(60, Alarm(ERROR, 31, 60.0))]  # then one ERROR: 31 rounds, 60 s
    assert all(s.quiet for s in said[30:])  # quiet after it


def test_the_error_is_said_again_every_repeat_s_while_the_run_lasts() -> None:
    a = RoundAlarm(alarm_after_s=60.0, repeat_s=600.0)
    times = [float(t) for t in range(0, 1400, 10)]
    alarms = [t for t in times if a.failed(t).alarm is not None]
    assert alarms == [60.0, 660.0, 1260.0]


def test_the_first_round_that_succeeds_ends_the_run_once_at_info() -> None:
    a = RoundAlarm()
    assert a.succeeded(0.0) is None  # nothing failed
    for t in (10.0, 40.0, 75.0):
        a.failed(t)
    assert a.succeeded(80.0) == Alarm(INFO, 3, 70.0)
    assert a.succeeded(90.0) is None  # said once
    assert a.failed(100.0) == RoundSaid(quiet=False, alarm=None)  # a new run, loud again


def test_a_short_run_is_never_an_error_and_its_end_is_said_too() -> None:
    a = RoundAlarm()
    assert [a.failed(t).alarm for t in (0.0, 2.0, 58.0)] == [None, None, None]
    assert a.succeeded(59.0) == Alarm(INFO, 3, 59.0)


def test_one_failed_round_is_not_a_run_however_long_since_the_last_success() -> None:
    """A loop of a long period (the reward task: a minute) fails once: no ERROR yet; its
    second failed round 60 s later is."""
    a = RoundAlarm(alarm_after_s=60.0)
    assert a.failed(1000.0) == RoundSaid(quiet=False, alarm=None)
    assert a.failed(1060.0).alarm == Alarm(ERROR, 2, 60.0)


def test_a_new_run_after_a_recovery_waits_its_own_60_s() -> None:
    a = RoundAlarm(alarm_after_s=60.0, repeat_s=600.0)
    for t in range(0, 70, 10):
        a.failed(float(t))
    assert a.succeeded(70.0) is not None
    assert [a.failed(t).alarm for t in (80.0, 130.0)] == [None, None]
    assert a.failed(140.0).alarm == Alarm(ERROR, 3, 60.0)  # not the old run's repeat


def test_the_lines_say_how_long_how_many_and_since_when() -> None:
    assert Alarm(ERROR, 31, 60.4).text("09:12:03 UTC") == (
        "still failing after 60 s, 31 failed rounds in a row (since 09:12:03 UTC)"
    )
    assert Alarm(INFO, 1, 2.0).text() == "recovered after 1 failed round over 2 s"


def test_first_only_quiets_a_runs_rounds_after_its_first_the_alarm_the_same() -> None:
    """The store polls and the settlement's rounds (a round a second or more often): only a
    run's first failed round said, then the same ERROR at 60 s and INFO at the end
    (alarm42: they had a scheme of their own)."""
    a = RoundAlarm(first_only=True)
    said = [a.failed(float(t)) for t in range(0, 90)]  # a round a second for 89 s
    assert [t for t, s in enumerate(said) if not s.quiet] == [0]
    assert [(t, s.alarm) for t, s in enumerate(said) if s.alarm] == [(60, Alarm(ERROR, 61, 60.0))]
    assert a.alarmed and a.succeeded(90.0) == Alarm(INFO, 90, 90.0) and not a.alarmed
    assert a.failed(91.0) == RoundSaid(quiet=False, alarm=None)  # a new run: its first said
