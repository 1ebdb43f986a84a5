"""One printable rule (``core/printable.py``) for what a peer or an exception says: no
control character, newline, escape or bidi override reaches a log line or a terminal."""

from __future__ import annotations

from LLM_Mesh import logs
from LLM_Mesh.core.check_state import reason
from LLM_Mesh.core.printable import log_text, one_line, printable

HOSTILE = "ok\nFAKE LINE\x1b[2J\x1b]0;title\x07 \u202eevil\r\t"


def test_printable_turns_every_unprintable_character_into_a_space() -> None:
    assert printable(HOSTILE) == "ok FAKE LINE [2J ]0;title   evil  "
    assert printable("plain text, é, 中文") == "plain text, é, 中文"


def test_log_text_is_printable_and_bounded_and_the_logs_one() -> None:
    assert logs.log_text is log_text  # one function: logs re-exports core's
    assert log_text(HOSTILE, 10) == "ok FAKE LI"
    assert log_text({"k": 1}) == "{'k': 1}"
    assert log_text("x" * 1000) == "x" * 600


def test_one_line_is_printable_and_bounded() -> None:
    assert one_line(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert one_line(TimeoutError()) == "TimeoutError"
    text = one_line(RuntimeError("a\nb\x1b[31m" + "x" * 500), limit=40)
    assert len(text) == 40 and "\n" not in text and "\x1b" not in text and text.endswith("…")
    assert one_line(ValueError("a \n\n  b")) == "ValueError: a b"  # runs of spaces: one


def test_a_health_checks_reason_uses_the_same_rule() -> None:
    assert reason(HOSTILE) == printable(HOSTILE).strip()
    assert reason("\n\x1b") is None


def test_one_line_keeps_a_line_of_exactly_its_limit_and_cuts_one_more() -> None:
    # "ValueError: " is 12 characters: 288 more make the default limit's 300
    assert one_line(ValueError("x" * 288)) == "ValueError: " + "x" * 288
    assert one_line(ValueError("x" * 289)) == "ValueError: " + "x" * 287 + "…"
    assert one_line(ValueError("abcd"), limit=16) == "ValueError: abcd"
    assert one_line(ValueError("abcde"), limit=16) == "ValueError: abc…"
