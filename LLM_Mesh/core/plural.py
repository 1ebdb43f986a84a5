"""Counts in words: ``1 request``, ``2 requests`` (found 2026-12-04: the CLI said "for 1
requests", "1 nodes serving", "1 entries, 1 checkpoints")."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: object, one: str, many: str | None = None) -> str:
    """``n`` and the word for it: ``one`` for exactly 1, else ``many`` (default ``one + "s"``).
    ``n`` may be text a peer sent (``"?"``): then the plural, as for any count not 1."""
    word = one if n == 1 or n == "1" else (many or one + "s")
    return f"{n} {word}"
