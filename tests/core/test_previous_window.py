"""``core/previous_window.py``: the previous key's window checked at its bounds, a value that
is no number refused as a ``ValueError`` naming the setting (``tests/core/test_beat_mac.py``
has the window's use). Written against the module's mutants (mut42, 2026-12-07)."""

from __future__ import annotations

from typing import Any

import pytest

from LLM_Mesh.core.previous_window import (
    PREVIOUS_KEY_TOKENS_TOP_S,
    check_previous_window,
    previous_tokens_until,
)


@pytest.mark.parametrize("window_s", [1e-3, 0.5, 1, 1.5, PREVIOUS_KEY_TOKENS_TOP_S])
def test_any_window_more_than_0_and_at_most_a_day_is_taken(window_s: float) -> None:
    assert check_previous_window(window_s) == window_s
    assert type(check_previous_window(window_s)) is float
    assert previous_tokens_until(100.0, 100.0, window_s) == 100.0 + window_s


@pytest.mark.parametrize("bad", [True, False, "60", None, [60], 0, -0.5])
def test_a_value_that_is_no_number_of_seconds_is_a_value_error_naming_the_setting(
    bad: Any,
) -> None:
    """``True`` is an ``int`` to Python (it would be a 1 s window); a string or ``None``
    must not reach ``math.isfinite`` (a ``TypeError`` a caller does not catch)."""
    with pytest.raises(ValueError) as caught:
        check_previous_window(bad, "LLM_MESH_PREVIOUS_KEY_WINDOW_S")
    assert str(caught.value) == (
        "LLM_MESH_PREVIOUS_KEY_WINDOW_S must be a number of seconds more than 0 and at most "
        f"86400 (1 day), got {bad!r}"
    )
