"""What a hostile registry's answers put on the operator's terminal: ``llm-mesh node info``
(its quality view, the node's last registry error, the earnings) and ``llm-mesh earnings``.

Every string there is the registry's: with ESC sequences (clear the screen, set the title,
forge a line) and Rich markup (``[green]``-forged labels, a ``[/]`` that breaks the print);
numbers of the wrong type. Printed as a terminal gets them (``Console(file=...)``)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from LLM_Mesh.cli.common import fail
from LLM_Mesh.cli.earnings_render import earnings_tables, node_earnings_view, summary_line
from LLM_Mesh.cli.node_render import info_table
from LLM_Mesh.errors import MeshError

EVIL = "x\x1b[2J\x1b]0;owned\x07\x9b31m[green]paid 1000000[/]"


def _printed(*parts: Any) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=400, color_system=None, force_terminal=False)
    for part in parts:
        console.print(part)
    return buf.getvalue()


def _safe(out: str) -> None:
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out, repr(out)
    assert "[green]paid 1000000[/]" in out  # the registry's markup shown as text


REPORT = {
    "operator": EVIL,
    "account": EVIL,
    "node": EVIL,
    "since": EVIL,
    "until": EVIL,
    "totals": {"total": 5, "earned": 3, "requests": 1, "fees": 1, "rewards": 2},
    "balance": 7,
    "held": 4,
    "held_by_node": {EVIL: 4},
    "by_day": [{"day": EVIL, "requests": 1, "earned": 3, "rewards": 2, "total": 5}],
    "by_model": [{"model": EVIL, "requests": 1, "earned": 3, "fees": 1}],
    "by_node": [{"node_id": EVIL, "requests": 1, "total": 5, "healthy_s": 60}],
}


def test_the_registrys_earnings_words_reach_the_terminal_as_text() -> None:
    """Found 2026-12-03: printed as sent: the ESC sequences cleared the operator's
    terminal and set its title; markup forged labels."""
    _safe(_printed(summary_line(REPORT), *earnings_tables(REPORT)))
    _safe(_printed(*node_earnings_view({"registry": {}}, REPORT, None)))
    _safe(_printed(*node_earnings_view({"registry": {}}, None, EVIL)))


def test_the_registrys_quality_words_and_refusal_reach_the_terminal_as_text() -> None:
    quality = {
        "trust_score": 0.5,
        "canary_passed": EVIL,
        "canary_failed": 0,
        "quarantined": [{"model": EVIL, "since": EVIL, "reason": EVIL}, "junk"],
    }
    info = {"node_id": "n1", "registry": {"url": "http://r", "last_error": EVIL}}
    _safe(_printed(info_table({**info, "quality": quality})))


ODD: list[dict[str, Any]] = [
    {"totals": [1], "balance": "lots", "held": "x", "by_day": {"a": 1}},
    {
        "totals": {"total": "1e9999", "earned": [1]},
        "balance": 1e400,
        "held": 3,
        "held_by_node": ["n"],
        "by_model": ["m", None],
        "by_node": [{"healthy_s": "x"}],
    },
]


@pytest.mark.parametrize("report", ODD, ids=range(len(ODD)))
def test_an_earnings_answer_of_the_wrong_types_prints_without_a_traceback(
    report: dict[str, Any],
) -> None:
    out = _printed(summary_line(report), *earnings_tables(report))
    assert "Earnings" in out and "?" in out


@pytest.mark.parametrize("score", ["high", [1], None, True])
def test_a_trust_score_of_the_wrong_type_prints_without_a_traceback(score: object) -> None:
    quality = {"trust_score": score, "quarantined": {"not": "a list"}}
    out = _printed(info_table({"node_id": "n1", "registry": {}, "quality": quality}))
    assert "trust" in out


def test_an_error_quoting_the_registry_reaches_the_terminal_without_escapes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fail(MeshError(f"the registry said: {EVIL}"))
    err = capsys.readouterr().err
    assert "\x1b" not in err and "the registry said" in err, repr(err)
