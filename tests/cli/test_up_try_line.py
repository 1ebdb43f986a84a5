"""``llm-mesh up``'s "Try:" line names the registry when clients would not find it by
default (found 2026-12-04: after ``up --registry-port 18800`` it said to try ``llm-mesh ask
...``, which asked http://127.0.0.1:8800: another registry, or none)."""

from __future__ import annotations

from LLM_Mesh.cli.common import try_line


def test_the_default_registry_needs_no_flag() -> None:
    line = try_line("gemma-3-270m", "http://127.0.0.1:8800", ("http://127.0.0.1:8800",))
    assert line == 'Try: llm-mesh ask "def fibonacci(n):" --model gemma-3-270m\n'


def test_another_port_is_named() -> None:
    line = try_line("gemma-3-270m", "http://127.0.0.1:18800", ("http://127.0.0.1:8800",))
    assert line.rstrip().endswith("--model gemma-3-270m --registry http://127.0.0.1:18800")


def test_a_registry_clients_are_pointed_at_needs_no_flag() -> None:
    line = try_line("m", "http://127.0.0.1:18800", ("http://127.0.0.1:18800",))
    assert "--registry" not in line
