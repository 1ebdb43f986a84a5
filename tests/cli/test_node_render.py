"""``llm-mesh node info``'s models table says "(simulated)" for a simulated model."""

from __future__ import annotations

from rich.console import Console

from LLM_Mesh.cli.node_render import hosted_models_table


def test_hosted_models_table_labels_simulated_models() -> None:
    console = Console(width=250, record=True, color_system=None)
    console.print(
        hosted_models_table(
            [
                {"id": "gemma-3-270m", "simulated": True, "loaded": True},
                {"id": "mistral-7b", "simulated": False, "loaded": True},
            ]
        )
    )
    out = console.export_text()
    assert "gemma-3-270m (simulated)" in out and "mistral-7b (simulated)" not in out
