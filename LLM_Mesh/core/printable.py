"""Text a peer or an exception chose, made fit for a log line or a terminal: one rule, pure.

Control characters, ANSI escapes, newlines and bidi overrides become spaces (no forged log
lines, no terminal escapes, no reordered text): :func:`printable`. Its users:
:func:`log_text` (a registry's refusal, a key it sent, an engine's error: every log line
that quotes a peer; ``LLM_Mesh.logs`` re-exports it), :func:`one_line` (an exception in one
line: the registry's pollers, whose runs of failures ``core/fail_streak.py`` counts),
``core/check_state.reason`` (a health check's reason, sent and logged).
"""

from __future__ import annotations

__all__ = ["log_text", "one_line", "printable"]


def printable(text: str) -> str:
    """``text`` with every character that is not printable replaced by a space."""
    return "".join(c if c.isprintable() else " " for c in text)


def log_text(text: object, limit: int = 600) -> str:
    """Text a peer chose (a registry's refusal, a key it sent), fit for a log line or a
    terminal: :func:`printable`, at most ``limit`` characters."""
    return printable(str(text)[: limit * 2])[:limit]


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one printable line of at most ``limit`` characters: its type and
    text, each run of spaces (newlines, control characters) one space, cut with ``…``."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    flat = " ".join(printable(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
