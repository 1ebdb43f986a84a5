"""``client_failover.unreachable``: what a client says when no registry answered."""

from __future__ import annotations

import httpx

from LLM_Mesh.client_failover import unreachable


def test_nothing_answering_says_how_the_url_is_given_flag_first() -> None:
    """Found 2026-12-07 (newuser39): ``llm-mesh ask --registry URL`` with nothing there was
    told only to "point LLM_MESH_REGISTRY_URL at a running registry", which that flag
    overrides: setting it changed nothing."""
    said = unreachable("http://127.0.0.1:38999", httpx.ConnectError("refused")).message
    assert said.startswith("no LLM Mesh registry answered at http://127.0.0.1:38999")
    assert "`llm-mesh up`" in said and "--registry (which wins)" in said, said
    assert "LLM_MESH_REGISTRY_URL" in said and "registry_url=" in said, said
