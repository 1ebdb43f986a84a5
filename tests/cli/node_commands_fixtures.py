"""Helpers for the ``llm-mesh node`` command tests (``test_node_commands*.py``): the CLI runner
and an invocation, and a stand-in transport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import node_clients
from LLM_Mesh.cli.node_commands import node_app

runner = CliRunner()


def use_transport(monkeypatch: pytest.MonkeyPatch, transport: httpx.AsyncBaseTransport) -> None:
    def factory(timeout_s: float = 10.0, registry_ca: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport)

    monkeypatch.setattr(node_clients, "http_client", factory)
    monkeypatch.setattr(node_clients, "download_client", lambda _allowed=(): factory())


def invoke(*args: str) -> Any:
    return runner.invoke(node_app, list(args), catch_exceptions=False)
