"""``core/check_state.py``: the heartbeat answer's ``health``, said and read."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.check_state import MAX_WHY, CheckState, reason, told, turned


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
