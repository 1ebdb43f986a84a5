"""``counted``: the singular only for exactly one."""

from __future__ import annotations

from LLM_Mesh.core.plural import counted


def test_one_is_singular_everything_else_plural() -> None:
    assert counted(1, "request") == "1 request"
    assert counted("1", "request") == "1 request"
    assert counted(0, "request") == "0 requests"
    assert counted(2, "entry", "entries") == "2 entries"
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted("?", "node") == "? nodes"
