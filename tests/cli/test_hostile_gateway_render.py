"""What a hostile gateway's answers put on the user's terminal through ``llm-mesh ask``
(the metrics line and table), ``status``, ``models`` and ``balance``: the fields the CLI
prints as numbers, sent as strings with ESC sequences and Rich markup, or as values of
the wrong type. Printed as a terminal gets them (``Console(file=...)``)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from LLM_Mesh.cli.render import (
    balance_table,
    metrics_line,
    metrics_table,
    models_table,
    nodes_table,
    print_status,
)

EVIL = "1\x1b[2J\x1b]0;owned\x07\x9b31m[link=http://evil.test]paid 0[/link]"
# the fields printed as whole numbers; and those read as figures (float)
COUNTS = ("prompt_tokens", "completion_tokens", "in_flight", "max_concurrency", "queued",
          "requests", "failures", "context_length", "nodes")  # fmt: skip
FIGURES = ("ttft_ms", "latency_ms", "tokens_per_s", "size_bytes", "ttft_ms_ewma",
           "health_score", "trust_score")  # fmt: skip


def _printed(*parts: Any) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=300, force_terminal=True)
    for part in parts:
        console.print(part)
    return buf.getvalue()


def _hostile(value: object, keys: tuple[str, ...] = (*COUNTS, *FIGURES, "account")) -> Any:
    return {"node_id": "n", "model": "m", "id": "m", "healthy": True, "available": True,
            "models": [{"id": "m"}], "trust_score": 0.5, **dict.fromkeys(keys, value)}  # fmt: skip


def test_a_gateways_strings_in_number_fields_reach_the_terminal_without_escapes() -> None:
    """Found 2026-12-03: ``completion_tokens`` (``ask``'s metrics line, from the stream's
    last event), a node's load and request counts (``status``), a model's context and node
    count (``models``), the balance's account were printed into the markup as sent: the
    gateway cleared the user's terminal, set its title and made a hyperlink."""
    row = _hostile(EVIL, (*COUNTS, "account"))
    out = _printed(
        f"[dim]{metrics_line(row)}[/]",
        metrics_table(row),
        nodes_table([row], 300),
        nodes_table([row]),
        models_table([row], 300),
        balance_table(row),
    )
    # (the console's own styles are ESC sequences: the gateway's are these)
    assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x07" not in out, repr(out)
    assert (
        "\x9b" not in out
        and "\x1b]8;" not in out
        and "evil.test" not in out.replace("[link=http://evil.test]", "")
    ), repr(out)


@pytest.mark.parametrize("value", ["fast", [1], {"a": 1}, float("nan"), True])
def test_a_gateways_numbers_of_the_wrong_type_print_without_a_traceback(value: object) -> None:
    """Found 2026-12-03: ``float("fast")`` ended ``ask`` and ``status`` with a traceback."""
    row = _hostile(value)
    _printed(f"[dim]{metrics_line(row)}[/]", metrics_table(row), balance_table(row))
    print_status({"models": {"m": row}}, [row], Console(file=io.StringIO(), width=300))


@pytest.mark.parametrize("value", [5, 1.5, True, "python"])
def test_a_models_specialties_that_are_no_list_print_without_a_traceback(value: object) -> None:
    """Found 2026-12-05: ``specialties: 5`` ended ``llm-mesh models`` and ``status`` with
    ``TypeError: 'int' object is not iterable``; a string was printed a letter at a time
    (``p, y, t, h, o, n``)."""
    row = {"id": "m", "available": True, "specialties": value}
    for width in (300, 80, None):
        out = _printed(models_table([row], width))
        assert "p, y" not in out, out
    print_status({"models": {"m": row}}, [], Console(file=io.StringIO(), width=80))
