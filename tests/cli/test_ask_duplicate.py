"""Found 2026-12-07 (replica41, a new operator's walk of docs/deploy.md): ``llm-mesh ask
--registry R1,R2`` whose request was in flight on R1 when it was killed (``SIGKILL``) ended
with the gateway's 409 as it came, ``... send a new id to run it again``: ``ask`` takes no
id (it makes one a run), so the advice named nothing the user could do."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

import LLM_Mesh.cli.demo as demo
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import DuplicateRequest

ENV = {"LLM_MESH_REGISTRY_URL": "http://127.0.0.1:9", "LLM_MESH_API_KEY": ""}
LOST = (
    "a request with id 'abc' was being served by a registry replica that stopped; it may "
    "have run, and it is never executed twice: send a new id to run it again"
)


def test_a_request_lost_with_its_replica_says_to_run_ask_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def lost(*_a: Any, **_kw: Any) -> None:
        raise DuplicateRequest(LOST, reason="owner_lost")

    monkeypatch.setattr(demo, "ask_once", lost)
    out = CliRunner().invoke(app, ["ask", "hi"], env=ENV)
    assert out.exit_code == 1
    text = " ".join(out.output.split())
    assert "may have run" in text, text
    assert "send a new id" not in text, text
    assert "run llm-mesh ask again" in text, text


def test_another_refusal_keeps_its_words(monkeypatch: pytest.MonkeyPatch) -> None:
    said = demo.rerun_named(DuplicateRequest("x"))
    assert "run llm-mesh ask again" in said.message
    other = demo.MeshError("send a new id to run it again")
    assert demo.rerun_named(other) is other
