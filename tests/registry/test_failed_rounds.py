"""A loop's failed rounds in the log (``failed_rounds.RoundLog``; a fake clock, caplog).

Found 2026-12-07 (session 42's note): an outage was one WARNING a round for as long as it
lasted, never an ERROR (an operator's alerting on ERROR never fired), and nothing said when
it ended.
"""

from __future__ import annotations

import logging

import pytest

from LLM_Mesh.registry.failed_rounds import RoundLog

LOG = logging.getLogger("tests.failed_rounds")
WALL0 = 1_796_635_923.0  # 2026-12-07 09:32:03 UTC


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rounds(clock: Clock) -> RoundLog:
    return RoundLog(LOG, "fake loop", clock=clock, wall_clock=lambda: WALL0 + clock.now)


def _fail(rounds: RoundLog, exc: Exception) -> None:
    try:
        raise exc
    except Exception as caught:
        rounds.failed(caught, "the round failed", "trying again later")


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOG.name]


def test_an_outage_past_60_s_is_one_error_then_quiet_then_one_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    clock = Clock()
    rounds = _rounds(clock)
    for _ in range(40):  # a round every 2 s for 80 s, each its connection refused
        _fail(rounds, ConnectionRefusedError(111, "Connection refused"))
        clock.now += 2.0
    levels = [level for level, _ in _said(caplog)]
    assert levels == [logging.WARNING] * 30 + [logging.DEBUG, logging.ERROR] + [logging.DEBUG] * 9
    errors = [text for level, text in _said(caplog) if level == logging.ERROR]
    assert errors == [
        "fake loop: still failing after 60 s, 31 failed rounds in a row (since 09:32:03 UTC); "
        "the last: the round failed (ConnectionRefusedError: [Errno 111] Connection refused); "
        "said again every 600 s while it fails, each failed round at DEBUG till then"
    ]
    caplog.clear()
    rounds.ok()
    rounds.ok()  # said once
    assert _said(caplog) == [
        (logging.INFO, "fake loop: recovered after 40 failed rounds over 80 s (since 09:32:03 UTC)")
    ]
    assert rounds.failing == 0


def test_the_error_is_said_again_every_600_s(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOG.name)
    clock = Clock()
    rounds = _rounds(clock)
    for _ in range(130):  # a round every 10 s for 1300 s
        _fail(rounds, TimeoutError())
        clock.now += 10.0
    errors = [text for level, text in _said(caplog) if level == logging.ERROR]
    assert [e.split(";")[0] for e in errors] == [
        "fake loop: still failing after 60 s, 7 failed rounds in a row (since 09:32:03 UTC)",
        "fake loop: still failing after 660 s, 67 failed rounds in a row (since 09:32:03 UTC)",
        "fake loop: still failing after 1260 s, 127 failed rounds in a row (since 09:32:03 UTC)",
    ]
    assert "the database timed out" not in errors[0]  # the round's own words: its line
    assert "(TimeoutError)" in errors[0]


def test_a_short_outage_is_warnings_and_its_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    clock = Clock()
    rounds = _rounds(clock)
    rounds.ok()  # nothing failed: nothing said
    for _ in range(3):
        _fail(rounds, ConnectionResetError("reset by peer"))
        clock.now += 2.0
    rounds.ok()
    assert [level for level, _ in _said(caplog)] == [logging.WARNING] * 3 + [logging.INFO]
    assert (
        _said(caplog)[-1][1]
        == "fake loop: recovered after 3 failed rounds over 6 s (since 09:32:03 UTC)"
    )


def test_a_bugs_traceback_is_never_quieted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    clock = Clock()
    rounds = _rounds(clock)
    for _ in range(35):
        _fail(rounds, RuntimeError("a bug"))
        clock.now += 2.0
    records = [r for r in caplog.records if r.name == LOG.name]
    tracebacks = [r for r in records if r.exc_info is not None]
    assert len(tracebacks) == 35 and all(r.levelno == logging.ERROR for r in tracebacks)
    (alarm,) = [r.getMessage() for r in records if r.exc_info is None]
    assert alarm.startswith("fake loop: still failing after 60 s, 31 failed rounds in a row")
    assert alarm.endswith("said again every 600 s while it fails")  # nothing was quieted


def test_the_records_name_the_loops_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    clock = Clock()
    rounds = _rounds(clock)
    for _ in range(2):
        _fail(rounds, TimeoutError())
        clock.now += 60.0
    rounds.ok()
    assert {r.funcName for r in caplog.records if r.name == LOG.name} == {
        "_fail",
        "test_the_records_name_the_loops_line",
    }


def test_first_only_says_a_runs_first_round_and_a_bugs_traceback_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loop of a round a second (the store polls): a bug's traceback once a run, not a
    second (found 2026-12-04: about 400 lines a second), the rest at DEBUG (alarm42)."""
    caplog.set_level(logging.DEBUG, logger=LOG.name)
    clock = Clock()
    rounds = RoundLog(LOG, "fake poll", clock=clock, first_only=True)
    for _ in range(70):
        _fail(rounds, RuntimeError("a bug"))
        clock.now += 1.0
    said = [(r.levelno, r.exc_info is not None) for r in caplog.records if r.name == LOG.name]
    assert said[0] == (logging.ERROR, True)  # the first in full
    assert said[1:61] == [(logging.DEBUG, True)] * 60  # then quiet, 60 s
    assert said[61] == (logging.ERROR, False)  # the run's ERROR
    assert caplog.records[61].getMessage().endswith("each failed round at DEBUG till then")
    assert said[62:] == [(logging.DEBUG, True)] * 9
