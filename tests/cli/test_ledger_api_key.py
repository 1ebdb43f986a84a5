"""``llm-mesh ledger verify`` with ``LLM_MESH_API_KEY``: a key no header can carry (a line
break, a control character, a letter that is not ASCII) is refused before any request and
never quoted, as MeshClient refuses it (``client.py``'s ``bearer_header``; found
2026-12-03: ledger verify built its own ``Authorization`` header without the check)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from LLM_Mesh.cli import ledger_commands
from LLM_Mesh.cli.ledger_http import HttpSource
from LLM_Mesh.cli.main import app
from LLM_Mesh.errors import InvalidApiKey

runner = CliRunner()
BAD_KEYS = ["sk-mine\r\nX-Injected: yes", "sk-mine\nX-Injected: yes", "sk-clé-Injected", "sk mine"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_verify_refuses_a_bad_key_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    calls: list[str] = []

    async def first_answering(urls: Any, verify: Any) -> str:
        calls.append("first_answering")
        return str(urls[0])

    @contextlib.asynccontextmanager
    async def source(*args: Any) -> Any:
        calls.append("source")
        raise RuntimeError("stop here")
        yield  # pragma: no cover

    monkeypatch.setattr(ledger_commands, "first_answering", first_answering)
    monkeypatch.setattr(ledger_commands, "_source", source)
    monkeypatch.setenv("LLM_MESH_API_KEY", key)
    monkeypatch.setenv("LLM_MESH_REGISTRY_URL", "http://127.0.0.1:9")
    out = runner.invoke(app, ["ledger", "verify", "--home", str(tmp_path)], env={"COLUMNS": "200"})
    assert out.exit_code == 1
    assert "the API key" in out.output and "not sent" in out.output
    assert "Injected" not in out.output
    assert calls == []


@pytest.mark.parametrize("key", [*BAD_KEYS, "sk-\x00nul"])
async def test_the_balance_check_refuses_a_bad_key_before_sending(key: str) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
        with pytest.raises(InvalidApiKey) as exc:
            await HttpSource(c, key).stored()
    assert "Injected" not in str(exc.value) and "nul" not in str(exc.value)
    assert sent == []


async def test_the_balance_check_sends_a_good_key() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404)

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
        assert await HttpSource(c, "sk-mine").stored() is None
    assert [r.headers["authorization"] for r in sent] == ["Bearer sk-mine"]
