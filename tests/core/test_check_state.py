"""``core/check_state.py``: the heartbeat answer's ``health``, said and read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from LLM_Mesh.core.check_state import MAX_WHY, CheckState, reason, show_time, told, turned


def test_a_state_said_is_read_back() -> None:
    for state in (CheckState(False, 10.0, 20.0, "HTTP 503"), CheckState(True, 10.0, 20.0)):
        assert told(state.wire()) == state
    assert "why" not in CheckState(True, 1.0, 2.0, "old").wire()  # passing: no reason


@pytest.mark.parametrize(
    "raw",
    [None, "failing", [], {}, {"ok": "false"}, {"ok": 0}, {"since": 1.0}],
)
def test_an_absent_or_malformed_health_is_none(raw: Any) -> None:
    assert told(raw) is None


def test_odd_fields_are_dropped_not_trusted() -> None:
    raw = {"ok": False, "since": float("inf"), "checked_at": True, "why": 7, "extra": 1}
    assert told(raw) == CheckState(False, None, None, None)
    state = told({"ok": False, "why": "a\nFORGED LINE\x1b[31m" + "x" * 1000})
    assert state is not None and state.why is not None
    assert state.why.isprintable() and len(state.why) == MAX_WHY and "\n" not in state.why
    assert reason(None) is None and reason("\n") is None


def test_turned_says_each_change_once() -> None:
    failing, passing = CheckState(False), CheckState(True)
    assert turned(None, failing) == "failing" and turned(False, failing) == "failing"
    assert turned(True, failing) is None  # still failing: nothing new
    assert turned(True, passing) == "passing"
    assert turned(None, passing) is None and turned(False, passing) is None
    assert turned(True, None) is None and turned(None, None) is None  # nothing told


@pytest.mark.parametrize(("t", "read"), [(0, 0.0), (0.25, 0.25), (-0.5, None), (-1, None)])
def test_a_time_is_any_finite_unix_time_from_the_epoch_on(t: float, read: float | None) -> None:
    assert told({"ok": False, "since": t, "checked_at": t}) == CheckState(False, read, read)


@pytest.mark.parametrize(
    ("t", "shown"),
    [
        (1800000000.0, "2027-01-15 08:00:00 UTC"),
        (0.0, "1970-01-01 00:00:00 UTC"),
        (None, "an unknown time"),
        (1e20, "an unknown time"),  # past what the platform's time can say
        (float("nan"), "an unknown time"),
        (float("inf"), "an unknown time"),
    ],
)
def test_show_time_says_a_registry_time_in_utc_or_that_it_is_unknown(
    t: float | None, shown: str
) -> None:
    assert show_time(t) == shown


@pytest.fixture
def local_time_utc_plus_9(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "JST-9")  # POSIX form: UTC+9, no zone database needed
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_time_utc_plus_9")
def test_show_time_is_utc_whatever_the_nodes_local_time() -> None:
    assert time.localtime(0).tm_hour == 9  # (the zone took: UTC+9)
    assert show_time(1800000000.0) == "2027-01-15 08:00:00 UTC"
